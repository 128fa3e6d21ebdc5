"""ViberAdapter: signature, parsing of recorded Viber callbacks, sends and their status codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.viber import ViberAdapter, sign
from hub.errors import PayloadMalformed, ProviderRejected, ProviderUnavailable, SignatureInvalid
from hub.model import (
    Attachment,
    Channel,
    ChannelAccount,
    DeliveryReceipt,
    DeliveryState,
    IgnoredEvent,
    InboundMessage,
    MessageKind,
    OutboundMessage,
    Subscription,
    SubscriptionChanged,
    utc_from_millis,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "viber"
TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
API = "https://chatapi.viber.example.test/pa"
USER = "01234567890A="


def payload(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def make_account(account_id: str = "viber-main", name: str = "Acme Support") -> ChannelAccount:
    return ChannelAccount(
        id=account_id,
        channel=Channel.VIBER,
        provider="viber",
        queue="support",
        api_base=API,
        credentials={"auth_token": TOKEN, "name": name},
    )


@pytest.fixture
async def adapter() -> AsyncIterator[ViberAdapter]:
    async with aiohttp.ClientSession() as session:
        yield ViberAdapter(make_account(), session)


def one(adapter: ViberAdapter, name: str) -> object:
    events = adapter.parse(payload(name), {})
    assert len(events) == 1
    return events[0]


def message(adapter: ViberAdapter, name: str) -> InboundMessage:
    event = one(adapter, name)
    assert isinstance(event, InboundMessage)
    return event


# ----------------------------------------------------------------- signature


def test_a_correctly_signed_callback_is_accepted(adapter: ViberAdapter) -> None:
    body = payload("message_text")
    adapter.verify("", {"X-Viber-Content-Signature": sign(body, TOKEN)}, body)


def test_a_missing_signature_is_refused(adapter: ViberAdapter) -> None:
    with pytest.raises(SignatureInvalid, match="missing"):
        adapter.verify("", {}, payload("message_text"))


def test_a_signature_made_with_another_token_is_refused(adapter: ViberAdapter) -> None:
    body = payload("message_text")
    with pytest.raises(SignatureInvalid):
        adapter.verify("", {"X-Viber-Content-Signature": sign(body, "another-bot-token")}, body)


def test_a_body_altered_by_one_byte_is_refused(adapter: ViberAdapter) -> None:
    body = payload("message_text")
    signature = sign(body, TOKEN)
    altered = body.replace(b"service", b"servicE")
    with pytest.raises(SignatureInvalid):
        adapter.verify("", {"x-viber-content-signature": signature}, altered)


# -------------------------------------------------------------------- parsing


def test_a_text_message_keeps_sender_token_and_provider_time(adapter: ViberAdapter) -> None:
    event = message(adapter, "message_text")
    assert event.channel is Channel.VIBER
    assert event.sender_id == USER
    assert event.provider_message_id == "4912661846655238145"
    assert event.text == "a message to the service"
    assert event.sender_name == "John McClane"
    assert event.sender_avatar is not None
    assert event.sent_at == utc_from_millis(1457764197627)
    assert dict(event.extra)["tracking_data"] == "ticket:123"


def test_a_message_token_above_two_to_the_53_is_kept_exactly(adapter: ViberAdapter) -> None:
    token = 2**63 - 25
    body = json.loads(payload("message_text"))
    body["message_token"] = token
    (event,) = adapter.parse(json.dumps(body).encode(), {})
    assert isinstance(event, InboundMessage)
    assert event.provider_message_id == str(token)
    assert float(token) != token  # a float would have rounded it


@pytest.mark.parametrize(
    ("name", "kind"),
    [("message_picture", MessageKind.IMAGE), ("message_video", MessageKind.VIDEO), ("message_file", MessageKind.FILE)],
)
def test_media_messages_become_attachments(adapter: ViberAdapter, name: str, kind: MessageKind) -> None:
    event = message(adapter, name)
    assert event.kind is kind
    (attachment,) = event.attachments
    assert attachment.kind is kind
    assert attachment.url is not None
    assert attachment.url.startswith("https://dl-media.viber.com/")


def test_a_file_keeps_its_name_and_size(adapter: ViberAdapter) -> None:
    (attachment,) = message(adapter, "message_file").attachments
    assert (attachment.file_name, attachment.size) == ("invoice.pdf", 20480)


def test_a_picture_keeps_its_caption(adapter: ViberAdapter) -> None:
    assert message(adapter, "message_picture").text == "caption"


def test_a_sticker_keeps_its_id(adapter: ViberAdapter) -> None:
    event = message(adapter, "message_sticker")
    assert event.kind is MessageKind.STICKER
    assert event.attachments[0].provider_media_id == "46105"


def test_a_contact_keeps_name_and_phone(adapter: ViberAdapter) -> None:
    event = message(adapter, "message_contact")
    assert event.kind is MessageKind.CONTACT
    assert event.text == "Itamar +972511123123"
    assert dict(event.extra)["contact_phone"] == "+972511123123"


def test_a_location_keeps_its_coordinates(adapter: ViberAdapter) -> None:
    event = message(adapter, "message_location")
    assert event.kind is MessageKind.LOCATION
    assert event.location is not None
    assert (event.location.latitude, event.location.longitude) == (50.0875, 14.4213)


def test_a_url_message_is_text_with_the_url(adapter: ViberAdapter) -> None:
    event = message(adapter, "message_url")
    assert event.kind is MessageKind.TEXT
    assert event.text == "https://www.example.com/order/42"


def test_subscribed_keeps_name_and_avatar(adapter: ViberAdapter) -> None:
    event = one(adapter, "subscribed")
    assert isinstance(event, SubscriptionChanged)
    assert event.state is Subscription.SUBSCRIBED
    assert event.user_id == USER
    assert event.display_name == "John McClane"
    assert event.provider_event_id == "4912661846655238145"


def test_unsubscribed_names_the_user(adapter: ViberAdapter) -> None:
    event = one(adapter, "unsubscribed")
    assert isinstance(event, SubscriptionChanged)
    assert event.state is Subscription.UNSUBSCRIBED
    assert event.user_id == USER


def test_conversation_started_by_someone_not_subscribed_is_opened(adapter: ViberAdapter) -> None:
    event = one(adapter, "conversation_started")
    assert isinstance(event, SubscriptionChanged)
    assert event.state is Subscription.OPENED
    assert event.user_id == "3SQNc4FPUQmysaM/AQEhXg=="


def test_conversation_started_by_a_subscriber_says_subscribed(adapter: ViberAdapter) -> None:
    body = json.loads(payload("conversation_started"))
    body["subscribed"] = True
    (event,) = adapter.parse(json.dumps(body).encode(), {})
    assert isinstance(event, SubscriptionChanged)
    assert event.state is Subscription.SUBSCRIBED


@pytest.mark.parametrize(
    ("name", "state"),
    [("delivered", DeliveryState.DELIVERED), ("seen", DeliveryState.READ), ("failed", DeliveryState.FAILED)],
)
def test_receipts_name_our_message_by_token(adapter: ViberAdapter, name: str, state: DeliveryState) -> None:
    event = one(adapter, name)
    assert isinstance(event, DeliveryReceipt)
    assert event.state is state
    assert event.provider_message_ids == ("5466297578174182639",)
    assert event.recipient_id == USER


def test_a_failed_receipt_carries_viber_s_description(adapter: ViberAdapter) -> None:
    event = one(adapter, "failed")
    assert isinstance(event, DeliveryReceipt)
    assert event.error_reason is not None
    assert "failure description" in event.error_reason


@pytest.mark.parametrize("name", ["webhook", "client_status"])
def test_the_webhook_callback_and_unknown_events_are_ignored(adapter: ViberAdapter, name: str) -> None:
    event = one(adapter, name)
    assert isinstance(event, IgnoredEvent)
    assert event.kind == name


def test_a_message_type_we_do_not_handle_is_ignored(adapter: ViberAdapter) -> None:
    body = json.loads(payload("message_text"))
    body["message"] = {"type": "rich_media", "rich_media": {}}
    (event,) = adapter.parse(json.dumps(body).encode(), {})
    assert isinstance(event, IgnoredEvent)


def test_a_body_that_is_not_json_is_malformed(adapter: ViberAdapter) -> None:
    with pytest.raises(PayloadMalformed) as caught:
        adapter.parse(b"{nope", {})
    assert caught.value.code == "invalid_json"


def test_a_message_without_sender_is_malformed(adapter: ViberAdapter) -> None:
    body = json.loads(payload("message_text"))
    del body["sender"]
    with pytest.raises(PayloadMalformed) as caught:
        adapter.parse(json.dumps(body).encode(), {})
    assert caught.value.code == "missing_field"


def test_a_float_message_token_is_malformed(adapter: ViberAdapter) -> None:
    body = json.loads(payload("delivered"))
    body["message_token"] = 1.5
    with pytest.raises(PayloadMalformed):
        adapter.parse(json.dumps(body).encode(), {})


# ---------------------------------------------------------------------- send


def sent_json(mocked: aioresponses, index: int = 0) -> dict[str, object]:
    calls = [call for (_, _), found in mocked.requests.items() for call in found]
    body = calls[index].kwargs["json"]
    assert isinstance(body, dict)
    assert calls[index].kwargs["headers"]["X-Viber-Auth-Token"] == TOKEN
    return body


async def test_a_text_goes_out_with_the_bot_name_cut_to_28(adapter: ViberAdapter) -> None:
    long_name = ViberAdapter(make_account(name="A" * 40), adapter._session)
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", payload={"status": 0, "status_message": "ok", "message_token": 2**62 + 1})
        receipt = await long_name.send(OutboundMessage(account_id="viber-main", recipient_id=USER, text="Hello"))
        body = sent_json(mocked)
    assert receipt.provider_message_id == str(2**62 + 1)
    assert body["receiver"] == USER
    assert body["type"] == "text"
    assert body["text"] == "Hello"
    assert body["sender"] == {"name": "A" * 28}


async def test_a_picture_carries_the_text_as_caption(adapter: ViberAdapter) -> None:
    picture = Attachment(kind=MessageKind.IMAGE, url="https://cdn.example.test/a.jpg")
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", payload={"status": 0, "status_message": "ok", "message_token": 5})
        outbound = OutboundMessage(account_id="viber-main", recipient_id=USER, text="look", attachments=(picture,))
        await adapter.send(outbound)
        body = sent_json(mocked)
    assert (body["type"], body["media"], body["text"]) == ("picture", "https://cdn.example.test/a.jpg", "look")


async def test_a_text_longer_than_a_caption_goes_before_the_picture(adapter: ViberAdapter) -> None:
    picture = Attachment(kind=MessageKind.IMAGE, url="https://cdn.example.test/a.jpg")
    long_text = "x" * 513  # Viber captions a picture with up to 512 characters (docs/channels.md)
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", payload={"status": 0, "status_message": "ok", "message_token": 5})
        mocked.post(f"{API}/send_message", payload={"status": 0, "status_message": "ok", "message_token": 6})
        outbound = OutboundMessage(account_id="viber-main", recipient_id=USER, text=long_text, attachments=(picture,))
        await adapter.send(outbound)
        first, second = sent_json(mocked, 0), sent_json(mocked, 1)
    assert (first["type"], first["text"]) == ("text", long_text)
    assert (second["type"], second["text"]) == ("picture", "")


async def test_a_file_name_is_cut_to_vibers_256_characters_keeping_its_extension(adapter: ViberAdapter) -> None:
    name = "r" * 300 + ".pdf"
    pdf = Attachment(kind=MessageKind.FILE, url="https://cdn.example.test/f", size=2048, file_name=name)
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", payload={"status": 0, "status_message": "ok", "message_token": 7})
        await adapter.send(OutboundMessage(account_id="viber-main", recipient_id=USER, attachments=(pdf,)))
        body = sent_json(mocked)
    assert len(body["file_name"]) == 256
    assert body["file_name"].endswith(".pdf")


async def test_a_file_goes_out_after_its_text(adapter: ViberAdapter) -> None:
    pdf = Attachment(kind=MessageKind.FILE, url="https://cdn.example.test/invoice.pdf", size=2048)
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", payload={"status": 0, "status_message": "ok", "message_token": 7})
        mocked.post(f"{API}/send_message", payload={"status": 0, "status_message": "ok", "message_token": 8})
        receipt = await adapter.send(
            OutboundMessage(account_id="viber-main", recipient_id=USER, text="your invoice", attachments=(pdf,))
        )
        first, second = sent_json(mocked, 0), sent_json(mocked, 1)
    assert first["type"] == "text"
    assert (second["type"], second["file_name"], second["size"]) == ("file", "invoice.pdf", 2048)
    assert receipt.provider_message_id == "8"


@pytest.mark.parametrize(("status", "word"), [(6, "subscribed"), (5, "registered"), (2, "token"), (13, "old")])
async def test_permanent_statuses_are_rejections_with_a_sentence(adapter: ViberAdapter, status: int, word: str) -> None:
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", payload={"status": status, "status_message": "nope"})
        with pytest.raises(ProviderRejected) as caught:
            await adapter.send(OutboundMessage(account_id="viber-main", recipient_id=USER, text="x"))
    assert caught.value.provider_code == str(status)
    assert word in caught.value.reason


async def test_too_many_requests_is_transient(adapter: ViberAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", payload={"status": 12, "status_message": "tooManyRequests"})
        with pytest.raises(ProviderUnavailable) as caught:
            await adapter.send(OutboundMessage(account_id="viber-main", recipient_id=USER, text="x"))
    assert caught.value.provider_code == "12"


async def test_an_unknown_status_is_transient_once_then_permanent(adapter: ViberAdapter) -> None:
    outbound = OutboundMessage(account_id="viber-main", recipient_id=USER, text="x", idempotency_key="k1")
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", payload={"status": 99, "status_message": "?"}, repeat=True)
        with pytest.raises(ProviderUnavailable):
            await adapter.send(outbound)
        with pytest.raises(ProviderRejected) as caught:
            await adapter.send(outbound)
    assert caught.value.provider_code == "99"


async def test_a_server_error_is_transient(adapter: ViberAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", status=502, body="Bad Gateway")
        with pytest.raises(ProviderUnavailable):
            await adapter.send(OutboundMessage(account_id="viber-main", recipient_id=USER, text="x"))


async def test_a_timeout_is_transient(adapter: ViberAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(f"{API}/send_message", exception=TimeoutError())
        with pytest.raises(ProviderUnavailable):
            await adapter.send(OutboundMessage(account_id="viber-main", recipient_id=USER, text="x"))


async def test_check_describes_the_bot(adapter: ViberAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(
            f"{API}/get_account_info",
            payload={"status": 0, "status_message": "ok", "name": "Acme", "uri": "acme", "subscribers_count": 3},
        )
        line = await adapter.check()
    assert "Acme" in line
    assert "3 subscribers" in line


async def test_set_webhook_asks_for_every_callback(adapter: ViberAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(f"{API}/set_webhook", payload={"status": 0, "status_message": "ok"})
        await adapter.set_webhook("https://hub.example.test/webhooks/viber/viber-main")
        body = sent_json(mocked)
    assert body["url"] == "https://hub.example.test/webhooks/viber/viber-main"
    assert set(body["event_types"]) >= {"delivered", "seen", "failed", "conversation_started"}  # type: ignore[call-overload]


async def test_user_details_become_a_profile_update(adapter: ViberAdapter) -> None:
    with aioresponses() as mocked:
        mocked.post(
            f"{API}/get_user_details",
            payload={
                "status": 0,
                "status_message": "ok",
                "user": {"id": USER, "name": "John", "avatar": "https://a/b"},
            },
        )
        update = await adapter.user_details(USER)
    assert (update.external_id, update.display_name, update.avatar) == (USER, "John", "https://a/b")


@pytest.mark.parametrize("value", [2**70, -1, 1.5, True, [{}], {"a": 1}, ""])
@pytest.mark.parametrize(
    ("name", "person"), [("subscribed", "user"), ("conversation_started", "user"), ("message_text", "sender")]
)
def test_a_name_or_avatar_that_is_not_text_is_no_name(
    adapter: ViberAdapter, value: object, name: str, person: str
) -> None:
    """Passed on as sent, 2^70 overflowed the store and a list could not be bound: a 500 Viber retried for ever."""
    data = json.loads(payload(name))
    data[person]["name"] = data[person]["avatar"] = value
    (event,) = adapter.parse(json.dumps(data).encode(), {})
    if isinstance(event, InboundMessage):
        assert (event.sender_name, event.sender_avatar) == (None, None)
    else:
        assert isinstance(event, SubscriptionChanged)
        assert (event.display_name, event.avatar) == (None, None)


@pytest.mark.parametrize("value", [2**70, 1.5, True, [{}], {"a": 1}])
def test_a_file_name_or_size_of_the_wrong_type_is_left_out(adapter: ViberAdapter, value: object) -> None:
    """A file name of 2^70 or a list reached the store as sent: a 500 Viber retried for ever."""
    data = json.loads(payload("message_file"))
    data["message"]["file_name"] = data["message"]["file_size"] = value
    (event,) = adapter.parse(json.dumps(data).encode(), {})
    assert isinstance(event, InboundMessage)
    (attachment,) = event.attachments
    assert (attachment.url, attachment.file_name, attachment.size) == (
        "https://dl-media.viber.com/invoice.pdf",
        None,
        None,
    )


@pytest.mark.parametrize("name", ["message_file", "message_picture", "message_video"])
@pytest.mark.parametrize("value", [7, True, [{}], {"a": 1}])
def test_a_media_url_that_is_not_text_is_a_malformed_message(adapter: ViberAdapter, name: str, value: object) -> None:
    """The store called .startswith on it (AttributeError, a 500); a file without its URL cannot be used."""
    data = json.loads(payload(name))
    data["message"]["media"] = value
    with pytest.raises(PayloadMalformed):
        adapter.parse(json.dumps(data).encode(), {})


@pytest.mark.parametrize("value", [7, True, [{}], {"a": 1}])
def test_a_sticker_whose_media_is_not_text_keeps_its_sticker_id(adapter: ViberAdapter, value: object) -> None:
    data = json.loads(payload("message_sticker"))
    data["message"]["media"] = value
    (event,) = adapter.parse(json.dumps(data).encode(), {})
    assert isinstance(event, InboundMessage)
    (attachment,) = event.attachments
    assert attachment.url is None
    assert attachment.provider_media_id is not None


@pytest.mark.parametrize("value", [7, 2**70, True, [{}], {"a": 1}])
@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("message_text", ("sender", "id")),
        ("subscribed", ("user", "id")),
        ("conversation_started", ("user", "id")),
        ("unsubscribed", ("user_id",)),
        ("delivered", ("user_id",)),
    ],
)
def test_a_user_id_that_is_not_a_string_is_a_malformed_callback(
    adapter: ViberAdapter, value: object, name: str, path: tuple[str, ...]
) -> None:
    """Stored as ``str(value)`` ("[{}]"), it named an identity nobody could answer; Viber's ids are strings."""
    data = json.loads(payload(name))
    holder = data
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    with pytest.raises(PayloadMalformed) as refused:
        adapter.parse(json.dumps(data).encode(), {})
    assert refused.value.code == "invalid_field"
