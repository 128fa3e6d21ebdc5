"""POST /webhooks/viber/{account_id} on the real app, into the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from adapters.viber import sign
from hub.api.server import create_app
from hub.settings import Settings
from hub.store import Store
from hub.store.tables import conversations, identities, messages, rejected_webhooks
from webhooks._common import BACKGROUND

FIXTURES = Path(__file__).parent.parent / "fixtures" / "viber"
TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
OTHER_TOKEN = "4a1d7a0b2c3e4f50-6172839405a6b7c8-d9e0f1a2b3c4d5e6"
ROUTE = "/webhooks/viber/viber-main"
USER = "01234567890A="
OUR_TOKEN = "5466297578174182639"  # the message_token Viber gave our earlier send (fixtures' receipts)

ClientFactory = Callable[..., Any]


def payload(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def accounts_toml(api_base: str) -> str:
    return f"""
[[accounts]]
id = "viber-main"
channel = "viber"
queue = "support"
api_base = "{api_base}"
auth_token = "{TOKEN}"
name = "Acme Support"

[[accounts]]
id = "viber-sales"
channel = "viber"
queue = "sales"
api_base = "{api_base}"
auth_token = "{OTHER_TOKEN}"
name = "Acme Sales"
"""


@pytest.fixture
async def viber_base(aiohttp_server: Callable[..., Any]) -> str:
    """A stand-in for get_user_details (enrichment)."""

    async def details(request: web.Request) -> web.Response:
        assert request.headers["X-Viber-Auth-Token"] == TOKEN
        body = await request.json()
        user = {"id": body["id"], "name": "Fetched Name", "avatar": "https://avatars.example.test/u.jpg"}
        return web.json_response({"status": 0, "status_message": "ok", "user": user})

    app = web.Application()
    app.router.add_post("/pa/get_user_details", details)
    server: TestServer = await aiohttp_server(app)
    return str(server.make_url("/pa"))


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, viber_base: str) -> Settings:
    return make_settings(extra_toml=accounts_toml(viber_base), database_url=database_url)


@pytest.fixture
async def client(store: Store, aiohttp_client: ClientFactory, settings: Settings) -> TestClient:
    result: TestClient = await aiohttp_client(create_app(settings, store=store))
    return result


async def post(client: TestClient, body: bytes, *, token: str | None = TOKEN, route: str = ROUTE) -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Viber-Content-Signature"] = sign(body, token)
    return await client.post(route, data=body, headers=headers)


async def rows(store: Store, table: Any = messages) -> list[Any]:
    async with store.read() as connection:
        return list((await connection.execute(select(table).order_by(table.c.id))).all())


async def enrichment_done(client: TestClient) -> None:
    tasks = client.app.get(BACKGROUND, set())
    if tasks:
        await asyncio.gather(*tasks)


async def add_outbound(store: Store) -> int:
    (conversation,) = await rows(store, conversations)
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    async with store.write() as connection:
        result = await connection.execute(
            messages.insert()
            .values(
                conversation_id=conversation.id,
                identity_id=conversation.identity_id,
                account_id="viber-main",
                direction="out",
                author="agent",
                kind="text",
                text="Your order ships today",
                provider_message_id=OUR_TOKEN,
                sent_at=now,
                created_at=now,
                delivery_state="sent",
            )
            .returning(messages.c.id)
        )
        return int(result.scalar_one())


# ----------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("message_text", "text"),
        ("message_picture", "image"),
        ("message_video", "video"),
        ("message_file", "file"),
        ("message_sticker", "sticker"),
        ("message_contact", "contact"),
        ("message_location", "location"),
        ("message_url", "text"),
    ],
)
async def test_every_message_kind_reaches_the_store(client: TestClient, store: Store, name: str, kind: str) -> None:
    response = await post(client, payload(name))
    assert response.status == 200
    (message,) = await rows(store)
    assert (message.account_id, message.direction, message.kind) == ("viber-main", "in", kind)
    assert message.provider_message_id == str(json.loads(payload(name))["message_token"])
    assert message.sent_at == datetime.fromtimestamp(1457764197.627, tz=UTC)
    (identity,) = await rows(store, identities)
    assert (identity.external_id, identity.display_name) == (USER, "John McClane")
    assert identity.avatar_url.startswith("https://media-direct.cdn.viber.com/")
    if kind in ("image", "video", "file", "sticker"):
        assert message.attachments
    if kind == "location":
        assert message.location["longitude"] == 14.4213


async def test_a_message_token_above_two_to_the_53_is_stored_exactly(client: TestClient, store: Store) -> None:
    token = 9_007_199_254_740_993  # 2**53 + 1: a float cannot hold it
    body = payload("message_text").replace(b"4912661846655238145", str(token).encode())
    assert (await post(client, body)).status == 200
    (message,) = await rows(store)
    assert message.provider_message_id == "9007199254740993"


async def test_a_repeated_delivery_is_acknowledged_and_stored_once(client: TestClient, store: Store) -> None:
    first = await post(client, payload("message_text"))
    again = await post(client, payload("message_text"))
    assert (first.status, again.status) == (200, 200)
    assert (await again.json())["duplicates"] == 1
    assert len(await rows(store)) == 1


async def test_the_bot_in_the_path_owns_the_message(client: TestClient, store: Store) -> None:
    response = await post(client, payload("message_text"), token=OTHER_TOKEN, route="/webhooks/viber/viber-sales")
    assert response.status == 200
    (message,) = await rows(store)
    assert message.account_id == "viber-sales"
    (conversation,) = await rows(store, conversations)
    assert conversation.queue_id == "sales"


# ------------------------------------------------------------- subscriptions


async def test_subscribed_marks_the_identity_subscribed(client: TestClient, store: Store) -> None:
    response = await post(client, payload("subscribed"))
    assert response.status == 200
    (identity,) = await rows(store, identities)
    assert (identity.external_id, identity.subscription, identity.display_name) == (USER, "subscribed", "John McClane")


async def test_unsubscribed_after_subscribed_marks_the_identity_unsubscribed(client: TestClient, store: Store) -> None:
    await post(client, payload("subscribed"))
    assert (await post(client, payload("unsubscribed"))).status == 200
    (identity,) = await rows(store, identities)
    assert identity.subscription == "unsubscribed"


async def test_conversation_started_is_answered_with_an_empty_body(client: TestClient, store: Store) -> None:
    response = await post(client, payload("conversation_started"))
    assert response.status == 200
    assert await response.read() == b""  # a body would be shown to the user as a welcome message
    (identity,) = await rows(store, identities)
    assert (identity.subscription, identity.display_name) == ("opened", "Jane")


# ------------------------------------------------------------------ receipts


@pytest.mark.parametrize(("name", "state"), [("delivered", "delivered"), ("seen", "read"), ("failed", "failed")])
async def test_receipts_move_our_message(client: TestClient, store: Store, name: str, state: str) -> None:
    await post(client, payload("message_text"))
    message_id = await add_outbound(store)
    response = await post(client, payload(name))
    assert response.status == 200
    (row,) = [m for m in await rows(store) if m.id == message_id]
    assert row.delivery_state == state
    if state == "failed":
        assert "failure description" in row.error_reason


@pytest.mark.parametrize("name", ["webhook", "client_status"])
async def test_the_webhook_check_and_unknown_events_are_acknowledged(
    client: TestClient, store: Store, name: str
) -> None:
    response = await post(client, payload(name))
    assert response.status == 200
    assert await rows(store) == []
    assert await rows(store, identities) == []


# ---------------------------------------------------------------- enrichment


async def test_a_sender_without_name_is_looked_up_after_the_acknowledgement(client: TestClient, store: Store) -> None:
    body = json.loads(payload("message_text"))
    body["sender"] = {"id": USER, "api_version": 10}
    response = await post(client, json.dumps(body).encode())
    assert response.status == 200
    await enrichment_done(client)
    (identity,) = await rows(store, identities)
    assert (identity.display_name, identity.avatar_url) == ("Fetched Name", "https://avatars.example.test/u.jpg")


# ------------------------------------------------------------------ bad input


async def test_an_unknown_bot_is_refused_with_404(client: TestClient, store: Store) -> None:
    response = await post(client, payload("message_text"), route="/webhooks/viber/nobody")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_account"
    assert await rows(store) == []


async def test_a_missing_signature_is_refused(client: TestClient, store: Store) -> None:
    response = await post(client, payload("message_text"), token=None)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "signature_invalid"
    assert await rows(store) == []


async def test_another_bot_s_signature_is_refused(client: TestClient, store: Store) -> None:
    response = await post(client, payload("message_text"), token=OTHER_TOKEN)
    assert response.status == 403
    assert await rows(store) == []


async def test_a_body_altered_after_signing_is_refused(client: TestClient, store: Store) -> None:
    body = payload("message_text")
    headers = {"Content-Type": "application/json", "X-Viber-Content-Signature": sign(body, TOKEN)}
    response = await client.post(ROUTE, data=body.replace(b"service", b"servicE"), headers=headers)
    assert response.status == 403
    assert await rows(store) == []


async def test_a_signed_body_that_is_not_json_is_kept_as_a_dead_letter(client: TestClient, store: Store) -> None:
    response = await post(client, b"{not json")
    assert response.status == 200  # Viber retries anything else
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.channel, letter.reason_code, letter.body) == ("viber", "invalid_json", b"{not json")


async def test_a_signed_message_without_sender_is_kept_as_a_dead_letter(client: TestClient, store: Store) -> None:
    body = json.loads(payload("message_text"))
    del body["sender"]
    response = await post(client, json.dumps(body).encode())
    assert response.status == 200
    assert await rows(store) == []
    [letter] = await rows(store, rejected_webhooks)
    assert letter.reason_code == "missing_field"


async def test_a_body_over_the_limit_is_refused_with_413(
    store: Store,
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    database_url: str,
    viber_base: str,
) -> None:
    limit = {"CHANNELHUB_SERVER_MAX_BODY_BYTES": "1024"}
    settings = make_settings(extra_toml=accounts_toml(viber_base), database_url=database_url, env=limit)
    client: TestClient = await aiohttp_client(create_app(settings, store=store))
    body = json.loads(payload("message_text"))
    body["message"]["text"] = "x" * 4096
    response = await post(client, json.dumps(body).encode())
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"
    assert await rows(store) == []


# --------------------------------------------------- signed but unusable, and real payloads


async def test_signed_json_nested_100000_levels_is_acknowledged_and_kept(client: TestClient, store: Store) -> None:
    body = b'{"event":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await post(client, body)
    assert response.status == 200
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.channel, letter.account_id, letter.reason_code) == ("viber", "viber-main", "too_deep")


async def test_unsigned_garbage_is_403_and_nothing_is_kept(client: TestClient, store: Store) -> None:
    response = await post(client, b"{not json", token="another-bot-token")
    assert response.status == 403
    assert await rows(store, rejected_webhooks) == []


async def test_the_webhook_check_with_an_implausible_timestamp_is_acknowledged(
    client: TestClient, store: Store
) -> None:
    response = await post(client, payload("webhook_implausible_timestamp"))
    assert response.status == 200
    assert await rows(store, rejected_webhooks) == []


async def test_a_callback_over_256_kib_is_refused_with_413(client: TestClient, store: Store) -> None:
    body = json.loads(payload("message_text"))
    body["message"]["text"] = "x" * (300 * 1024)
    response = await post(client, json.dumps(body).encode())
    assert response.status == 413
    assert await rows(store) == []


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("message_contact_with_text", "my colleague, call him\nItamar +972511123123"),
        ("message_url_with_text", "is this still in stock?\nhttps://www.example.com/order/42"),
    ],
)
async def test_contact_and_url_messages_keep_their_text(client: TestClient, store: Store, name: str, text: str) -> None:
    assert (await post(client, payload(name))).status == 200
    (row,) = await rows(store)
    assert row.text == text
