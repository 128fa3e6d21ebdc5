"""POST /webhooks/twilio and /webhooks/twilio/status on the real app, into the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from adapters.twilio_whatsapp import TwilioWhatsAppAdapter, sign
from hub.api.keys import ADAPTERS
from hub.api.server import create_app
from hub.settings import Settings
from hub.store import Store
from hub.store.tables import conversations, identities, messages, rejected_webhooks

FIXTURES = Path(__file__).parent.parent / "fixtures" / "twilio"
PUBLIC = "http://127.0.0.1:8080"  # server.public_url in the test configuration
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token"
ROUTE = "/webhooks/twilio"
STATUS = "/webhooks/twilio/status"
OUTBOUND_SID = "SMfe0123456789abcdef0123456789abcd"

ClientFactory = Callable[..., Any]

ACCOUNTS = f"""
[[accounts]]
id = "wa-twilio"
channel = "whatsapp"
provider = "twilio"
queue = "support"
api_base = "http://127.0.0.1:9/twilio"
account_sid = "{SID}"
auth_token = "{TOKEN}"
from_number = "+14155238886"

[[accounts]]
id = "wa-sales"
channel = "whatsapp"
provider = "twilio"
queue = "sales"
api_base = "http://127.0.0.1:9/twilio"
account_sid = "{SID}"
auth_token = "another-token"
from_number = "whatsapp:+420777000111"
"""


def form(name: str) -> bytes:
    return (FIXTURES / f"{name}.form").read_bytes()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(extra_toml=ACCOUNTS, database_url=database_url)


@pytest.fixture
async def client(store: Store, aiohttp_client: ClientFactory, settings: Settings) -> TestClient:
    result: TestClient = await aiohttp_client(create_app(settings, store=store))
    return result


async def post(
    client: TestClient, body: bytes, *, path: str = ROUTE, token: str | None = TOKEN, url: str | None = None
) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        params = parse_qsl(body.decode(), keep_blank_values=True)
        headers["X-Twilio-Signature"] = sign(url or PUBLIC + path, params, token)
    return await client.post(path, data=body, headers=headers)


async def rows(store: Store, table: Any = messages) -> list[Any]:
    async with store.read() as connection:
        return list((await connection.execute(select(table).order_by(table.c.id))).all())


async def add_outbound(store: Store, provider_message_id: str = OUTBOUND_SID) -> int:
    """A message we sent earlier, as the outbox leaves it: sent, waiting for receipts."""
    from hub.model import MessageKind

    await_first = await post_first_inbound(store)
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    async with store.write() as connection:
        result = await connection.execute(
            messages.insert()
            .values(
                conversation_id=await_first["conversation_id"],
                identity_id=await_first["identity_id"],
                account_id="wa-twilio",
                direction="out",
                author="agent",
                kind=MessageKind.TEXT.value,
                text="Your order ships today",
                provider_message_id=provider_message_id,
                sent_at=now,
                created_at=now,
                delivery_state="sent",
            )
            .returning(messages.c.id)
        )
        return int(result.scalar_one())


async def post_first_inbound(store: Store) -> dict[str, int]:
    (conversation,) = await rows(store, conversations)
    return {"conversation_id": conversation.id, "identity_id": conversation.identity_id}


# ----------------------------------------------------------------- inbound


async def test_an_inbound_text_is_stored_and_answered_with_empty_twiml(client: TestClient, store: Store) -> None:
    response = await post(client, form("inbound_text"))
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert "<Response/>" in await response.text()
    (message,) = await rows(store)
    assert (message.account_id, message.direction, message.kind) == ("wa-twilio", "in", "text")
    assert message.text == "Hi, where is my order?"
    assert message.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    (identity,) = await rows(store, identities)
    assert identity.external_id == "+447700900123"
    assert (identity.display_name, identity.phone) == ("Jane Doe", "+447700900123")
    (conversation,) = await rows(store, conversations)
    assert (conversation.queue_id, conversation.state) == ("support", "waiting")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("inbound_image", "image"),
        ("inbound_two_media", "image"),
        ("inbound_audio", "audio"),
        ("inbound_video", "video"),
        ("inbound_document", "file"),
        ("inbound_sticker", "sticker"),
        ("inbound_contact", "contact"),
        ("inbound_location", "location"),
        ("inbound_button", "postback"),
        ("inbound_reply", "text"),
        ("inbound_forwarded_referral", "text"),
    ],
)
async def test_every_inbound_kind_reaches_the_store(client: TestClient, store: Store, name: str, kind: str) -> None:
    response = await post(client, form(name))
    assert response.status == 200
    (message,) = await rows(store)
    assert message.kind == kind
    if kind in ("image", "audio", "video", "file", "sticker", "contact"):
        assert message.attachments
        assert all(a["url"].startswith("https://api.twilio.com/") for a in message.attachments)
    if kind == "location":
        assert message.location["latitude"] == 50.0875
    if kind == "postback":
        assert message.payload == "confirm_yes"
    if name == "inbound_reply":
        assert message.reply_to == "SMaa11ef0123456789abcdef0123456789"
    if name == "inbound_forwarded_referral":
        assert message.extra["Forwarded"] == "true"
        assert message.extra["ReferralSourceId"] == "120208"


async def test_a_message_to_our_second_number_goes_to_its_account(client: TestClient, store: Store) -> None:
    body = form("inbound_text").replace(b"%2B14155238886", b"%2B420777000111")
    response = await post(client, body, token="another-token")
    assert response.status == 200
    (message,) = await rows(store)
    assert message.account_id == "wa-sales"
    (conversation,) = await rows(store, conversations)
    assert conversation.queue_id == "sales"


async def test_a_repeated_delivery_is_acknowledged_and_stored_once(client: TestClient, store: Store) -> None:
    first = await post(client, form("inbound_text"))
    again = await post(client, form("inbound_text"))
    assert (first.status, again.status) == (200, 200)
    assert len(await rows(store)) == 1


# --------------------------------------------------------------- signatures


async def test_a_missing_signature_is_refused_and_nothing_stored(client: TestClient, store: Store) -> None:
    response = await post(client, form("inbound_text"), token=None)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "signature_invalid"
    assert await rows(store) == []


async def test_a_signature_with_the_wrong_token_is_refused(client: TestClient, store: Store) -> None:
    response = await post(client, form("inbound_text"), token="not-the-token")
    assert response.status == 403
    assert await rows(store) == []


async def test_a_body_altered_after_signing_is_refused(client: TestClient, store: Store) -> None:
    body = form("inbound_text")
    params = parse_qsl(body.decode(), keep_blank_values=True)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(PUBLIC + ROUTE, params, TOKEN),
    }
    response = await client.post(ROUTE, data=body.replace(b"order", b"ordes"), headers=headers)
    assert response.status == 403
    assert await rows(store) == []


async def test_a_signature_for_another_url_is_refused(client: TestClient, store: Store) -> None:
    response = await post(client, form("inbound_text"), url="https://elsewhere.example.test/webhooks/twilio")
    assert response.status == 403
    assert await rows(store) == []


async def test_the_query_string_is_part_of_the_signed_url(client: TestClient, store: Store) -> None:
    response = await post(client, form("inbound_text"), path=ROUTE + "?source=console")
    assert response.status == 200
    assert len(await rows(store)) == 1


# --------------------------------------------------------------- bad input


async def test_a_number_we_do_not_serve_is_refused_with_404(client: TestClient, store: Store) -> None:
    body = form("inbound_text").replace(b"%2B14155238886", b"%2B15550001111")
    response = await post(client, body)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_account"
    assert await rows(store) == []


async def test_a_form_without_to_is_malformed(client: TestClient, store: Store) -> None:
    response = await post(client, b"MessageSid=SM1&Body=hi&From=whatsapp%3A%2B447700900123")
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "missing_field"


async def test_a_signed_form_without_message_sid_is_kept_as_a_dead_letter(client: TestClient, store: Store) -> None:
    body = b"Body=hi&From=whatsapp%3A%2B447700900123&To=whatsapp%3A%2B14155238886"
    response = await post(client, body)
    assert response.status == 200
    assert await rows(store) == []
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.channel, letter.reason_code, letter.body) == ("whatsapp", "missing_field", body)


async def test_a_body_over_the_limit_is_refused_with_413(
    store: Store,
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    settings = make_settings(
        extra_toml=ACCOUNTS, database_url=database_url, env={"CHANNELHUB_SERVER_MAX_BODY_BYTES": "2048"}
    )
    client: TestClient = await aiohttp_client(create_app(settings, store=store))
    body = form("inbound_text") + b"&Padding=" + b"x" * 4096
    response = await post(client, body)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"
    assert await rows(store) == []


# ----------------------------------------------------------- status callbacks


async def test_status_callbacks_move_our_message_forward(client: TestClient, store: Store) -> None:
    await post(client, form("inbound_text"))
    message_id = await add_outbound(store)
    for name, state in (("status_delivered", "delivered"), ("status_sent", "delivered"), ("status_read", "read")):
        response = await post(client, form(name), path=STATUS)
        assert response.status == 200
        (row,) = [m for m in await rows(store) if m.id == message_id]
        assert row.delivery_state == state  # a late "sent" never moves it back


async def test_a_failed_status_stores_the_code_and_the_reason(client: TestClient, store: Store) -> None:
    await post(client, form("inbound_text"))
    message_id = await add_outbound(store)
    response = await post(client, form("status_failed_63016"), path=STATUS)
    assert response.status == 200
    (row,) = [m for m in await rows(store) if m.id == message_id]
    assert (row.delivery_state, row.error_code) == ("failed", "63016")
    assert "template" in row.error_reason


async def test_a_status_before_sent_is_acknowledged_and_changes_nothing(client: TestClient, store: Store) -> None:
    await post(client, form("inbound_text"))
    message_id = await add_outbound(store)
    response = await post(client, form("status_queued"), path=STATUS)
    assert response.status == 200
    (row,) = [m for m in await rows(store) if m.id == message_id]
    assert row.delivery_state == "sent"


async def test_a_status_callback_with_a_bad_signature_changes_nothing(client: TestClient, store: Store) -> None:
    await post(client, form("inbound_text"))
    message_id = await add_outbound(store)
    response = await post(client, form("status_delivered"), path=STATUS, token="wrong")
    assert response.status == 403
    (row,) = [m for m in await rows(store) if m.id == message_id]
    assert row.delivery_state == "sent"


async def test_the_adapters_ask_for_status_callbacks_at_the_public_url(client: TestClient) -> None:
    adapters = [a for a in client.app[ADAPTERS].values() if isinstance(a, TwilioWhatsAppAdapter)]
    assert len(adapters) == 2
    assert {a.status_callback_url for a in adapters} == {PUBLIC + STATUS}


# ----------------------------------------------------- what an unsigned request may cost


async def test_an_unsigned_form_over_64_kib_is_refused_with_413_before_any_parsing(
    client: TestClient, store: Store
) -> None:
    body = form("inbound_text") + b"&Padding=" + b"x" * (64 * 1024)
    response = await post(client, body, token=None)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"
    assert await rows(store) == []


async def test_a_form_over_64_kib_without_a_declared_length_is_refused_with_413(
    client: TestClient, store: Store
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield form("inbound_text")
        for _ in range(40):
            yield b"&Padding=" + b"x" * 4096

    response = await client.post(ROUTE, data=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413
    assert await rows(store) == []


async def test_an_unsigned_form_with_thousands_of_fields_is_400_too_many_fields(
    client: TestClient, store: Store
) -> None:
    body = form("inbound_text") + b"".join(b"&p%d=1" % i for i in range(5000))
    assert len(body) < 64 * 1024
    response = await post(client, body, token=None)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "too_many_fields"
    assert await rows(store) == []
    assert await rows(store, rejected_webhooks) == []


async def test_a_signed_form_with_a_few_dozen_fields_more_is_still_stored(client: TestClient, store: Store) -> None:
    body = form("inbound_text") + b"".join(b"&Extra%d=1" % i for i in range(100))
    response = await post(client, body)
    assert response.status == 200
    assert len(await rows(store)) == 1


async def test_a_dead_letter_that_cannot_be_stored_is_a_500_so_twilio_retries(client: TestClient, store: Store) -> None:
    async with store.write() as connection:
        await connection.execute(rejected_webhooks.delete())
        await connection.exec_driver_sql("DROP TABLE rejected_webhooks")
    body = b"Body=hi&From=whatsapp%3A%2B447700900123&To=whatsapp%3A%2B14155238886"
    response = await post(client, body)
    assert response.status == 500
    assert (await response.json())["error"]["code"] == "ingest_failed"


async def test_a_nul_character_in_a_form_is_stored_as_a_replacement_character(client: TestClient, store: Store) -> None:
    body = form("inbound_text").replace(b"Body=", b"Body=%00", 1)
    assert b"Body=%00" in body
    response = await post(client, body)
    assert response.status == 200
    (row,) = await rows(store)
    assert row.text.startswith("\ufffd")


@pytest.mark.parametrize(("latitude", "longitude"), [("nan", "14.4213"), ("50.0875", "inf"), ("91", "14.4213")])
async def test_a_location_with_unusable_coordinates_is_kept_as_a_dead_letter(
    client: TestClient, store: Store, latitude: str, longitude: str
) -> None:
    """Signed coordinates no map can show (NaN would not even be stored as JSON by PostgreSQL) are a
    dead letter, as for Meta's and Viber's locations, never a 500."""
    body = form("inbound_location").replace(b"Latitude=50.0875", f"Latitude={latitude}".encode())
    body = body.replace(b"Longitude=14.4213", f"Longitude={longitude}".encode())
    response = await post(client, body)
    assert response.status == 200
    assert await rows(store) == []
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.channel, letter.reason_code) == ("whatsapp", "invalid_field")
