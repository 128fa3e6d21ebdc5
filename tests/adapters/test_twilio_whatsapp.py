"""TwilioWhatsAppAdapter: signature, parsing of recorded Twilio forms, sends and their error classes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.twilio_whatsapp import TwilioWhatsAppAdapter, adapter_for_delivery, sign
from hub.errors import PayloadMalformed, ProviderRejected, ProviderUnavailable, SignatureInvalid, UnknownAccount
from hub.model import (
    Channel,
    ChannelAccount,
    DeliveryReceipt,
    DeliveryState,
    InboundMessage,
    MessageKind,
    OutboundMessage,
    TemplateBinding,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "twilio"
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token"
URL = "https://hub.example.test/webhooks/twilio"
API = "https://api.twilio.example.test"
MESSAGES = f"{API}/2010-04-01/Accounts/{SID}/Messages.json"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def form(name: str) -> bytes:
    return (FIXTURES / f"{name}.form").read_bytes()


def make_account(number: str = "+14155238886", account_id: str = "wa-twilio") -> ChannelAccount:
    return ChannelAccount(
        id=account_id,
        channel=Channel.WHATSAPP,
        provider="twilio",
        queue="support",
        api_base=API,
        credentials={"account_sid": SID, "auth_token": TOKEN, "from_number": number},
    )


def signed(body: bytes, url: str = URL, token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": sign(url, parse_qsl(body.decode(), keep_blank_values=True), token)}


@pytest.fixture
async def adapter() -> AsyncIterator[TwilioWhatsAppAdapter]:
    async with aiohttp.ClientSession() as session:
        yield TwilioWhatsAppAdapter(make_account(), session, clock=lambda: NOW)


def message(adapter: TwilioWhatsAppAdapter, name: str) -> InboundMessage:
    events = adapter.parse(form(name), {})
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, InboundMessage)
    return event


# ----------------------------------------------------------------- signature


def test_a_correctly_signed_form_is_accepted(adapter: TwilioWhatsAppAdapter) -> None:
    body = form("inbound_text")
    adapter.verify(URL, signed(body), body)


def test_the_signature_header_is_found_whatever_its_case(adapter: TwilioWhatsAppAdapter) -> None:
    body = form("inbound_text")
    adapter.verify(URL, {"x-twilio-signature": signed(body)["X-Twilio-Signature"]}, body)


def test_a_missing_signature_is_refused(adapter: TwilioWhatsAppAdapter) -> None:
    with pytest.raises(SignatureInvalid, match="missing"):
        adapter.verify(URL, {}, form("inbound_text"))


def test_a_signature_made_with_another_token_is_refused(adapter: TwilioWhatsAppAdapter) -> None:
    body = form("inbound_text")
    with pytest.raises(SignatureInvalid):
        adapter.verify(URL, signed(body, token="someone-else"), body)


def test_a_body_altered_by_one_byte_is_refused(adapter: TwilioWhatsAppAdapter) -> None:
    body = form("inbound_text")
    headers = signed(body)
    altered = body.replace(b"order", b"ordes")
    with pytest.raises(SignatureInvalid):
        adapter.verify(URL, headers, altered)


def test_a_signature_for_another_url_is_refused(adapter: TwilioWhatsAppAdapter) -> None:
    body = form("inbound_text")
    with pytest.raises(SignatureInvalid):
        adapter.verify(URL, signed(body, url="https://evil.example.test/webhooks/twilio"), body)


def test_an_explicit_default_port_in_the_signed_url_is_accepted(adapter: TwilioWhatsAppAdapter) -> None:
    body = form("inbound_text")
    headers = signed(body, url="https://hub.example.test:443/webhooks/twilio")
    adapter.verify(URL, headers, body)


def test_parameters_we_do_not_know_are_signed_too(adapter: TwilioWhatsAppAdapter) -> None:
    body = form("inbound_text") + b"&SomethingNew=42"
    adapter.verify(URL, signed(body), body)
    with pytest.raises(SignatureInvalid):
        adapter.verify(URL, signed(form("inbound_text")), body)


# -------------------------------------------------------------------- parsing


def test_a_text_message_keeps_sender_profile_and_phone(adapter: TwilioWhatsAppAdapter) -> None:
    event = message(adapter, "inbound_text")
    assert event.channel is Channel.WHATSAPP
    assert event.account_id == "wa-twilio"
    assert event.sender_id == "+447700900123"
    assert event.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    assert event.kind is MessageKind.TEXT
    assert event.text == "Hi, where is my order?"
    assert event.sender_name == "Jane Doe"
    assert event.sender_phone == "+447700900123"
    assert event.sent_at == NOW


@pytest.mark.parametrize(
    ("name", "kind", "mime"),
    [
        ("inbound_image", MessageKind.IMAGE, "image/jpeg"),
        ("inbound_audio", MessageKind.AUDIO, "audio/ogg"),
        ("inbound_video", MessageKind.VIDEO, "video/mp4"),
        ("inbound_document", MessageKind.FILE, "application/pdf"),
        ("inbound_sticker", MessageKind.STICKER, "image/webp"),
        ("inbound_contact", MessageKind.CONTACT, "text/vcard"),
    ],
)
def test_media_become_attachments_of_the_kind_their_content_type_says(
    adapter: TwilioWhatsAppAdapter, name: str, kind: MessageKind, mime: str
) -> None:
    event = message(adapter, name)
    assert event.kind is kind
    assert len(event.attachments) == 1
    assert event.attachments[0].mime_type == mime
    assert event.attachments[0].url is not None
    assert event.attachments[0].url.startswith("https://api.twilio.com/2010-04-01/Accounts/")


def test_an_image_keeps_its_caption(adapter: TwilioWhatsAppAdapter) -> None:
    assert message(adapter, "inbound_image").text == "Here is the damaged box"


def test_every_media_item_is_kept_in_order(adapter: TwilioWhatsAppAdapter) -> None:
    event = message(adapter, "inbound_two_media")
    assert [a.kind for a in event.attachments] == [MessageKind.IMAGE, MessageKind.FILE]
    assert event.text is None


def test_a_location_keeps_coordinates_label_and_address(adapter: TwilioWhatsAppAdapter) -> None:
    event = message(adapter, "inbound_location")
    assert event.kind is MessageKind.LOCATION
    assert event.location is not None
    assert (event.location.latitude, event.location.longitude) == (50.0875, 14.4213)
    assert event.location.name == "Our shop"
    assert event.location.address == "Staromestske namesti 1, Praha"


def test_a_button_tap_is_a_postback_with_its_payload(adapter: TwilioWhatsAppAdapter) -> None:
    event = message(adapter, "inbound_button")
    assert event.kind is MessageKind.POSTBACK
    assert event.payload == "confirm_yes"
    assert event.text == "Yes"


def test_a_quoted_reply_names_the_message_it_answers(adapter: TwilioWhatsAppAdapter) -> None:
    assert message(adapter, "inbound_reply").reply_to == "SMaa11ef0123456789abcdef0123456789"


def test_forwarded_and_ad_referral_facts_are_kept(adapter: TwilioWhatsAppAdapter) -> None:
    extra = dict(message(adapter, "inbound_forwarded_referral").extra)
    assert extra["Forwarded"] == "true"
    assert extra["ReferralSourceId"] == "120208"
    assert extra["ReferralCtwaClid"] == "ARAkLkA8rmlFeiCktEJQ"
    assert "ReferralNumMedia" in extra


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("status_sent", DeliveryState.SENT),
        ("status_delivered", DeliveryState.DELIVERED),
        ("status_read", DeliveryState.READ),
    ],
)
def test_status_callbacks_become_receipts(adapter: TwilioWhatsAppAdapter, name: str, state: DeliveryState) -> None:
    (event,) = adapter.parse(form(name), {})
    assert isinstance(event, DeliveryReceipt)
    assert event.state is state
    assert event.provider_message_ids == ("SMfe0123456789abcdef0123456789abcd",)
    assert event.recipient_id == "+447700900123"
    assert event.error_code is None


def test_a_failed_status_carries_the_code_and_a_sentence(adapter: TwilioWhatsAppAdapter) -> None:
    (event,) = adapter.parse(form("status_failed_63016"), {})
    assert isinstance(event, DeliveryReceipt)
    assert event.state is DeliveryState.FAILED
    assert event.error_code == "63016"
    assert event.error_reason is not None
    assert "template" in event.error_reason


def test_an_undelivered_status_is_a_failure(adapter: TwilioWhatsAppAdapter) -> None:
    (event,) = adapter.parse(form("status_undelivered_63024"), {})
    assert isinstance(event, DeliveryReceipt)
    assert event.state is DeliveryState.FAILED
    assert event.error_code == "63024"


def test_statuses_before_sent_are_ignored_without_error(adapter: TwilioWhatsAppAdapter) -> None:
    assert adapter.parse(form("status_queued"), {}) == []


@pytest.mark.parametrize(
    ("status", "sender", "to"),
    [
        # the status of a message the customer sent us: our number is To
        ("received", "whatsapp:+447700900123", "whatsapp:+14155238886"),
        ("receiving", "whatsapp:+447700900123", "whatsapp:+14155238886"),
        # a group MMS that reached some of its recipients: nothing WhatsApp sends
        ("partially_delivered", "whatsapp:+14155238886", "whatsapp:+447700900123"),
    ],
)
def test_statuses_that_are_not_about_a_message_of_ours_are_ignored(
    adapter: TwilioWhatsAppAdapter, status: str, sender: str, to: str
) -> None:
    body = urlencode({"MessageSid": "SM0123", "MessageStatus": status, "From": sender, "To": to}).encode()
    assert adapter_for_delivery([adapter], body) is adapter
    assert adapter.parse(body, {}) == []


def test_a_form_without_message_sid_is_malformed(adapter: TwilioWhatsAppAdapter) -> None:
    body = b"From=whatsapp%3A%2B447700900123&To=whatsapp%3A%2B14155238886&Body=hi"
    with pytest.raises(PayloadMalformed) as caught:
        adapter.parse(body, {})
    assert caught.value.code == "missing_field"


def test_a_body_that_is_not_a_form_is_malformed(adapter: TwilioWhatsAppAdapter) -> None:
    with pytest.raises(PayloadMalformed) as caught:
        adapter.parse(b"\xff\xfe{not a form", {})
    assert caught.value.code == "invalid_form"


def test_the_account_is_the_one_whose_number_is_to_or_from() -> None:
    first = TwilioWhatsAppAdapter(make_account("+14155238886", "a"), None)  # type: ignore[arg-type]
    second = TwilioWhatsAppAdapter(make_account("whatsapp:+420777000111", "b"), None)  # type: ignore[arg-type]
    assert adapter_for_delivery([second, first], form("inbound_text")) is first
    assert adapter_for_delivery([second, first], form("status_delivered")) is first
    with pytest.raises(UnknownAccount):
        adapter_for_delivery([second], form("inbound_text"))


def test_a_message_for_another_number_is_refused_by_parse(adapter: TwilioWhatsAppAdapter) -> None:
    body = form("inbound_text").replace(b"%2B14155238886", b"%2B14155230000")
    with pytest.raises(UnknownAccount):
        adapter.parse(body, {})


# ---------------------------------------------------------------------- send


def sent_form(mocked: aioresponses) -> dict[str, list[str]]:
    ((_, calls),) = mocked.requests.items()
    data = calls[0].kwargs["data"]
    found: dict[str, list[str]] = {}
    for key, value in data:
        found.setdefault(key, []).append(value)
    return found


async def test_a_text_goes_out_as_a_whatsapp_form_with_basic_auth(adapter: TwilioWhatsAppAdapter) -> None:
    adapter.status_callback_url = "https://hub.example.test/webhooks/twilio/status"
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=201, payload={"sid": "SMabc", "status": "queued"})
        receipt = await adapter.send(
            OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="Hello")
        )
        sent = sent_form(mocked)
        ((_, calls),) = mocked.requests.items()
        authorization = calls[0].kwargs["headers"]["Authorization"]
    assert receipt.provider_message_id == "SMabc"
    assert sent["To"] == ["whatsapp:+447700900123"]
    assert sent["From"] == ["whatsapp:+14155238886"]
    assert sent["Body"] == ["Hello"]
    assert sent["StatusCallback"] == ["https://hub.example.test/webhooks/twilio/status"]
    assert base64.b64decode(authorization.removeprefix("Basic ")).decode() == f"{SID}:{TOKEN}"


async def test_a_template_goes_out_as_content_sid_and_json_variables(adapter: TwilioWhatsAppAdapter) -> None:
    template = TemplateBinding(content_sid="HX0123", content_variables=(("1", "Jane"), ("2", "12345")))
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=201, payload={"sid": "SMtpl"})
        await adapter.send(
            OutboundMessage(
                account_id="wa-twilio", recipient_id="+447700900123", kind=MessageKind.TEMPLATE, template=template
            )
        )
        sent = sent_form(mocked)
    assert sent["ContentSid"] == ["HX0123"]
    assert json.loads(sent["ContentVariables"][0]) == {"1": "Jane", "2": "12345"}
    assert "Body" not in sent


async def test_media_go_out_as_media_url(adapter: TwilioWhatsAppAdapter) -> None:
    from hub.model import Attachment

    picture = Attachment(kind=MessageKind.IMAGE, url="https://cdn.example.test/a.jpg")
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=201, payload={"sid": "MMpic"})
        await adapter.send(
            OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="see", attachments=(picture,))
        )
        sent = sent_form(mocked)
    assert sent["MediaUrl"] == ["https://cdn.example.test/a.jpg"]


def twilio_error(code: int, status: int = 400) -> dict[str, object]:
    return {
        "code": code,
        "message": f"error {code}",
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@pytest.mark.parametrize("code", [63016, 63015, 21211, 21610, 63024])
async def test_permanent_twilio_errors_are_rejections_with_a_sentence(
    adapter: TwilioWhatsAppAdapter, code: int
) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=400, payload=twilio_error(code))
        with pytest.raises(ProviderRejected) as caught:
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))
    assert caught.value.provider_code == str(code)
    assert caught.value.reason.endswith(".")
    assert caught.value.detail == f"error {code}"


async def test_the_window_rejection_says_to_use_a_template(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=400, payload=twilio_error(63016))
        with pytest.raises(ProviderRejected) as caught:
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))
    assert "template" in caught.value.reason


async def test_the_channel_rate_limit_is_transient(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=429, payload=twilio_error(63018, 429))
        with pytest.raises(ProviderUnavailable) as caught:
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))
    assert caught.value.provider_code in ("63018", "20429")


async def test_63018_on_a_400_is_still_transient(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=400, payload=twilio_error(63018))
        with pytest.raises(ProviderUnavailable) as caught:
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))
    assert caught.value.provider_code == "63018"


async def test_too_many_requests_carries_retry_after(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=429, payload=twilio_error(20429, 429), headers={"Retry-After": "7"})
        with pytest.raises(ProviderUnavailable) as caught:
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))
    assert caught.value.provider_code == "20429"
    assert caught.value.retry_after == 7.0


async def test_a_server_error_is_transient(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=503, body="Service Unavailable")
        with pytest.raises(ProviderUnavailable, match="HTTP 503"):
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))


async def test_a_timeout_is_transient(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, exception=TimeoutError())
        with pytest.raises(ProviderUnavailable, match="in time"):
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))


async def test_a_network_error_is_transient(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, exception=aiohttp.ClientConnectionError("reset"))
        with pytest.raises(ProviderUnavailable, match="could not reach"):
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))


async def test_bad_credentials_are_a_rejection(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(MESSAGES, status=401, payload=twilio_error(20003, 401))
        with pytest.raises(ProviderRejected) as caught:
            await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123", text="x"))
    assert caught.value.provider_code == "20003"


async def test_an_empty_message_is_refused_before_calling_twilio(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses(), pytest.raises(ProviderRejected):
        await adapter.send(OutboundMessage(account_id="wa-twilio", recipient_id="+447700900123"))


async def test_check_describes_the_account(adapter: TwilioWhatsAppAdapter) -> None:
    with aioresponses() as mocked:
        mocked.get(f"{API}/2010-04-01/Accounts/{SID}.json", payload={"friendly_name": "Acme", "status": "active"})
        line = await adapter.check()
    assert "Acme" in line
    assert "active" in line
