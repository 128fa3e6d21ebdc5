"""GET/POST /webhooks/whatsapp (Cloud API) on the real app, into the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from adapters._graph import sign
from hub.api.keys import INGESTOR
from hub.api.server import create_app
from hub.settings import Settings
from hub.store import Store
from hub.store.history import message_view
from hub.store.tables import contacts, conversations, identities, messages, rejected_webhooks, timeline_events

FIXTURES = Path(__file__).parent.parent / "fixtures" / "whatsapp_cloud"
NUMBER = "106540352242922"
WA_ID = "16505551234"
SECRET = "whatsapp-app-secret"
ROUTE = "/webhooks/whatsapp"
OUT_ID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA"

ClientFactory = Callable[..., Any]

ACCOUNT = f"""
[[accounts]]
id = "wa-cloud"
channel = "whatsapp"
provider = "cloud"
queue = "sales"
api_base = "http://127.0.0.1:9/graph/v21.0"
phone_number_id = "{NUMBER}"
app_secret = "{SECRET}"
verify_token = "wa-verify"
access_token = "system-user-token"
"""


def payload(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(extra_toml=ACCOUNT, database_url=database_url)


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


async def test_handshake(client: TestClient) -> None:
    ok = await client.get(
        ROUTE, params={"hub.mode": "subscribe", "hub.verify_token": "wa-verify", "hub.challenge": "42"}
    )
    assert (ok.status, await ok.text()) == (200, "42")
    refused = await client.get(
        ROUTE, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "4"}
    )
    assert refused.status == 403


INBOUND = [
    ("text", "text", "Does it come in another color?", None),
    ("image", "image", "Damaged box", None),
    ("video", "video", None, None),
    ("audio", "audio", None, None),
    ("document", "file", "My invoice", None),
    ("sticker", "sticker", None, None),
    ("location", "location", "Meta Headquarters", None),
    ("contacts", "contact", "Barbara J. Johnson: +1 (940) 555-1234", None),
    ("button", "postback", "Yes, confirm", "confirm_yes"),
    ("interactive_button_reply", "postback", "Change", "change-button"),
    ("interactive_list_reply", "postback", "Express", "priority_express"),
    ("reply_context", "text", "Yes, that one", None),
]


@pytest.mark.parametrize(("name", "kind", "text", "payload_value"), INBOUND, ids=[i[0] for i in INBOUND])
async def test_every_message_type_is_stored(
    client: TestClient, store: Store, name: str, kind: str, text: str | None, payload_value: str | None
) -> None:
    body = payload(name)
    response = await post(client, body)
    assert response.status == 200, await response.text()
    assert (await response.json())["stored"] == 1
    (row,) = await rows(store)
    message = json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert (row.provider_message_id, row.kind, row.text, row.payload) == (message["id"], kind, text, payload_value)
    assert row.sent_at == datetime.fromtimestamp(int(message["timestamp"]), UTC)
    if kind in ("image", "video", "audio", "file", "sticker"):
        assert row.attachments[0]["provider_media_id"] == message[message["type"]]["id"]
        assert row.attachments[0]["mime_type"] == message[message["type"]]["mime_type"]
    if name == "document":
        assert row.attachments[0]["file_name"] == "invoice-2025-06.pdf"
    if "context" in message:
        assert row.reply_to == message["context"]["id"]
    (identity,) = await rows(store, identities)
    assert (identity.external_id, identity.phone, identity.display_name) == (WA_ID, "+16505551234", "Sheena Nelson")
    (conversation,) = await rows(store, conversations)
    assert (conversation.queue_id, conversation.channel) == ("sales", "whatsapp")


async def test_user_with_only_a_bsuid_is_stored_under_it(client: TestClient, store: Store) -> None:
    assert (await post(client, payload("bsuid"))).status == 200
    (identity,) = await rows(store, identities)
    assert (identity.external_id, identity.phone, identity.display_name) == ("US.13491208655302741918", None, "Kofi")


async def test_batch_of_changes_is_stored_in_order(client: TestClient, store: Store) -> None:
    response = await post(client, payload("batch"))
    assert (await response.json())["stored"] == 3
    assert [r.provider_message_id for r in await rows(store)] == ["wamid.batch1", "wamid.batch2", "wamid.batch3"]
    assert await count(store, identities) == 2


async def test_batch_is_all_or_nothing(client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import hub.store.ingest as ingest_module

    original = ingest_module._store_message

    async def failing(connection: Any, dialect: str, event: Any, *args: Any) -> None:
        if event.provider_message_id == "wamid.batch3":
            raise RuntimeError("constraint violated")
        await original(connection, dialect, event, *args)

    original_bulk = ingest_module.store_messages_bulk

    async def failing_bulk(*args: Any) -> None:
        # the set-based path stores every row, then fails: its savepoint must take them back
        await original_bulk(*args)
        raise RuntimeError("bulk constraint violated")

    monkeypatch.setattr(ingest_module, "store_messages_bulk", failing_bulk)
    monkeypatch.setattr(ingest_module, "_store_message", failing)
    response = await post(client, payload("batch"))
    assert response.status == 500
    assert (await count(store, messages), await count(store, identities)) == (0, 0)


async def test_duplicate_delivery_is_acknowledged_and_changes_nothing(client: TestClient, store: Store) -> None:
    assert (await post(client, payload("text"))).status == 200
    before = (await rows(store), await rows(store, identities))
    again = await post(client, payload("text"))
    assert again.status == 200
    assert (await again.json())["duplicates"] == 1
    assert (await rows(store), await rows(store, identities)) == before


async def add_outbound(store: Store) -> None:
    async with store.write() as connection:
        conversation = (await connection.execute(select(conversations))).first()
        assert conversation is not None
        now = datetime(2025, 6, 18, 16, 20, tzinfo=UTC)
        await connection.execute(
            messages.insert().values(
                conversation_id=conversation.id,
                identity_id=conversation.identity_id,
                account_id="wa-cloud",
                direction="out",
                author="agent",
                kind="text",
                text="Yes, in blue and green.",
                provider_message_id=OUT_ID,
                sent_at=now,
                created_at=now,
                delivery_state="queued",
            )
        )


async def outbound(store: Store) -> Any:
    async with store.read() as connection:
        return (await connection.execute(select(messages).where(messages.c.provider_message_id == OUT_ID))).one()


async def test_statuses_move_the_message_forward_never_back(client: TestClient, store: Store) -> None:
    await post(client, payload("text"))
    await add_outbound(store)
    for name, state in [
        ("status_sent", "sent"),
        ("status_read", "read"),
        ("status_delivered", "read"),  # out of order: stays read
    ]:
        assert (await post(client, payload(name))).status == 200
        assert (await outbound(store)).delivery_state == state


async def test_failed_status_stores_code_and_reason(client: TestClient, store: Store) -> None:
    await post(client, payload("text"))
    await add_outbound(store)
    assert (await post(client, payload("status_failed"))).status == 200
    row = await outbound(store)
    assert (row.delivery_state, row.error_code) == ("failed", "131047")
    assert "approved template" in row.error_reason


async def test_unhandled_types_are_acknowledged_and_counted(client: TestClient, store: Store) -> None:
    response = await post(client, payload("reaction"))
    assert (response.status, (await response.json())["ignored"]) == (200, 1)
    assert await count(store, messages) == 0
    assert client.app[INGESTOR].ignored_counts["whatsapp:reaction"] == 1


async def test_a_group_message_opens_no_conversation_and_is_counted(client: TestClient, store: Store) -> None:
    """A message written in a WhatsApp group (``group_id``) is not a 1:1 conversation with its writer: nothing is
    stored (no identity, no conversation an agent could answer privately), and it is counted."""
    response = await post(client, payload("group_message"))
    assert (response.status, (await response.json())["ignored"]) == (200, 1)
    assert (await count(store, messages), await count(store, conversations), await count(store, identities)) == (
        0,
        0,
        0,
    )
    assert client.app[INGESTOR].ignored_counts["whatsapp:group_message"] == 1


async def test_a_welcome_request_moves_a_known_customers_window_and_makes_nobody_a_customer(
    client: TestClient, store: Store
) -> None:
    """``request_welcome`` opens the customer service window (Meta), so a customer who wrote before has their last
    inbound time moved to it; from a number that never wrote it stores nothing (we never write first)."""
    assert (await post(client, payload("request_welcome"))).status == 200
    assert await count(store, identities) == 0
    assert client.app[INGESTOR].ignored_counts["whatsapp:welcome_request_from_unknown_customer"] == 1
    assert (await post(client, payload("text"))).status == 200  # timestamp 1749416383
    assert (await post(client, payload("request_welcome"))).status == 200  # timestamp 1749416510
    (identity,) = await rows(store, identities)
    assert identity.last_inbound_at == datetime.fromtimestamp(1749416510, UTC)
    assert await count(store, messages) == 1  # not a message


async def test_a_changed_number_joins_the_contact_and_tells_the_open_conversation(
    client: TestClient, store: Store
) -> None:
    """Meta's ``system`` message ``user_changed_number``: the customer writes from ``wa_id`` from now on."""
    assert (await post(client, payload("text"))).status == 200
    async with store.write() as connection:
        contact_id = (
            await connection.execute(
                contacts.insert().values(
                    name="Sheena Nelson", created_at=datetime.now(UTC), updated_at=datetime.now(UTC)
                )
            )
        ).inserted_primary_key[0]
        await connection.execute(identities.update().values(contact_id=contact_id))
    (old,) = await rows(store, identities)

    for _ in range(2):  # a redelivery changes nothing more
        response = await post(client, payload("system"))
        assert response.status == 200
        assert (await response.json())["ignored"] == 0

    old_now, new = await rows(store, identities)
    assert (new.external_id, new.contact_id, new.display_name, new.phone) == (
        "16505559999",
        contact_id,
        "Sheena Nelson",
        "+16505559999",
    )
    # the customer wrote nothing: no window opens for either address
    assert (old_now.last_inbound_at, new.last_inbound_at) == (old.last_inbound_at, None)
    assert await count(store, messages) == 1
    (conversation,) = await rows(store, conversations)
    async with store.read() as connection:
        notes = (
            await connection.execute(
                select(timeline_events.c.data).where(
                    timeline_events.c.conversation_id == conversation.id, timeline_events.c.kind == "number_changed"
                )
            )
        ).all()
    assert [n.data for n in notes] == [
        {
            "identity": new.id,
            "new_address": "+16505559999",
            "description": "User A changed from +1 650-555-1234 to +1 650-555-9999",
        }
    ]


async def test_a_changed_number_of_someone_who_never_wrote_is_acknowledged_and_ignored(
    client: TestClient, store: Store
) -> None:
    response = await post(client, payload("system"))
    assert (response.status, (await response.json())["ignored"]) == (200, 1)
    assert await count(store, identities) == 0
    assert client.app[INGESTOR].ignored_counts["whatsapp:number_changed"] == 1


@pytest.mark.parametrize("variant", ["missing", "wrong-secret", "altered"])
async def test_bad_signatures_are_refused_and_nothing_stored(client: TestClient, store: Store, variant: str) -> None:
    body = payload("text")
    headers = {
        "missing": {},
        "wrong-secret": {"X-Hub-Signature-256": sign(body, "another-app")},
        "altered": {"X-Hub-Signature-256": sign(body, SECRET)},
    }[variant]
    if variant == "altered":
        body = body.replace(b"color", b"colos")
    response = await post(client, body, secret=None, **headers)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "signature_invalid"
    assert await count(store, messages) == 0


async def test_unknown_number_is_404(client: TestClient, store: Store) -> None:
    response = await post(client, payload("text").replace(NUMBER.encode(), b"123456789012345"))
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_account"
    assert await count(store, messages) == 0


async def test_malformed_signed_body_is_acknowledged_and_kept_as_a_dead_letter(
    client: TestClient, store: Store
) -> None:
    body = b'{"object":"whatsapp_business_account","entry":[{"id":"1"}]}'
    response = await post(client, body)
    assert response.status == 200  # Meta retries anything else, and disables a webhook that keeps failing
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.channel, letter.account_id, letter.reason_code, letter.body) == (
        "whatsapp",
        "wa-cloud",
        "missing_field",
        body,
    )


# --------------------------------------------------- signed but unusable, and real payloads


async def test_signed_json_nested_100000_levels_is_acknowledged_and_kept(client: TestClient, store: Store) -> None:
    body = b'{"object":"whatsapp_business_account","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await post(client, body)
    assert response.status == 200
    [letter] = await rows(store, rejected_webhooks)
    assert (letter.channel, letter.reason_code) == ("whatsapp", "too_deep")
    assert await count(store, messages) == 0


async def test_signed_message_with_timestamp_1e308_is_stored_at_the_receive_time(
    client: TestClient, store: Store
) -> None:
    body = payload("text").replace(b'"timestamp":"1749416383"', b'"timestamp":1e308')
    before = datetime.now(UTC)
    response = await post(client, body)
    assert response.status == 200
    (row,) = await rows(store)
    assert before <= row.sent_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("name", "kind", "text"),
    [
        ("voice", "audio", None),
        ("flow_reply", "text", "date: 2026-12-08\npeople: 3\nnotes: window seat"),
        (
            "order_two_items",
            "text",
            "for Friday please\n2 x mug-blue at 12.5 EUR\n1 x tea-earl-grey at 7.25 EUR\nTotal: 32.25 EUR",
        ),
    ],
)
async def test_voice_flow_replies_and_orders_are_stored_for_agents(
    client: TestClient, store: Store, name: str, kind: str, text: str | None
) -> None:
    response = await post(client, payload(name))
    assert (response.status, (await response.json())["stored"]) == (200, 1)
    (row,) = await rows(store)
    assert (row.kind, row.text) == (kind, text)


async def test_location_url_is_kept(client: TestClient, store: Store) -> None:
    assert (await post(client, payload("location"))).status == 200
    (row,) = await rows(store)
    assert row.location["url"] == "https://meta.com"


async def test_a_message_cloud_api_does_not_carry_opens_a_conversation_the_agent_can_read(
    client: TestClient, store: Store
) -> None:
    """Meta's unsupported-message webhook (a poll here): before, acknowledged and dropped unseen."""
    response = await post(client, payload("unsupported_poll"))
    assert (response.status, (await response.json())["stored"]) == (200, 1)
    [row] = await rows(store)
    assert (row.kind, row.provider_message_id) == ("text", "wamid.unsupported_poll_7")
    assert row.text == "[A message WhatsApp did not pass on (poll_creation): Message type unknown]"
    assert await count(store, conversations) == 1


async def test_a_product_question_reaches_the_history_with_the_product_as_referral(
    client: TestClient, store: Store
) -> None:
    assert (await post(client, payload("product_enquiry"))).status == 200
    [row] = await rows(store)
    assert message_view(row)["referral"] == {"catalog_id": "880011223344", "product_retailer_id": "lamp-oak-01"}


def _text_with(**changes: Any) -> bytes:
    body = json.loads(payload("text"))
    value = body["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    if "id" in changes:
        message["id"] = changes["id"]
    if "sender" in changes:
        message["from"] = value["contacts"][0]["wa_id"] = changes["sender"]
    if "name" in changes:
        value["contacts"][0]["profile"]["name"] = changes["name"]
    return json.dumps(body).encode()


@pytest.mark.parametrize("field", ["id", "sender"])
async def test_a_signed_id_longer_than_the_store_keeps_is_a_dead_letter_on_both_engines(
    client: TestClient, store: Store, field: str
) -> None:
    """PostgreSQL refused the delivery (500, retried by Meta until it disables the webhook); SQLite kept it."""
    response = await post(client, _text_with(**{field: "1" * 201}))
    assert response.status == 200
    assert await count(store, messages) == 0
    (dead,) = await rows(store, rejected_webhooks)
    assert dead.reason_code == "invalid_field"


async def test_an_id_of_the_longest_length_kept_and_a_long_name_are_stored(client: TestClient, store: Store) -> None:
    response = await post(client, _text_with(id="w" * 200, name="N" * 500))
    assert (response.status, (await response.json())["stored"]) == (200, 1)
    (row,) = await rows(store)
    assert row.provider_message_id == "w" * 200
    (identity,) = await rows(store, identities)
    assert identity.display_name == "N" * 199 + "…"
