"""What a parsed delivery may carry so that both engines can store it.

Providers' ids are short (a wamid is about 60 characters), but a signed delivery may still carry one longer than
the store's columns. SQLite keeps any length; PostgreSQL refuses the whole delivery, and a refused delivery is
answered 500, which the provider retries until it gives up on the webhook. So an id that does not fit makes the
delivery unusable (a dead letter, ``invalid_field``), as any other signed value the hub cannot keep; a name or a
phone number that does not fit is only a description, and is shortened or left out instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, cast

from sqlalchemy import Column, String

from hub.errors import PayloadMalformed
from hub.model import (
    DeliveryReceipt,
    Echo,
    InboundEvent,
    InboundMessage,
    NumberChanged,
    ProfileUpdate,
    SubscriptionChanged,
)
from hub.store.tables import identities, messages

__all__ = ["ID_LENGTH", "fit_profile", "fit_to_store"]


def _length(column: Column[Any]) -> int:
    """The most characters ``column`` keeps (its ``String`` length)."""
    kept = cast(String, column.type).length
    assert kept is not None, column
    return kept


ID_LENGTH = _length(messages.c.provider_message_id)  # also customers' ids and quoted ids (tests/unit: the same)
NAME_LENGTH = _length(identities.c.display_name)
PHONE_LENGTH = _length(identities.c.phone)
ERROR_CODE_LENGTH = _length(messages.c.error_code)  # pending_receipts.error_code is as long


def fit_to_store(events: Sequence[InboundEvent]) -> list[InboundEvent]:
    """The events as the store can keep them, or PayloadMalformed naming the id that is too long."""
    fitted = []
    for event in events:
        for name, value in _ids(event):
            if value is not None and len(value) > ID_LENGTH:
                raise PayloadMalformed(
                    f"{name} is {len(value)} characters long; ids of up to {ID_LENGTH} are kept", code="invalid_field"
                )
        fitted.append(_described(event))
    return fitted


def fit_profile(update: ProfileUpdate) -> ProfileUpdate:
    """A profile the provider gave after the fact, its name shortened to what the store keeps."""
    if not _too_long(update.display_name, NAME_LENGTH):
        return update
    return replace(update, display_name=_shortened(update.display_name, NAME_LENGTH))


def _ids(event: InboundEvent) -> Iterable[tuple[str, str | None]]:
    match event:
        case InboundMessage():
            yield "the message id", event.provider_message_id
            yield "the sender's id", event.sender_id
            yield "the quoted message's id", event.reply_to
        case DeliveryReceipt():
            yield "the recipient's id", event.recipient_id
            for provider_id in event.provider_message_ids:
                yield "a receipt's message id", provider_id
        case Echo():
            yield "the message id", event.provider_message_id
            yield "the recipient's id", event.recipient_id
        case SubscriptionChanged():
            yield "the user's id", event.user_id
        case NumberChanged():
            yield "the user's id", event.user_id
            yield "the new user id", event.new_user_id


def _described(event: InboundEvent) -> InboundEvent:
    match event:
        case InboundMessage() if _too_long(event.sender_name, NAME_LENGTH) or _too_long(
            event.sender_phone, PHONE_LENGTH
        ):
            phone = event.sender_phone if not _too_long(event.sender_phone, PHONE_LENGTH) else None
            return replace(event, sender_name=_shortened(event.sender_name, NAME_LENGTH), sender_phone=phone)
        case SubscriptionChanged() if _too_long(event.display_name, NAME_LENGTH):
            return replace(event, display_name=_shortened(event.display_name, NAME_LENGTH))
        case DeliveryReceipt() if _too_long(event.error_code, ERROR_CODE_LENGTH):
            return replace(event, error_code=_shortened(event.error_code, ERROR_CODE_LENGTH))
    return event


def _too_long(value: str | None, most: int) -> bool:
    return value is not None and len(value) > most


def _shortened(value: str | None, most: int) -> str | None:
    return value if value is None or len(value) <= most else value[: most - 1] + "…"
