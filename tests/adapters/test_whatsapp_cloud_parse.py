"""WhatsAppCloudAdapter.verify and .parse against recorded Cloud API webhook payloads."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from adapters._graph import sign
from adapters.whatsapp_cloud import WhatsAppCloudAdapter
from hub.errors import PayloadMalformed, SignatureInvalid, UnknownAccount
from hub.model import (
    Channel,
    ChannelAccount,
    CustomerActivity,
    DeliveryReceipt,
    DeliveryState,
    IgnoredEvent,
    InboundMessage,
    Location,
    MessageKind,
    NumberChanged,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "whatsapp_cloud"
NUMBER = "106540352242922"
WA_ID = "16505551234"
SECRET = "whatsapp-app-secret"


def payload(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


@pytest.fixture
async def adapter() -> AsyncIterator[WhatsAppCloudAdapter]:
    account = ChannelAccount(
        id="wa-cloud",
        channel=Channel.WHATSAPP,
        provider="cloud",
        queue="support",
        api_base="https://graph.example.test/v21.0",
        credentials={
            "phone_number_id": NUMBER,
            "app_secret": SECRET,
            "verify_token": "verify-me",
            "access_token": "system-user-token",
        },
    )
    async with aiohttp.ClientSession() as session:
        yield WhatsAppCloudAdapter(account, session)


def message(adapter: WhatsAppCloudAdapter, name: str) -> InboundMessage:
    events = adapter.parse(payload(name))
    assert len(events) == 1
    assert isinstance(events[0], InboundMessage)
    return events[0]


def test_signature_valid_missing_wrong_secret_and_altered(adapter: WhatsAppCloudAdapter) -> None:
    body = payload("text")
    adapter.verify("u", {"X-Hub-Signature-256": sign(body, SECRET)}, body)
    for headers, sent in [
        ({}, body),
        ({"X-Hub-Signature-256": sign(body, "wrong-secret")}, body),
        ({"X-Hub-Signature-256": sign(body, SECRET)}, body.replace(b"color", b"colour")),
    ]:
        with pytest.raises(SignatureInvalid):
            adapter.verify("u", headers, sent)


def test_text_with_profile_name_and_phone(adapter: WhatsAppCloudAdapter) -> None:
    event = message(adapter, "text")
    assert event.sender_id == WA_ID
    assert event.sender_phone == "+16505551234"
    assert event.sender_name == "Sheena Nelson"
    assert event.text == "Does it come in another color?"
    assert event.sent_at == datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)  # a string of seconds
    assert event.provider_message_id.startswith("wamid.")


@pytest.mark.parametrize(
    ("name", "kind", "media_id", "mime", "caption", "filename"),
    [
        ("image", MessageKind.IMAGE, "1003383421387256", "image/jpeg", "Damaged box", None),
        ("video", MessageKind.VIDEO, "1184502933052714", "video/mp4", None, None),
        ("audio", MessageKind.AUDIO, "3074302059366789", "audio/ogg; codecs=opus", None, None),
        ("document", MessageKind.FILE, "1225588235405932", "application/pdf", "My invoice", "invoice-2025-06.pdf"),
        ("sticker", MessageKind.STICKER, "1287763302470427", "image/webp", None, None),
    ],
)
def test_media_messages_carry_media_id_mime_caption_and_filename(
    adapter: WhatsAppCloudAdapter,
    name: str,
    kind: MessageKind,
    media_id: str,
    mime: str,
    caption: str | None,
    filename: str | None,
) -> None:
    event = message(adapter, name)
    assert event.kind is kind
    assert event.text == caption
    (attachment,) = event.attachments
    assert (attachment.kind, attachment.provider_media_id, attachment.mime_type, attachment.file_name) == (
        kind,
        media_id,
        mime,
        filename,
    )


def test_location(adapter: WhatsAppCloudAdapter) -> None:
    event = message(adapter, "location")
    assert event.kind is MessageKind.LOCATION
    assert event.location == Location(
        latitude=37.483253479004,
        longitude=-122.14960479736,
        name="Meta Headquarters",
        address="1 Hacker Way, Menlo Park, CA 94025",
        url="https://meta.com",
    )


def test_contacts_are_readable_text(adapter: WhatsAppCloudAdapter) -> None:
    event = message(adapter, "contacts")
    assert event.kind is MessageKind.CONTACT
    assert event.text == "Barbara J. Johnson: +1 (940) 555-1234"


@pytest.mark.parametrize("name", [1.5, True, 7, None, [{}], {"a": 1}])
@pytest.mark.parametrize("phones", [1.5, True, 7, None, "+1 555", {"phone": "1"}, [{"phone": 7}, {"phone": ["x"]}]])
def test_a_contact_card_with_fields_of_the_wrong_type_is_read_as_far_as_it_can_be(
    adapter: WhatsAppCloudAdapter, name: object, phones: object
) -> None:
    """A signed card whose name or phones were not text raised TypeError: a 500 the provider retried for ever."""
    data = json.loads(payload("contacts"))
    card = data["entry"][0]["changes"][0]["value"]["messages"][0]["contacts"][0]
    card["name"]["formatted_name"] = name
    card["phones"] = phones
    (event,) = adapter.parse(json.dumps(data).encode())
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.CONTACT
    assert event.text is None  # nothing in the card is text an agent could read


@pytest.mark.parametrize("value", [1.5, 7, True, [{}], {"a": 1}])
def test_a_file_name_or_mime_type_that_is_not_text_is_left_out(adapter: WhatsAppCloudAdapter, value: object) -> None:
    """Passed on as sent, a list or an object could not be bound by the store: a 500 Meta retried for ever."""
    data = json.loads(payload("document"))
    data["entry"][0]["changes"][0]["value"]["messages"][0]["document"].update(filename=value, mime_type=value)
    (event,) = adapter.parse(json.dumps(data).encode())
    assert isinstance(event, InboundMessage)
    (attachment,) = event.attachments
    assert (attachment.file_name, attachment.mime_type) == (None, None)


@pytest.mark.parametrize("value", [7, True, [{}], {"a": 1}])
def test_a_button_reply_whose_text_is_not_text_has_none(adapter: WhatsAppCloudAdapter, value: object) -> None:
    data = json.loads(payload("button"))
    data["entry"][0]["changes"][0]["value"]["messages"][0]["button"]["text"] = value
    (event,) = adapter.parse(json.dumps(data).encode())
    assert isinstance(event, InboundMessage)
    assert (event.text, event.payload) == (None, "confirm_yes")


@pytest.mark.parametrize(
    ("name", "text", "payload_value", "reply_to"),
    [
        ("button", "Yes, confirm", "confirm_yes", "wamid.template_out_1"),
        ("interactive_button_reply", "Change", "change-button", "wamid.interactive_out_1"),
        ("interactive_list_reply", "Express", "priority_express", "wamid.interactive_out_2"),
    ],
)
def test_buttons_and_list_replies_are_postbacks(
    adapter: WhatsAppCloudAdapter, name: str, text: str, payload_value: str, reply_to: str
) -> None:
    event = message(adapter, name)
    assert (event.kind, event.text, event.payload, event.reply_to) == (
        MessageKind.POSTBACK,
        text,
        payload_value,
        reply_to,
    )


def test_context_becomes_reply_to(adapter: WhatsAppCloudAdapter) -> None:
    assert message(adapter, "reply_context").reply_to == "wamid.earlier_out_1"


def test_a_reaction_is_ignored(adapter: WhatsAppCloudAdapter) -> None:
    """Meta does not say a reaction opens the customer service window: it is not counted as contact."""
    assert list(adapter.parse(payload("reaction"))) == [
        IgnoredEvent(channel=Channel.WHATSAPP, account_id="wa-cloud", kind="reaction")
    ]


def test_a_group_message_is_not_a_conversation_with_its_writer(
    adapter: WhatsAppCloudAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    """Meta's group messages webhook reference: a message written in a group carries ``group_id``. Taken as a 1:1
    message, an agent's answer would go privately to the member who wrote: it is ignored, with a warning."""
    with caplog.at_level(logging.WARNING, logger="adapters.whatsapp_cloud"):
        events = list(adapter.parse(payload("group_message")))
    assert events == [IgnoredEvent(channel=Channel.WHATSAPP, account_id="wa-cloud", kind="group_message")]
    (record,) = caplog.records
    assert "groups are not supported" in record.getMessage()
    assert "Y2FwaV9ncm91cDoxMjAzNjMwNDQ4NTU1MjE3" in record.getMessage()
    assert "Sunday" not in record.getMessage()  # never the text


def test_a_group_message_beside_a_customers_own_message_leaves_that_one_alone(adapter: WhatsAppCloudAdapter) -> None:
    data = json.loads(payload("group_message"))
    value = data["entry"][0]["changes"][0]["value"]
    value["messages"].append(json.loads(payload("text"))["entry"][0]["changes"][0]["value"]["messages"][0])
    group, own = adapter.parse(json.dumps(data).encode())
    assert group == IgnoredEvent(channel=Channel.WHATSAPP, account_id="wa-cloud", kind="group_message")
    assert isinstance(own, InboundMessage)
    assert own.sender_id == WA_ID


def test_a_welcome_request_is_the_customer_s_activity(adapter: WhatsAppCloudAdapter) -> None:
    """Meta's conversational components: ``request_welcome`` (a chat opened with no earlier thread) triggers a
    customer service window. Not a message: the customer wrote nothing."""
    assert list(adapter.parse(payload("request_welcome"))) == [
        CustomerActivity(
            channel=Channel.WHATSAPP,
            account_id="wa-cloud",
            sender_id=WA_ID,
            kind="welcome_request",
            occurred_at=datetime.fromtimestamp(1749416510, UTC),
        )
    ]


def test_a_changed_number_names_the_old_and_the_new_one(adapter: WhatsAppCloudAdapter) -> None:
    """Meta's system messages webhook reference: ``system.type`` ``user_changed_number``, the new id in ``wa_id``."""
    assert list(adapter.parse(payload("system"))) == [
        NumberChanged(
            channel=Channel.WHATSAPP,
            account_id="wa-cloud",
            user_id=WA_ID,
            new_user_id="16505559999",
            occurred_at=datetime.fromtimestamp(1749416530, UTC),
            description="User A changed from +1 650-555-1234 to +1 650-555-9999",
        )
    ]


def _system_message(system: dict[str, object]) -> bytes:
    body = json.loads(payload("system"))
    body["entry"][0]["changes"][0]["value"]["messages"][0]["system"] = system
    return json.dumps(body).encode()


def test_a_changed_number_in_the_older_form_is_understood(adapter: WhatsAppCloudAdapter) -> None:
    (event,) = adapter.parse(
        _system_message({"body": "changed", "new_wa_id": 16505559999, "type": "customer_changed_number"})
    )
    assert isinstance(event, NumberChanged)
    assert (event.user_id, event.new_user_id) == (WA_ID, "16505559999")


@pytest.mark.parametrize(
    ("system", "kind"),
    [
        ({"body": "id changed", "user_id": "US.new", "type": "user_changed_user_id"}, "system:user_changed_user_id"),
        (
            {"body": "code changed", "identity": "abc", "type": "customer_identity_changed"},
            "system:customer_identity_changed",
        ),
        ({"body": "no new number", "type": "user_changed_number"}, "system:user_changed_number"),
        ({"body": "the same number", "wa_id": WA_ID, "type": "user_changed_number"}, "system:user_changed_number"),
        ({"body": "a bool", "wa_id": True, "type": "user_changed_number"}, "system:user_changed_number"),
        ({}, "system:unknown"),
    ],
)
def test_other_system_notices_are_ignored(adapter: WhatsAppCloudAdapter, system: dict[str, object], kind: str) -> None:
    assert list(adapter.parse(_system_message(system))) == [
        IgnoredEvent(channel=Channel.WHATSAPP, account_id="wa-cloud", kind=kind)
    ]


@pytest.mark.parametrize(
    ("name", "text", "facts"),
    [
        (
            "unsupported_poll",
            "[A message WhatsApp did not pass on (poll_creation): Message type unknown]",
            {"unsupported_type": "poll_creation", "error_code": "131051"},
        ),
        (
            "unsupported_unavailable",
            "[A message WhatsApp did not pass on (media_placeholder): This message is currently unavailable.]",
            {"unsupported_type": "media_placeholder", "error_code": "131060"},
        ),
        ("unsupported", "[A message WhatsApp did not pass on: Message type unknown]", {"error_code": "131051"}),
    ],
)
def test_a_message_cloud_api_does_not_carry_still_reaches_the_agent(
    adapter: WhatsAppCloudAdapter, name: str, text: str, facts: dict[str, str]
) -> None:
    """The customer wrote (a poll, or a first message not available yet): the agent sees that they did."""
    event = message(adapter, name)
    assert (event.kind, event.text, dict(event.extra)) == (MessageKind.TEXT, text, facts)


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("status_sent", DeliveryState.SENT),
        ("status_delivered", DeliveryState.DELIVERED),
        ("status_read", DeliveryState.READ),
    ],
)
def test_statuses_become_receipts(adapter: WhatsAppCloudAdapter, name: str, state: DeliveryState) -> None:
    (event,) = adapter.parse(payload(name))
    assert isinstance(event, DeliveryReceipt)
    assert event.state is state
    assert event.provider_message_ids == ("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",)
    assert event.recipient_id == WA_ID


def test_failed_status_carries_code_and_a_reason_an_agent_understands(adapter: WhatsAppCloudAdapter) -> None:
    (event,) = adapter.parse(payload("status_failed"))
    assert isinstance(event, DeliveryReceipt)
    assert (event.state, event.error_code) == (DeliveryState.FAILED, "131047")
    assert event.error_reason is not None
    assert "approved template" in event.error_reason


def test_user_without_a_phone_number_is_keyed_on_the_bsuid(adapter: WhatsAppCloudAdapter) -> None:
    event = message(adapter, "bsuid")
    assert event.sender_id == "US.13491208655302741918"
    assert event.sender_phone is None
    assert event.sender_name == "Kofi"


def test_batch_returns_every_message_in_order(adapter: WhatsAppCloudAdapter) -> None:
    events = adapter.parse(payload("batch"))
    assert [(e.provider_message_id, e.sender_name) for e in events if isinstance(e, InboundMessage)] == [
        ("wamid.batch1", "Sheena Nelson"),
        ("wamid.batch2", "Tomas"),
        ("wamid.batch3", "Sheena Nelson"),
    ]
    assert len(events) == 3


def test_another_phone_number_is_an_unknown_account(adapter: WhatsAppCloudAdapter) -> None:
    with pytest.raises(UnknownAccount):
        adapter.parse(payload("text").replace(NUMBER.encode(), b"999"))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (b'{"object":"page","entry":[]}', "unexpected_object"),
        (b'{"object":"whatsapp_business_account","entry":[{"id":"1"}]}', "missing_field"),
        (
            b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",'
            b'"value":{"metadata":{"phone_number_id":"106540352242922"},"messages":[{"id":"wamid.x","from":"1",'
            b'"timestamp":"1749416383","text":{"body":"no type"}}]}}]}]}',
            "missing_field",
        ),
        (
            b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",'
            b'"value":{"metadata":{"phone_number_id":"106540352242922"},"messages":[{"id":"wamid.x","from":"1",'
            b'"timestamp":NaN,"type":"text","text":{"body":"NaN is not JSON"}}]}}]}]}',
            "invalid_json",
        ),
    ],
)
def test_malformed_bodies_name_the_problem(adapter: WhatsAppCloudAdapter, body: bytes, code: str) -> None:
    with pytest.raises(PayloadMalformed) as caught:
        adapter.parse(body)
    assert caught.value.code == code


def test_an_errors_webhook_is_acknowledged_and_logged_as_a_warning(
    adapter: WhatsAppCloudAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    """Meta's errors webhook (value-level ``errors``): nothing to store, but not silent either."""
    with caplog.at_level(logging.WARNING, logger="adapters.whatsapp_cloud"):
        events = adapter.parse(payload("value_error"))
    assert list(events) == [IgnoredEvent(channel=Channel.WHATSAPP, account_id="wa-cloud", kind="system_error")]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "130429 Rate limit hit (Throughput for this number was reached" in record.getMessage()


def test_a_question_about_a_product_keeps_the_product_as_its_referral(adapter: WhatsAppCloudAdapter) -> None:
    """``context.referred_product``: the customer tapped "Message business" on a catalog product."""
    event = message(adapter, "product_enquiry")
    assert (event.text, event.reply_to) == ("Does this lamp come with a bulb?", "wamid.catalog_card_2")
    assert dict(event.extra) == {"referral_catalog_id": "880011223344", "referral_product_retailer_id": "lamp-oak-01"}
