"""The rows a customer's message writes: its sender's identity and the message itself.

One builder and one statement each, used by the per-row path of ingest and by its bulk path, so that the
two store the same thing (the rule that writing subscribes, where the provider has it, included)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, case, func
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Author, ChannelAccount, DeliveryState, Direction, InboundMessage, Subscription
from hub.store._db import upsert
from hub.store.tables import identities, messages

__all__ = ["Person", "message_insert", "message_row", "people", "upsert_identities"]


@dataclass(slots=True)
class Person:
    """Everything some messages say about one customer: the identity upsert's row."""

    account_id: str
    channel: str
    external_id: str
    first: datetime
    last: datetime
    name: str | None
    avatar: str | None
    phone: str | None


def people(events: Iterable[InboundMessage]) -> dict[tuple[str, str], Person]:
    """(account, sender) -> what the messages, in order, say about the sender."""
    found: dict[tuple[str, str], Person] = {}
    for event in events:
        key = (event.account_id, event.sender_id)
        person = found.get(key)
        if person is None:
            found[key] = Person(
                account_id=event.account_id,
                channel=event.channel.value,
                external_id=event.sender_id,
                first=event.sent_at,
                last=event.sent_at,
                name=event.sender_name,
                avatar=event.sender_avatar,
                phone=event.sender_phone,
            )
            continue
        person.first = min(person.first, event.sent_at)
        if event.sent_at >= person.last:
            person.last = event.sent_at
        person.name = event.sender_name or person.name
        person.avatar = event.sender_avatar or person.avatar
        person.phone = event.sender_phone or person.phone
    return found


def _later_of(current: Any, new: Any) -> Any:
    return case((new.is_(None), current), (current.is_(None), new), (new > current, new), else_=current)


@cache
def _identity_upsert(dialect: str) -> Any:
    """The identities' multi-row upsert, built once per dialect (building it cost more CPU than running it).
    A known identity keeps what a message does not say, and its times move only outward."""
    stmt = upsert(dialect, identities)
    new, c = stmt.excluded, identities.c
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "external_id"],
        set_={
            "display_name": func.coalesce(new.display_name, c.display_name),
            "avatar_url": func.coalesce(new.avatar_url, c.avatar_url),
            "phone": func.coalesce(new.phone, c.phone),
            "last_inbound_at": _later_of(c.last_inbound_at, new.last_inbound_at),
            "first_inbound_at": case(
                (c.first_inbound_at.is_(None), new.first_inbound_at),
                (new.first_inbound_at < c.first_inbound_at, new.first_inbound_at),
                else_=c.first_inbound_at,
            ),
            "last_received_at": new.last_received_at,
            "subscription": case(
                (
                    and_(
                        new.subscription.is_not(None),
                        func.coalesce(c.subscription_changed_at, new.subscription_changed_at)
                        <= new.subscription_changed_at,
                    ),
                    new.subscription,
                ),
                else_=c.subscription,
            ),
            "subscription_changed_at": _later_of(c.subscription_changed_at, new.subscription_changed_at),
        },
    ).returning(identities.c.id, identities.c.account_id, identities.c.external_id)
    return stmt


async def upsert_identities(
    connection: AsyncConnection,
    dialect: str,
    found: Mapping[tuple[str, str], Person],
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
) -> dict[tuple[str, str], int]:
    """Insert or update the senders' identities, one statement; returns (account, sender) -> identity id."""
    rows = []
    for person in found.values():
        subscribes = accounts[person.account_id].subscribes_on_message
        rows.append(
            {
                "account_id": person.account_id,
                "channel": person.channel,
                "external_id": person.external_id,
                "display_name": person.name,
                "avatar_url": person.avatar,
                "phone": person.phone,
                "first_inbound_at": person.first,
                "last_inbound_at": person.last,
                "last_received_at": now,
                # where writing subscribes (Viber: channels.md 4.7), a customer who writes is subscribed
                "subscription": Subscription.SUBSCRIBED.value if subscribes else None,
                "subscription_changed_at": person.last if subscribes else None,
                "created_at": now,
            }
        )
    result = await connection.execute(_identity_upsert(dialect), rows)
    return {(row.account_id, row.external_id): int(row.id) for row in result}


def message_row(event: InboundMessage, identity_id: int, conversation_id: int, now: datetime) -> dict[str, Any]:
    """The customer's message as stored: received now."""
    return {
        "conversation_id": conversation_id,
        "identity_id": identity_id,
        "account_id": event.account_id,
        "direction": Direction.IN.value,
        "author": Author.CUSTOMER.value,
        "kind": event.kind.value,
        "text": event.text,
        "attachments": [a.to_json() for a in event.attachments] or None,
        "location": event.location.to_json() if event.location else None,
        "payload": event.payload,
        "reply_to": event.reply_to,
        "extra": dict(event.extra) or None,
        "provider_message_id": event.provider_message_id,
        "sent_at": event.sent_at,
        "created_at": now,
        "delivery_state": DeliveryState.RECEIVED.value,
    }


@cache
def message_insert(dialect: str) -> Any:
    """Insert ``message_row``s (a list, one statement); a message stored already is left out of what it
    returns (id, account_id, provider_message_id)."""
    return (
        upsert(dialect, messages)
        .on_conflict_do_nothing(index_elements=["account_id", "provider_message_id"])
        .returning(messages.c.id, messages.c.account_id, messages.c.provider_message_id)
    )
