"""A parsed delivery is fitted to what both engines store before it is ingested (webhooks/_store_limits.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.errors import PayloadMalformed
from hub.model import Channel, DeliveryReceipt, DeliveryState, InboundEvent, InboundMessage, ProfileUpdate
from hub.store.tables import identities, messages, pending_receipts
from webhooks._store_limits import ERROR_CODE_LENGTH, ID_LENGTH, NAME_LENGTH, PHONE_LENGTH, fit_profile, fit_to_store

AT = datetime(2026, 12, 7, tzinfo=UTC)


def _message(**fields: str) -> InboundMessage:
    values = {"provider_message_id": "m1", "sender_id": "u1", **fields}
    return InboundMessage(channel=Channel.VIBER, account_id="vb", sent_at=AT, **values)


def _receipt(*ids: str, error_code: str | None = None) -> DeliveryReceipt:
    return DeliveryReceipt(
        channel=Channel.VIBER,
        account_id="vb",
        recipient_id="u1",
        state=DeliveryState.FAILED,
        occurred_at=AT,
        provider_message_ids=ids,
        error_code=error_code,
    )


def test_the_limits_are_the_columns_lengths() -> None:
    for column in (
        messages.c.provider_message_id,
        messages.c.reply_to,
        identities.c.external_id,
        pending_receipts.c.provider_message_id,
    ):
        assert column.type.length == ID_LENGTH, column
    assert identities.c.display_name.type.length == NAME_LENGTH
    assert identities.c.phone.type.length == PHONE_LENGTH
    assert messages.c.error_code.type.length == pending_receipts.c.error_code.type.length == ERROR_CODE_LENGTH


@pytest.mark.parametrize(
    "event",
    [
        _message(provider_message_id="m" * 201),
        _message(sender_id="u" * 201),
        _message(reply_to="r" * 201),
        _receipt("ok", "x" * 201),
    ],
)
def test_an_id_that_does_not_fit_makes_the_delivery_unusable(event: InboundEvent) -> None:
    with pytest.raises(PayloadMalformed) as refused:
        fit_to_store([_message(), event])
    assert refused.value.code == "invalid_field"
    assert "201 characters" in str(refused.value)


def test_ids_that_fit_and_short_descriptions_are_kept_as_they_are() -> None:
    events = [_message(provider_message_id="m" * 200, sender_name="Jana", sender_phone="+420600"), _receipt("x" * 200)]
    assert fit_to_store(events) == events


def test_descriptions_that_do_not_fit_are_shortened_or_left_out() -> None:
    message, receipt = fit_to_store(
        [_message(sender_name="N" * 300, sender_phone="1" * 65), _receipt("x", error_code="E" * 65)]
    )
    assert isinstance(message, InboundMessage)
    assert isinstance(receipt, DeliveryReceipt)
    assert (message.sender_name, message.sender_phone) == ("N" * 199 + "…", None)
    assert receipt.error_code == "E" * 63 + "…"


def test_a_profile_learned_later_has_its_name_shortened_to_fit() -> None:
    short = ProfileUpdate(channel=Channel.VIBER, account_id="vb", external_id="u1", display_name="Jana")
    assert fit_profile(short) is short
    long = ProfileUpdate(channel=Channel.VIBER, account_id="vb", external_id="u1", display_name="N" * 201)
    assert fit_profile(long).display_name == "N" * 199 + "…"
