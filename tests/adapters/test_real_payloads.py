"""Payloads providers send today that the hub once dropped, refused or crashed on (issue 17, "Real payloads").

Each test names what the provider sends and what an agent must then be able to read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from adapters.messenger import MessengerAdapter
from adapters.viber import ViberAdapter
from adapters.whatsapp_cloud import WhatsAppCloudAdapter
from hub.errors import PayloadMalformed
from hub.model import Channel, ChannelAccount, DeliveryReceipt, IgnoredEvent, InboundMessage, Location, MessageKind
from tests.adapters.test_messenger_parse import make_account as messenger_account
from tests.adapters.test_viber import make_account as viber_account

FIXTURES = Path(__file__).parent.parent / "fixtures"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WHATSAPP_NUMBER = "106540352242922"


def payload(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / f"{name}.json").read_bytes()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def messenger(session: aiohttp.ClientSession) -> MessengerAdapter:
    return MessengerAdapter(messenger_account(), session)


@pytest.fixture
def viber(session: aiohttp.ClientSession) -> ViberAdapter:
    return ViberAdapter(viber_account(), session, clock=lambda: NOW)


@pytest.fixture
def whatsapp(session: aiohttp.ClientSession) -> WhatsAppCloudAdapter:
    account = ChannelAccount(
        id="wa-cloud",
        channel=Channel.WHATSAPP,
        provider="cloud",
        queue="support",
        api_base="https://graph.example.test/v21.0",
        credentials={
            "phone_number_id": WHATSAPP_NUMBER,
            "app_secret": "whatsapp-app-secret",
            "verify_token": "verify-me",
            "access_token": "token",
        },
    )
    return WhatsAppCloudAdapter(account, session)


def only(events: object) -> object:
    assert isinstance(events, list | tuple)
    assert len(events) == 1
    return events[0]


def messenger_text(timestamp: str) -> bytes:
    """The recorded text message with its item ``timestamp`` replaced and ``entry.time`` 9 s later."""
    body = payload("messenger", "text")
    body = body.replace(b'"time":1700000000000', b'"time":1700000009000')
    body = body.replace(b'"timestamp":1700000000000', timestamp.encode())
    assert timestamp.encode() in body
    assert b'"time":1700000009000' in body
    return body


# ------------------------------------------------------------------ Messenger


def test_messenger_delivery_without_timestamp_uses_the_entry_time(messenger: MessengerAdapter) -> None:
    """Meta's own message_deliveries sample has no ``timestamp`` on the messaging item."""
    receipt = only(messenger.parse(payload("messenger", "delivery_without_timestamp")))
    assert isinstance(receipt, DeliveryReceipt)
    assert receipt.occurred_at == datetime.fromtimestamp(1700000006, tz=UTC)
    assert receipt.provider_message_ids == ("m_out_sent_1",)
    assert receipt.watermark == datetime.fromtimestamp(1700000004, tz=UTC)


def test_messenger_entry_time_in_seconds_is_read_as_seconds(messenger: MessengerAdapter) -> None:
    receipt = only(messenger.parse(payload("messenger", "delivery_entry_time_in_seconds")))
    assert isinstance(receipt, DeliveryReceipt)
    assert receipt.occurred_at == datetime.fromtimestamp(1700000006, tz=UTC)


@pytest.mark.parametrize("timestamp", ["1e17", "-5", "1" * 4000, "-1e17", "17e2", "true", '"soon"'])
def test_messenger_implausible_timestamp_falls_back_to_the_entry_time(
    messenger: MessengerAdapter, timestamp: str
) -> None:
    body = messenger_text(f'"timestamp":{timestamp}')
    event = only(messenger.parse(body))
    assert isinstance(event, InboundMessage)
    assert event.sent_at == datetime.fromtimestamp(1700000009, tz=UTC)  # entry.time
    assert event.text


def test_messenger_implausible_timestamp_and_entry_time_fall_back_to_the_receive_time(
    messenger: MessengerAdapter,
) -> None:
    data = json.loads(payload("messenger", "text"))
    data["entry"][0]["time"] = 10**30
    data["entry"][0]["messaging"][0]["timestamp"] = 1e17
    before = datetime.now(UTC)
    event = only(messenger.parse(json.dumps(data).encode()))
    assert isinstance(event, InboundMessage)
    assert before <= event.sent_at <= datetime.now(UTC)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_messenger_nan_or_infinity_is_not_json(messenger: MessengerAdapter, constant: str) -> None:
    body = messenger_text(f'"timestamp":{constant}')
    with pytest.raises(PayloadMalformed) as caught:
        messenger.parse(body)
    assert caught.value.code == "invalid_json"


@pytest.mark.parametrize("watermark", [1e17, -1, "x" * 10])
def test_messenger_implausible_watermark_is_malformed(messenger: MessengerAdapter, watermark: object) -> None:
    data = json.loads(payload("messenger", "read"))
    data["entry"][0]["messaging"][0]["read"]["watermark"] = watermark
    with pytest.raises(PayloadMalformed) as caught:
        messenger.parse(json.dumps(data).encode())
    assert caught.value.code == "invalid_field"


def test_messenger_sticker_attachment_is_a_sticker_not_an_empty_file(messenger: MessengerAdapter) -> None:
    event = only(messenger.parse(payload("messenger", "sticker_type")))
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.STICKER
    [attachment] = event.attachments
    assert attachment.kind is MessageKind.STICKER
    assert attachment.url is not None
    assert attachment.url.startswith("https://scontent.xx.fbcdn.net/")
    assert attachment.provider_media_id == "1505197612960309"


def test_messenger_fallback_link_reaches_the_text(messenger: MessengerAdapter) -> None:
    event = only(messenger.parse(payload("messenger", "fallback_without_text")))
    assert isinstance(event, InboundMessage)
    assert event.text == "Summer sale - Example shop\nhttps://example.com/sale"


def test_messenger_fallback_link_already_in_the_text_is_not_repeated(messenger: MessengerAdapter) -> None:
    event = only(messenger.parse(payload("messenger", "fallback")))
    assert isinstance(event, InboundMessage)
    assert event.text == "look https://example.com/p/42"


def test_messenger_location_keeps_its_link(messenger: MessengerAdapter) -> None:
    event = only(messenger.parse(payload("messenger", "location")))
    assert isinstance(event, InboundMessage)
    assert event.location is not None
    assert event.location.url == "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.bing.com%2Fmaps"


# -------------------------------------------------------------- WhatsApp Cloud


def test_whatsapp_voice_type_is_an_audio_message(whatsapp: WhatsAppCloudAdapter) -> None:
    event = only(whatsapp.parse(payload("whatsapp_cloud", "voice")))
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.AUDIO
    [attachment] = event.attachments
    assert (attachment.kind, attachment.provider_media_id) == (MessageKind.AUDIO, "1013859600285441")
    assert attachment.mime_type == "audio/ogg; codecs=opus"
    assert ("voice", "true") in event.extra


def test_whatsapp_flow_reply_is_stored_as_its_fields(whatsapp: WhatsAppCloudAdapter) -> None:
    event = only(whatsapp.parse(payload("whatsapp_cloud", "flow_reply")))
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.TEXT
    assert event.text == "date: 2026-12-08\npeople: 3\nnotes: window seat"
    assert event.reply_to == "gBGGEiRVVgBPAgm7FUgc73noXjo"
    facts = dict(event.extra)
    assert facts["flow_token"] == "booking-7781"
    assert facts["flow_name"] == "flow"
    assert json.loads(facts["flow_response"])["people"] == 3


def test_whatsapp_flow_reply_whose_response_is_not_json_is_shown_as_sent(whatsapp: WhatsAppCloudAdapter) -> None:
    body = payload("whatsapp_cloud", "flow_reply")
    data = json.loads(body)
    value = data["entry"][0]["changes"][0]["value"]
    value["messages"][0]["interactive"]["nfm_reply"]["response_json"] = "{broken"
    event = only(whatsapp.parse(json.dumps(data).encode()))
    assert isinstance(event, InboundMessage)
    assert event.text == "{broken"


def test_whatsapp_order_is_stored_as_items_and_total(whatsapp: WhatsAppCloudAdapter) -> None:
    event = only(whatsapp.parse(payload("whatsapp_cloud", "order_two_items")))
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.TEXT
    assert event.text == (
        "for Friday please\n2 x mug-blue at 12.5 EUR\n1 x tea-earl-grey at 7.25 EUR\nTotal: 32.25 EUR"
    )
    assert ("catalog_id", "1537763063523365") in event.extra


def test_whatsapp_recorded_order_is_no_longer_dropped(whatsapp: WhatsAppCloudAdapter) -> None:
    event = only(whatsapp.parse(payload("whatsapp_cloud", "order")))
    assert isinstance(event, InboundMessage)
    assert event.text == "please\n1 x di9ozbzfi4 at 30 USD\nTotal: 30 USD"


def test_whatsapp_location_keeps_its_url(whatsapp: WhatsAppCloudAdapter) -> None:
    event = only(whatsapp.parse(payload("whatsapp_cloud", "location")))
    assert isinstance(event, InboundMessage)
    assert event.location == Location(
        latitude=37.483253479004,
        longitude=-122.14960479736,
        name="Meta Headquarters",
        address="1 Hacker Way, Menlo Park, CA 94025",
        url="https://meta.com",
    )


@pytest.mark.parametrize("timestamp", ["1e308", '"1e308"', '"-3"', '"99999999999999999999"', "null"])
def test_whatsapp_implausible_timestamp_is_the_receive_time(whatsapp: WhatsAppCloudAdapter, timestamp: str) -> None:
    body = payload("whatsapp_cloud", "text").replace(b'"timestamp":"1749416383"', f'"timestamp":{timestamp}'.encode())
    assert f'"timestamp":{timestamp}'.encode() in body
    before = datetime.now(UTC)
    event = only(whatsapp.parse(body))
    assert isinstance(event, InboundMessage)
    assert before <= event.sent_at <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize(("latitude", "longitude"), [(1e308, 0), (91, 0), (0, -181), ("north", 0)])
def test_whatsapp_location_outside_the_globe_is_malformed(
    whatsapp: WhatsAppCloudAdapter, latitude: object, longitude: object
) -> None:
    data = json.loads(payload("whatsapp_cloud", "location"))
    location = data["entry"][0]["changes"][0]["value"]["messages"][0]["location"]
    location.update(latitude=latitude, longitude=longitude)
    with pytest.raises(PayloadMalformed):
        whatsapp.parse(json.dumps(data).encode())


# ----------------------------------------------------------------------- Viber


def test_viber_webhook_check_with_an_implausible_timestamp_is_acknowledged(viber: ViberAdapter) -> None:
    event = only(viber.parse(payload("viber", "webhook_implausible_timestamp"), {}))
    assert isinstance(event, IgnoredEvent)
    assert event.kind == "webhook"


@pytest.mark.parametrize("timestamp", ["null", '"later"', "1e30", "-1"])
def test_viber_webhook_check_without_a_usable_timestamp_is_acknowledged(viber: ViberAdapter, timestamp: str) -> None:
    body = f'{{"event": "webhook", "timestamp": {timestamp}, "message_token": 1}}'.encode()
    assert isinstance(only(viber.parse(body, {})), IgnoredEvent)


def test_viber_message_with_an_implausible_timestamp_is_the_receive_time(viber: ViberAdapter) -> None:
    body = payload("viber", "message_text").replace(b'"timestamp": 1457764197627', b'"timestamp": 99999999999999999')
    assert b'"timestamp": 99999999999999999' in body
    event = only(viber.parse(body, {}))
    assert isinstance(event, InboundMessage)
    assert event.sent_at == NOW


def test_viber_contact_keeps_the_text_written_with_it(viber: ViberAdapter) -> None:
    event = only(viber.parse(payload("viber", "message_contact_with_text"), {}))
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.CONTACT
    assert event.text == "my colleague, call him\nItamar +972511123123"


def test_viber_url_keeps_the_text_written_with_it(viber: ViberAdapter) -> None:
    event = only(viber.parse(payload("viber", "message_url_with_text"), {}))
    assert isinstance(event, InboundMessage)
    assert event.text == "is this still in stock?\nhttps://www.example.com/order/42"


def test_viber_contact_and_url_without_text_read_as_before(viber: ViberAdapter) -> None:
    contact = only(viber.parse(payload("viber", "message_contact"), {}))
    url = only(viber.parse(payload("viber", "message_url"), {}))
    assert isinstance(contact, InboundMessage)
    assert isinstance(url, InboundMessage)
    assert (contact.text, url.text) == ("Itamar +972511123123", "https://www.example.com/order/42")


# --------------------------------------------------------------- deep nesting


@pytest.mark.parametrize("provider", ["messenger", "whatsapp", "viber"])
def test_json_nested_100000_levels_is_malformed_not_a_crash(
    provider: str, messenger: MessengerAdapter, whatsapp: WhatsAppCloudAdapter, viber: ViberAdapter
) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    parse = {
        "messenger": lambda: messenger.parse(body),
        "whatsapp": lambda: whatsapp.parse(body),
        "viber": lambda: viber.parse(body, {}),
    }[provider]
    with pytest.raises(PayloadMalformed) as caught:
        parse()
    assert caught.value.code == "too_deep"
