"""POST/GET /webhooks/messenger on the real app, into the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from adapters._graph import sign
from hub.api.keys import INGESTOR
from hub.api.server import create_app
from hub.settings import Settings
from hub.store import Store
from hub.store.tables import conversations, identities, messages, rejected_webhooks
from webhooks._common import BACKGROUND

FIXTURES = Path(__file__).parent.parent / "fixtures" / "messenger"
PAGE = "104729435879226"
PSID = "6284512397351040"
SECRET = "messenger-app-secret"
ROUTE = "/webhooks/messenger"

ClientFactory = Callable[..., Any]


def payload(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def account_toml(api_base: str, *, page: str = PAGE, secret: str = SECRET, account_id: str = "fb-main") -> str:
    return f"""
[[accounts]]
id = "{account_id}"
channel = "messenger"
queue = "support"
api_base = "{api_base}"
page_id = "{page}"
app_secret = "{secret}"
verify_token = "verify-{account_id}"
page_access_token = "page-token"
"""


@pytest.fixture
async def graph_base(aiohttp_server: Callable[..., Any]) -> str:
    """A stand-in for the user profile API."""

    async def profile(request: web.Request) -> web.Response:
        assert request.query["access_token"] == "page-token"
        return web.json_response(
            {"first_name": "Peter", "last_name": "Chang", "profile_pic": "https://pics.example/p.jpg", "id": "x"}
        )

    app = web.Application()
    app.router.add_get("/graph/v21.0/{psid}", profile)
    server: TestServer = await aiohttp_server(app)
    return str(server.make_url("/graph/v21.0"))


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, graph_base: str) -> Settings:
    return make_settings(extra_toml=account_toml(graph_base), database_url=database_url)


@pytest.fixture
async def client(store: Store, settings: Settings, aiohttp_client: ClientFactory) -> AsyncIterator[TestClient]:
    """The hub app; closed before the store is (its shutdown still writes)."""
    result: TestClient = await aiohttp_client(create_app(settings, store=store))
    yield result
    await result.close()


async def post(client: TestClient, body: bytes, *, secret: str | None = SECRET, **headers: str) -> Any:
    if secret is not None:
        headers.setdefault("X-Hub-Signature-256", sign(body, secret))
    headers.setdefault("Content-Type", "application/json")
    return await client.post(ROUTE, data=body, headers=headers)


async def rows(store: Store, table: Any = messages) -> list[Any]:
    async with store.read() as connection:
        return list((await connection.execute(select(table).order_by(table.c.id))).all())


async def count(store: Store, table: Any) -> int:
    async with store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def settle(client: TestClient) -> None:
    """Wait for background enrichment started by the route (it never delays the 200)."""
    tasks = list(client.app[BACKGROUND])
    if tasks:
        await asyncio.gather(*tasks)


# ------------------------------------------------------------------ handshake


async def test_handshake_echoes_the_challenge_for_the_configured_token(client: TestClient) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-fb-main", "hub.challenge": "1158201444"}
    response = await client.get(ROUTE, params=query)
    assert response.status == 200
    assert await response.text() == "1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "verify-fb-main", "hub.challenge": "1"},
        {},
    ],
)
async def test_handshake_with_a_wrong_token_is_forbidden(client: TestClient, query: dict[str, str]) -> None:
    response = await client.get(ROUTE, params=query)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "verification_failed"


# ------------------------------------------------------------------- messages

INBOUND = [
    ("text", "text", "Hello, I need help with my order", None),
    ("image", "image", None, None),
    ("video", "video", None, None),
    ("audio", "audio", None, None),
    ("file", "file", None, None),
    ("location", "location", "Prague Castle", None),
    ("fallback", "text", "look https://example.com/p/42", None),
    ("template", "template", "Blue sneakers", None),
    ("sticker", "sticker", None, None),
    ("quick_reply", "postback", "Yes", "CONFIRM_YES"),
    ("postback", "postback", "Get Started", "GET_STARTED"),
    ("reply_to", "text", "This one, please", None),
    (
        "appointment_booking",
        "text",
        "Appointment booking requested: Sat 15 Feb 2025, 10:00-11:00 (America/Los_Angeles)",
        None,
    ),
]


@pytest.mark.parametrize(("name", "kind", "text", "payload_value"), INBOUND, ids=[i[0] for i in INBOUND])
async def test_every_inbound_kind_is_stored(
    client: TestClient, store: Store, name: str, kind: str, text: str | None, payload_value: str | None
) -> None:
    body = payload(name)
    response = await post(client, body)
    assert response.status == 200, await response.text()
    assert (await response.json())["stored"] == 1
    (row,) = await rows(store)
    message = json.loads(body)["entry"][0]["messaging"][0]
    expected_id = (message.get("message") or message.get("postback"))["mid"]
    assert (row.provider_message_id, row.kind, row.text, row.payload) == (expected_id, kind, text, payload_value)
    assert (row.direction, row.author, row.delivery_state, row.account_id) == ("in", "customer", "received", "fb-main")
    assert row.sent_at == datetime.fromtimestamp(message["timestamp"] / 1000, UTC)
    if kind in ("image", "video", "audio", "file", "sticker"):
        assert row.attachments[0]["kind"] == kind
        assert row.attachments[0]["url"].startswith("https://")
    if name == "sticker":
        assert row.attachments[0]["provider_media_id"] == "369239263222822"
    if name == "location":
        assert row.location["latitude"] == 50.0911
    if name == "reply_to":
        assert row.reply_to == "m_earlier_out_1"
    if name == "appointment_booking":  # no file to fetch: the booking is in the text
        assert not row.attachments
    (identity,) = await rows(store, identities)
    assert (identity.external_id, identity.channel) == (PSID, "messenger")
    assert identity.last_inbound_at == row.sent_at
    (conversation,) = await rows(store, conversations)
    assert (conversation.state, conversation.queue_id) == ("waiting", "support")


async def test_profile_is_fetched_after_the_acknowledgement(client: TestClient, store: Store) -> None:
    response = await post(client, payload("text"))
    assert response.status == 200
    await settle(client)
    (identity,) = await rows(store, identities)
    assert (identity.display_name, identity.avatar_url) == ("Peter Chang", "https://pics.example/p.jpg")


async def test_batch_stores_every_item_in_order(client: TestClient, store: Store) -> None:
    response = await post(client, payload("batch"))
    assert response.status == 200
    assert await response.json() == {"stored": 3, "duplicates": 0, "updated": 0, "ignored": 1}
    assert [r.provider_message_id for r in await rows(store)] == ["m_batch_1", "m_batch_2", "m_batch_3"]
    assert await count(store, conversations) == 2


async def test_batch_is_all_or_nothing_when_a_later_item_fails(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hub.store.ingest as ingest_module

    original = ingest_module._store_message

    async def failing(connection: Any, dialect: str, event: Any, *args: Any) -> None:
        if event.provider_message_id == "m_batch_3":
            raise RuntimeError("disk full")
        await original(connection, dialect, event, *args)

    monkeypatch.setattr(ingest_module, "_store_message", failing)
    response = await post(client, payload("batch"))
    assert response.status == 500
    assert (await response.json())["error"]["code"] == "ingest_failed"
    assert await count(store, messages) == 0
    assert await count(store, identities) == 0
    assert await count(store, conversations) == 0


async def test_duplicate_delivery_is_acknowledged_and_changes_nothing(client: TestClient, store: Store) -> None:
    body = payload("text")
    assert (await post(client, body)).status == 200
    await settle(client)  # profile enrichment of the first delivery
    before = [await rows(store), await rows(store, identities), await rows(store, conversations)]
    response = await post(client, body)
    assert response.status == 200
    assert (await response.json())["duplicates"] == 1
    assert [await rows(store), await rows(store, identities), await rows(store, conversations)] == before


# ------------------------------------------------------------ receipts, echoes


async def add_outbound(store: Store, provider_message_id: str, sent_ms: int) -> None:
    """An agent's reply as the outbox would leave it after a successful send."""
    async with store.write() as connection:
        conversation = (await connection.execute(select(conversations))).first()
        assert conversation is not None
        await connection.execute(
            messages.insert().values(
                conversation_id=conversation.id,
                identity_id=conversation.identity_id,
                account_id="fb-main",
                direction="out",
                author="agent",
                kind="text",
                text="We are on it",
                provider_message_id=provider_message_id,
                sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
                created_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
                delivery_state="sent",
            )
        )


async def outbound_state(store: Store, provider_message_id: str) -> str:
    async with store.read() as connection:
        return str(
            (
                await connection.execute(
                    select(messages.c.delivery_state).where(messages.c.provider_message_id == provider_message_id)
                )
            ).scalar_one()
        )


async def test_delivery_by_mids_moves_the_message(client: TestClient, store: Store) -> None:
    await post(client, payload("text"))
    await add_outbound(store, "m_out_sent_1", 1700000003000)
    response = await post(client, payload("delivery_mids"))
    assert (await response.json())["updated"] == 1
    assert await outbound_state(store, "m_out_sent_1") == "delivered"


async def test_delivery_and_read_by_watermark_move_earlier_messages_only(client: TestClient, store: Store) -> None:
    await post(client, payload("text"))
    await add_outbound(store, "m_before", 1700000003000)
    await add_outbound(store, "m_after", 1700000004500)  # after the watermark
    assert (await post(client, payload("delivery_watermark"))).status == 200
    assert (await outbound_state(store, "m_before"), await outbound_state(store, "m_after")) == ("delivered", "sent")
    assert (await post(client, payload("read"))).status == 200
    assert (await outbound_state(store, "m_before"), await outbound_state(store, "m_after")) == ("read", "sent")


async def test_echo_of_a_message_sent_outside_the_hub_is_added(client: TestClient, store: Store) -> None:
    await post(client, payload("text"))
    response = await post(client, payload("echo"))
    assert (await response.json())["stored"] == 1
    echo = (await rows(store))[-1]
    assert (echo.direction, echo.provider_message_id, echo.text) == ("out", "m_echo1", "Hi, this is Anna from support")


@pytest.mark.parametrize("name", ["optin", "handover", "standby", "optin_user_ref"])
async def test_unhandled_kinds_are_acknowledged_counted_and_not_stored(
    client: TestClient, store: Store, name: str
) -> None:
    response = await post(client, payload(name))
    assert response.status == 200
    assert (await response.json())["ignored"] == 1
    assert await count(store, messages) == 0
    assert sum(client.app[INGESTOR].ignored_counts.values()) == 1
    assert await count(store, rejected_webhooks) == 0


@pytest.mark.parametrize("name", ["reaction", "referral"])
async def test_a_reaction_or_a_link_opened_by_a_customer_who_wrote_moves_their_window(
    client: TestClient, store: Store, name: str
) -> None:
    """Meta opens the standard messaging window again when the customer reacts to a message or opens their thread
    by an m.me link or ad: the identity's last inbound time moves to it (no message is stored)."""
    await post(client, payload("text"))
    response = await post(client, payload(name))
    assert (response.status, (await response.json())["ignored"]) == (200, 0)
    millis = json.loads(payload(name))["entry"][0]["messaging"][0]["timestamp"]
    [identity] = await rows(store, identities)
    assert identity.last_inbound_at == datetime.fromtimestamp(millis / 1000, tz=UTC)
    assert identity.first_inbound_at == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert await count(store, messages) == 1
    # an older one (a redelivery, or out of order) never moves it back
    await post(client, payload(name).replace(str(millis).encode(), b"1690000000000"))
    assert (await rows(store, identities))[0].last_inbound_at == identity.last_inbound_at


@pytest.mark.parametrize("name", ["reaction", "referral"])
async def test_a_reaction_from_someone_who_never_wrote_makes_no_customer(
    client: TestClient, store: Store, name: str
) -> None:
    response = await post(client, payload(name))
    assert (response.status, (await response.json())["ignored"]) == (200, 1)
    assert await count(store, identities) == 0


async def test_a_share_sent_as_an_empty_fallback_is_stored_for_the_agent(client: TestClient, store: Store) -> None:
    """Before, acknowledged and dropped: the customer had written and nobody saw it."""
    response = await post(client, payload("fallback_unshown_share"))
    assert (response.status, (await response.json())["stored"]) == (200, 1)
    [row] = await rows(store)
    assert (row.kind, row.provider_message_id) == ("text", "m_shared_unshown_31")
    assert row.text == "[The customer shared something Messenger does not pass on]"
    assert await count(store, conversations) == 1


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Hub-Signature-256": sign(payload("text"), "not-the-app-secret")}, {"X-Hub-Signature-256": "sha256=00"}],
    ids=["missing", "wrong-secret", "garbage"],
)
async def test_bad_signature_is_refused_and_nothing_stored(
    client: TestClient, store: Store, headers: dict[str, str]
) -> None:
    response = await post(client, payload("text"), secret=None, **headers)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "signature_invalid"
    assert await count(store, messages) == 0


async def test_body_altered_by_one_byte_after_signing_is_refused(client: TestClient, store: Store) -> None:
    body = payload("text")
    signature = sign(body, SECRET)
    altered = body.replace(b"Hello", b"Jello")
    response = await post(client, altered, secret=None, **{"X-Hub-Signature-256": signature})
    assert response.status == 403
    assert await count(store, messages) == 0


async def test_unknown_page_is_refused_with_a_clear_code(
    client: TestClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    body = payload("text").replace(PAGE.encode(), b"999000999")
    response = await post(client, body)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_account"
    assert "999000999" in caplog.text
    assert await count(store, messages) == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"object":"page"}', "missing_field"),
        (b'{"object":"user","entry":[]}', "unexpected_object"),
    ],
)
async def test_signed_but_malformed_body_is_acknowledged_and_kept_as_a_dead_letter(
    client: TestClient, store: Store, body: bytes, code: str
) -> None:
    response = await post(client, body)
    assert response.status == 200  # Meta retries anything else, and disables a webhook that keeps failing
    assert (await response.json())["rejected"] == 1
    assert await count(store, messages) == 0
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.channel, letter.account_id, letter.reason_code, letter.body) == ("messenger", "fb-main", code, body)


async def test_body_over_the_limit_is_413(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], database_url: str, store: Store
) -> None:
    settings = make_settings(
        extra_toml=account_toml("http://127.0.0.1:9"),
        database_url=database_url,
        env={"CHANNELHUB_SERVER_MAX_BODY_BYTES": "2048"},
    )
    client: TestClient = await aiohttp_client(create_app(settings, store=store))
    try:
        await check_too_large(client, store)
    finally:
        await client.close()


async def check_too_large(client: TestClient, store: Store) -> None:
    data = json.loads(payload("text"))
    data["entry"][0]["messaging"][0]["message"]["text"] = "x" * 4000
    response = await post(client, json.dumps(data).encode())
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"
    assert await count(store, messages) == 0


async def test_two_pages_with_their_own_app_secrets_share_the_endpoint(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], database_url: str, store: Store
) -> None:
    settings = make_settings(
        extra_toml=account_toml("http://127.0.0.1:9")
        + account_toml("http://127.0.0.1:9", page="555", secret="second-secret", account_id="fb-second"),
        database_url=database_url,
    )
    client: TestClient = await aiohttp_client(create_app(settings, store=store))
    try:
        await check_two_pages(client, store)
    finally:
        await client.close()


async def check_two_pages(client: TestClient, store: Store) -> None:
    second = payload("text").replace(PAGE.encode(), b"555")
    assert (await post(client, second, secret="second-secret")).status == 200
    # the first page's secret may not speak for the second page
    forged = payload("postback").replace(PAGE.encode(), b"555")
    assert (await post(client, forged, secret=SECRET)).status == 403
    assert [(r.account_id, r.provider_message_id) for r in await rows(store)] == [("fb-second", "m_AbCdEf123text")]


# --------------------------------------------------- signed but unusable, and real payloads


DEEP = b'{"object":"page","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


async def test_signed_json_nested_100000_levels_is_acknowledged_and_kept(client: TestClient, store: Store) -> None:
    response = await post(client, DEEP)
    assert response.status == 200
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.channel, letter.reason_code, len(letter.body)) == ("messenger", "too_deep", len(DEEP))
    assert await count(store, messages) == 0


async def test_unsigned_deep_json_is_403_and_nothing_is_kept(client: TestClient, store: Store) -> None:
    response = await post(client, DEEP, secret="not-our-secret")
    assert response.status == 403
    assert await count(store, rejected_webhooks) == 0
    assert await count(store, messages) == 0


@pytest.mark.parametrize("timestamp", [b"1e17", b"-5", b"1" * 4000, b"-1e17"])
async def test_signed_message_with_an_absurd_timestamp_is_stored_at_the_entry_time(
    client: TestClient, store: Store, timestamp: bytes
) -> None:
    body = payload("text").replace(b'"timestamp":1700000000000', b'"timestamp":' + timestamp)
    body = body.replace(b'"time":1700000000000', b'"time":1700000009000')
    response = await post(client, body)
    assert response.status == 200
    (row,) = await rows(store)
    assert row.sent_at == datetime.fromtimestamp(1700000009, UTC)
    assert await count(store, rejected_webhooks) == 0


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity"])
async def test_signed_message_with_nan_or_infinity_is_a_dead_letter(
    client: TestClient, store: Store, constant: bytes
) -> None:
    body = payload("text").replace(b'"timestamp":1700000000000', b'"timestamp":' + constant)
    response = await post(client, body)
    assert response.status == 200
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.reason_code, letter.account_id) == ("invalid_json", "fb-main")
    assert await count(store, messages) == 0


async def test_delivery_receipt_without_timestamp_moves_the_message(client: TestClient, store: Store) -> None:
    await post(client, payload("text"))
    await add_outbound(store, "m_out_sent_1", 1700000003000)
    response = await post(client, payload("delivery_without_timestamp"))
    assert response.status == 200
    assert await outbound_state(store, "m_out_sent_1") == "delivered"


async def test_sticker_attachment_is_stored_as_a_sticker(client: TestClient, store: Store) -> None:
    assert (await post(client, payload("sticker_type"))).status == 200
    (row,) = await rows(store)
    assert row.kind == "sticker"
    assert row.attachments[0]["kind"] == "sticker"
    assert row.attachments[0]["provider_media_id"] == "1505197612960309"


async def test_a_nul_character_in_a_text_is_stored_as_a_replacement_character(client: TestClient, store: Store) -> None:
    """PostgreSQL cannot store NUL in text: it would be a 500 on every retry of a signed delivery."""
    body = payload("text").replace(b"Hello, I need", b"Hello\\u0000, I need")
    response = await post(client, body)
    assert response.status == 200
    (row,) = await rows(store)
    assert row.text == "Hello\ufffd, I need help with my order"


async def test_a_customers_edit_is_stored_once_as_a_message_answering_the_edited_one(
    client: TestClient, store: Store
) -> None:
    """Before, an ignored event: the agent went on reading the text the customer had corrected."""
    for _ in range(2):  # Meta's redelivery of the same edit
        response = await post(client, payload("message_edit"))
        assert response.status == 200
    [row] = await rows(store)
    assert (row.kind, row.text, row.reply_to, row.provider_message_id) == (
        "text",
        "Sorry, I meant size 42, not 40",
        "m_order_size_40",
        "m_order_size_40#edit1",
    )


@pytest.mark.parametrize("lone", [b"\\ud800", b"\\uDFFF", b"\xed\xa0\x80"], ids=["escape", "low-escape", "utf8-bytes"])
async def test_a_lone_surrogate_in_a_text_is_stored_as_a_replacement_character(
    client: TestClient, store: Store, lone: bytes
) -> None:
    """Valid JSON escapes that name no character cannot be written as UTF-8: every retry was a 500."""
    body = payload("text").replace(b"Hello, I need", b"Hello" + lone + b", I need")
    response = await post(client, body)
    assert response.status == 200
    (row,) = await rows(store)
    assert row.text == "Hello\ufffd, I need help with my order"


async def test_a_surrogate_pair_written_as_two_escapes_is_kept_as_its_character(
    client: TestClient, store: Store
) -> None:
    body = payload("text").replace(b"Hello, I need", b"Hello \\ud83d\\ude00, I need")
    assert (await post(client, body)).status == 200
    (row,) = await rows(store)
    assert row.text == "Hello \U0001f600, I need help with my order"
