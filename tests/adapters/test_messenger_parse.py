"""MessengerAdapter.verify and .parse against recorded Messenger webhook payloads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from adapters._graph import sign
from adapters.messenger import MessengerAdapter, page_ids, parse_delivery
from hub.errors import PayloadMalformed, SignatureInvalid, UnknownAccount
from hub.model import (
    Channel,
    ChannelAccount,
    CustomerActivity,
    DeliveryReceipt,
    DeliveryState,
    Echo,
    IgnoredEvent,
    InboundMessage,
    MessageKind,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "messenger"
PAGE = "104729435879226"
PSID = "6284512397351040"
SECRET = "messenger-app-secret"


def payload(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def make_account(page_id: str = PAGE, account_id: str = "fb-main") -> ChannelAccount:
    return ChannelAccount(
        id=account_id,
        channel=Channel.MESSENGER,
        provider="messenger",
        queue="support",
        api_base="https://graph.example.test/v21.0",
        credentials={
            "page_id": page_id,
            "app_secret": SECRET,
            "verify_token": "verify-me",
            "page_access_token": "page-token",
        },
    )


@pytest.fixture
async def adapter() -> AsyncIterator[MessengerAdapter]:
    async with aiohttp.ClientSession() as session:
        yield MessengerAdapter(make_account(), session)


def one(adapter: MessengerAdapter, name: str) -> object:
    events = adapter.parse(payload(name))
    assert len(events) == 1
    return events[0]


def test_valid_signature_is_accepted(adapter: MessengerAdapter) -> None:
    body = payload("text")
    adapter.verify("https://hub.example/webhooks/messenger", {"X-Hub-Signature-256": sign(body, SECRET)}, body)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": "sha1=0123"},
        {"X-Hub-Signature-256": sign(b"{}", SECRET)},
        {"X-Hub-Signature-256": sign(b'{"object":"page"}', "another-secret")},
    ],
    ids=["missing", "empty", "wrong-algorithm", "other-body", "wrong-secret"],
)
def test_bad_signatures_are_refused(adapter: MessengerAdapter, headers: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        adapter.verify("https://hub.example/webhooks/messenger", headers, payload("text"))


def test_body_altered_by_one_byte_is_refused(adapter: MessengerAdapter) -> None:
    body = payload("text")
    signature = sign(body, SECRET)
    altered = body.replace(b"Hello", b"Hellp")
    with pytest.raises(SignatureInvalid):
        adapter.verify("https://hub.example/webhooks/messenger", {"x-hub-signature-256": signature}, altered)


def test_text_message(adapter: MessengerAdapter) -> None:
    event = one(adapter, "text")
    assert event == InboundMessage(
        channel=Channel.MESSENGER,
        account_id="fb-main",
        sender_id=PSID,
        provider_message_id="m_AbCdEf123text",
        sent_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        text="Hello, I need help with my order",
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("image", MessageKind.IMAGE),
        ("video", MessageKind.VIDEO),
        ("audio", MessageKind.AUDIO),
        ("file", MessageKind.FILE),
    ],
)
def test_media_attachments_keep_their_kind_and_url(adapter: MessengerAdapter, name: str, kind: MessageKind) -> None:
    event = one(adapter, name)
    assert isinstance(event, InboundMessage)
    assert event.kind is kind
    assert len(event.attachments) == 1
    assert event.attachments[0].kind is kind
    assert event.attachments[0].url is not None
    assert event.attachments[0].url.startswith("https://")


def test_location_attachment_becomes_a_location(adapter: MessengerAdapter) -> None:
    event = one(adapter, "location")
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.LOCATION
    assert event.location is not None
    assert (event.location.latitude, event.location.longitude, event.location.name) == (
        50.0911,
        14.4016,
        "Prague Castle",
    )
    assert event.text == "Prague Castle"


def test_fallback_attachment_keeps_the_link(adapter: MessengerAdapter) -> None:
    event = one(adapter, "fallback")
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.TEXT
    assert event.text == "look https://example.com/p/42"
    assert ("fallback_url", "https://example.com/p/42") in event.extra


def test_an_appointment_booking_is_read_as_text_and_facts_not_as_a_file(adapter: MessengerAdapter) -> None:
    """Meta's messages webhook reference: an ``appointment_booking`` attachment carries the booking (id, status,
    start and end in epoch seconds, time zone) and no URL. It was stored as a file with nothing to fetch."""
    event = one(adapter, "appointment_booking")
    assert isinstance(event, InboundMessage)
    assert (event.kind, event.attachments) == (MessageKind.TEXT, ())
    assert event.text == "Appointment booking requested: Sat 15 Feb 2025, 10:00-11:00 (America/Los_Angeles)"
    assert set(event.extra) >= {
        ("booking_id", "1183420563124877"),
        ("booking_status", "requested"),
        ("booking_timezone", "America/Los_Angeles"),
        ("booking_start", "2025-02-15T18:00:00+00:00"),
        ("booking_end", "2025-02-15T19:00:00+00:00"),
    }


@pytest.mark.parametrize(
    ("booking", "text"),
    [
        ({"booking_id": "1", "status": "cancelled"}, "Appointment booking cancelled"),
        ({}, "Appointment booking"),
        (
            {"status": "confirmed", "start_time": 1739642400, "timezone": "Mars/Olympus"},
            "Appointment booking confirmed: Sat 15 Feb 2025, 18:00 (UTC)",
        ),
        (
            {"status": "confirmed", "start_time": 1739642400, "timezone": "Europe"},
            "Appointment booking confirmed: Sat 15 Feb 2025, 18:00 (UTC)",
        ),
        (
            {"status": "declined", "start_time": 1739642400, "end_time": 1739642400 + 26 * 3600, "timezone": "UTC"},
            "Appointment booking declined: Sat 15 Feb 2025, 18:00-Sun 16 Feb 2025, 20:00 (UTC)",
        ),
        ({"start_time": "soon", "end_time": -1}, "Appointment booking"),
    ],
)
def test_a_booking_with_parts_missing_or_wrong_still_reads(
    adapter: MessengerAdapter, booking: dict[str, object], text: str
) -> None:
    data = json.loads(payload("appointment_booking"))
    data["entry"][0]["messaging"][0]["message"]["attachments"][0]["payload"] = booking
    event = one_from(adapter, json.dumps(data).encode())
    assert isinstance(event, InboundMessage)
    assert (event.text, event.attachments) == (text, ())


def test_template_attachment_is_readable(adapter: MessengerAdapter) -> None:
    event = one(adapter, "template")
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.TEMPLATE
    assert event.text == "Blue sneakers"
    assert ("template_type", "generic") in event.extra


def test_sticker_is_an_attachment_with_its_sticker_id(adapter: MessengerAdapter) -> None:
    event = one(adapter, "sticker")
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.STICKER
    assert event.attachments[0].kind is MessageKind.STICKER
    assert event.attachments[0].provider_media_id == "369239263222822"


def test_quick_reply_is_a_postback_with_payload_and_text(adapter: MessengerAdapter) -> None:
    event = one(adapter, "quick_reply")
    assert isinstance(event, InboundMessage)
    assert (event.kind, event.text, event.payload) == (MessageKind.POSTBACK, "Yes", "CONFIRM_YES")


def test_postback_uses_title_and_payload(adapter: MessengerAdapter) -> None:
    event = one(adapter, "postback")
    assert isinstance(event, InboundMessage)
    assert (event.kind, event.text, event.payload, event.provider_message_id) == (
        MessageKind.POSTBACK,
        "Get Started",
        "GET_STARTED",
        "m_postback1",
    )


def test_reply_to_names_the_quoted_message(adapter: MessengerAdapter) -> None:
    event = one(adapter, "reply_to")
    assert isinstance(event, InboundMessage)
    assert event.reply_to == "m_earlier_out_1"


def test_delivery_by_mids(adapter: MessengerAdapter) -> None:
    event = one(adapter, "delivery_mids")
    assert isinstance(event, DeliveryReceipt)
    assert event.state is DeliveryState.DELIVERED
    assert event.provider_message_ids == ("m_out_sent_1",)
    assert event.recipient_id == PSID


def test_delivery_by_watermark_names_the_customer(adapter: MessengerAdapter) -> None:
    event = one(adapter, "delivery_watermark")
    assert isinstance(event, DeliveryReceipt)
    assert event.provider_message_ids == ()
    assert event.watermark == datetime(2023, 11, 14, 22, 13, 24, tzinfo=UTC)
    assert event.recipient_id == PSID


def test_read_by_watermark(adapter: MessengerAdapter) -> None:
    event = one(adapter, "read")
    assert isinstance(event, DeliveryReceipt)
    assert (event.state, event.recipient_id) == (DeliveryState.READ, PSID)
    assert event.watermark == datetime(2023, 11, 14, 22, 13, 24, tzinfo=UTC)


def test_echo_is_our_own_message_to_the_customer(adapter: MessengerAdapter) -> None:
    event = one(adapter, "echo")
    assert isinstance(event, Echo)
    assert (event.recipient_id, event.provider_message_id, event.text) == (
        PSID,
        "m_echo1",
        "Hi, this is Anna from support",
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("optin", "optin"),
        ("handover", "pass_thread_control"),
        ("standby", "standby"),
        ("optin_user_ref", "optin"),
    ],
)
def test_unhandled_kinds_are_ignored_not_refused(adapter: MessengerAdapter, name: str, kind: str) -> None:
    assert one(adapter, name) == IgnoredEvent(channel=Channel.MESSENGER, account_id="fb-main", kind=kind)


@pytest.mark.parametrize("name", ["reaction", "referral"])
def test_a_reaction_or_a_link_opened_on_the_thread_is_the_customer_s_activity(
    adapter: MessengerAdapter, name: str
) -> None:
    """Meta counts both among the actions that open the standard messaging window."""
    event = one(adapter, name)
    millis = json.loads(payload(name))["entry"][0]["messaging"][0]["timestamp"]
    assert event == CustomerActivity(
        channel=Channel.MESSENGER,
        account_id="fb-main",
        sender_id=PSID,
        kind=name,
        occurred_at=datetime.fromtimestamp(millis / 1000, tz=UTC),
    )


def test_a_reaction_taken_back_is_not_activity(adapter: MessengerAdapter) -> None:
    body = payload("reaction").replace(b'"action":"react"', b'"action":"unreact"')
    assert adapter.parse(body) == [IgnoredEvent(channel=Channel.MESSENGER, account_id="fb-main", kind="reaction")]


def test_batch_returns_every_event_in_order(adapter: MessengerAdapter) -> None:
    events = adapter.parse(payload("batch"))
    ids = [e.provider_message_id if isinstance(e, InboundMessage) else type(e).__name__ for e in events]
    assert ids == ["m_batch_1", "m_batch_2", "m_batch_3", "IgnoredEvent"]


def test_entry_for_another_page_is_an_unknown_account(adapter: MessengerAdapter) -> None:
    body = payload("text").replace(PAGE.encode(), b"999999999")
    with pytest.raises(UnknownAccount):
        adapter.parse(body)


async def test_delivery_spanning_two_pages_goes_to_each_page() -> None:
    data = json.loads(payload("text"))
    second = json.loads(json.dumps(data["entry"][0]).replace(PAGE, "555"))
    data["entry"].append(second)
    async with aiohttp.ClientSession() as session:
        first_page = MessengerAdapter(make_account(), session)
        second_page = MessengerAdapter(make_account("555", "fb-second"), session)
        assert page_ids(data) == [PAGE, "555"]
        events = parse_delivery(json.dumps(data).encode(), {PAGE: first_page, "555": second_page})
    assert [e.account_id for e in events] == ["fb-main", "fb-second"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_json"),
        (b"[]", "invalid_json"),
        (b'{"object":"instagram","entry":[]}', "unexpected_object"),
        (b'{"object":"page"}', "missing_field"),
        (b'{"object":"page","entry":[{"id":"104729435879226","messaging":[{"sender":{}}]}]}', "missing_field"),
        (
            b'{"object":"page","entry":[{"id":"104729435879226","messaging":[{"sender":{"id":"1"},'
            b'"recipient":{"id":"2"},"timestamp":1,"message":{"text":"no mid"}}]}]}',
            "missing_field",
        ),
    ],
)
def test_malformed_bodies_name_the_problem(adapter: MessengerAdapter, body: bytes, code: str) -> None:
    with pytest.raises(PayloadMalformed) as caught:
        adapter.parse(body)
    assert caught.value.code == code


def test_echo_of_a_leading_message_part_is_ours_and_ignored(adapter: MessengerAdapter) -> None:
    body = payload("echo").replace(b'"metadata":"sent from inbox"', b'"metadata":"channelhub:part"')
    assert one(adapter, "echo") != one_from(adapter, body)
    assert one_from(adapter, body) == IgnoredEvent(
        channel=Channel.MESSENGER, account_id="fb-main", kind="echo_of_a_message_part"
    )


def one_from(adapter: MessengerAdapter, body: bytes) -> object:
    (event,) = adapter.parse(body)
    return event


def test_a_share_messenger_sends_as_an_empty_fallback_still_reaches_the_agent(adapter: MessengerAdapter) -> None:
    """Meta: "for unsupported shares made by users to your Page a fallback with no payload might be sent"."""
    event = one(adapter, "fallback_unshown_share")
    assert isinstance(event, InboundMessage)
    assert (event.kind, event.provider_message_id) == (MessageKind.TEXT, "m_shared_unshown_31")
    assert event.text == "[The customer shared something Messenger does not pass on]"


def test_an_empty_fallback_echo_is_still_ignored(adapter: MessengerAdapter) -> None:
    body = payload("fallback_unshown_share").replace(b'"mid"', b'"is_echo":true,"app_id":1517776481860111,"mid"')
    assert one_from(adapter, body) == IgnoredEvent(
        channel=Channel.MESSENGER, account_id="fb-main", kind="message_without_content"
    )


def test_a_message_from_an_ad_keeps_the_ad_referral(adapter: MessengerAdapter) -> None:
    event = one(adapter, "message_ad_referral")
    assert isinstance(event, InboundMessage)
    assert event.text == "Is the blue kettle still in stock?"
    assert dict(event.extra) == {
        "referral_ref": "winter-kettles",
        "referral_ad_id": "120210000000000077",
        "referral_source": "ADS",
        "referral_type": "OPEN_THREAD",
        "referral_ad_title": "Kettles for winter",
        "referral_photo_url": "https://scontent.example.net/v/kettle-ad.jpg",
        "referral_post_id": "104729435879226_990001",
    }


def test_a_message_from_a_user_ref_names_why_it_cannot_be_answered(adapter: MessengerAdapter) -> None:
    body = payload("optin_user_ref").replace(
        b'"optin":{"ref":"checkout_page","user_ref":"ur_checkout_58121"}', b'"message":{"mid":"m_ur_1","text":"hi"}'
    )
    with pytest.raises(PayloadMalformed, match="user_ref"):
        adapter.parse(body)


def test_a_customers_edit_is_the_new_text_answering_the_message_edited(adapter: MessengerAdapter) -> None:
    """``message_edits``: the agent reads what the customer now says, and which message they changed."""
    event = one(adapter, "message_edit")
    assert isinstance(event, InboundMessage)
    assert (event.kind, event.text, event.reply_to) == (
        MessageKind.TEXT,
        "Sorry, I meant size 42, not 40",
        "m_order_size_40",
    )
    assert event.provider_message_id == "m_order_size_40#edit1"
    assert dict(event.extra) == {"edit_of": "m_order_size_40", "edit_number": "1"}


def test_an_edit_without_text_is_acknowledged(adapter: MessengerAdapter) -> None:
    body = payload("message_edit").replace(b'"text":"Sorry, I meant size 42, not 40",', b"")
    assert one_from(adapter, body) == IgnoredEvent(channel=Channel.MESSENGER, account_id="fb-main", kind="message_edit")
