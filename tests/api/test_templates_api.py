"""The template API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from hub.model import DeliveryState
from hub.store.tables import identities, messages
from hub.store.templates import count_templates, list_templates
from tests.api.conftest import Api, MakeApi

SID = "HX0123456789abcdef0123456789abcdef"
SHIPPED = {"greeting", "order_update", "follow_up_human_agent", "closing", "callback_request"}

ORDER = {
    "name": "order_update",
    "description": "where an order is",
    "body": "Hi {{ name }}, order {{ order }} is {{ status }}.",
    "variables": {"name": "Ann", "order": "A-1", "status": "shipped"},
    "variants": {"viber": "Order {{ order }}: {{ status }} 🚚"},
    "tag": "POST_PURCHASE_UPDATE",
    "bindings": {
        "twilio": {"content_sid": SID, "variables": {"1": "name", "2": "order"}},
        "cloud": {"name": "order_update", "language": "en_US", "parameters": ["name", "order", "status"]},
    },
}


@pytest.fixture
async def api(make_api: MakeApi, tmp_path: Path) -> Api:
    """A hub whose template folder is empty, so only what a test creates exists."""
    empty = tmp_path / "no-templates"
    empty.mkdir()
    return await make_api(f'\n[templates]\ndir = "{empty.as_posix()}"\n')


async def test_admin_creates_lists_and_shows_a_template(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    created = await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    assert (created["name"], created["version"], created["created_by"]) == ("order_update", 1, admin.id)
    listed = await admin.json("GET", "/api/v1/templates")
    assert [t["name"] for t in listed["items"]] == ["order_update"]
    shown = await admin.json("GET", "/api/v1/templates/order_update")
    assert shown["bindings"] == ORDER["bindings"]
    assert [v["version"] for v in shown["versions"]] == [1]


async def test_update_adds_versions_and_diff_shows_the_change(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    changed = {**ORDER, "body": "Hello {{ name }}, order {{ order }} is {{ status }}."}
    del changed["name"]
    second = await admin.json("PUT", "/api/v1/templates/order_update", changed)
    assert second["version"] == 2
    shown = await admin.json("GET", "/api/v1/templates/order_update")
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    old = await admin.json("GET", "/api/v1/templates/order_update?version=1")
    assert old["body"] == ORDER["body"]
    diff = await admin.json("GET", "/api/v1/templates/order_update/diff?from=1&to=2")
    assert "-Hi {{ name }}" in diff["diff"]
    assert "+Hello {{ name }}" in diff["diff"]
    assert (await admin.json("GET", "/api/v1/templates/order_update/diff"))["from"] == 1


async def test_restore_makes_an_old_version_current_again(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    await admin.json(
        "PUT", "/api/v1/templates/order_update", {**ORDER, "body": "Changed {{ name }} {{ order }} {{ status }}"}
    )
    restored = await admin.json("POST", "/api/v1/templates/order_update/restore", {"version": 1})
    assert (restored["version"], restored["body"]) == (3, ORDER["body"])
    await admin.json("POST", "/api/v1/templates/order_update/restore", {"version": 7}, status=404)


async def test_preview_renders_examples_or_given_values_per_channel(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    examples = await admin.json("POST", "/api/v1/templates/order_update/preview", {})
    assert examples["text"] == "Hi Ann, order A-1 is shipped."
    assert examples["binding"]["twilio"] == {"content_sid": SID, "content_variables": {"1": "Ann", "2": "A-1"}}
    assert examples["binding"]["cloud"]["parameters"] == ["Ann", "A-1", "shipped"]
    assert examples["tag"] == "POST_PURCHASE_UPDATE"
    viber = await admin.json(
        "POST",
        "/api/v1/templates/order_update/preview",
        {"channel": "viber", "variables": {"name": "Bo", "order": "Z-9", "status": "late"}},
    )
    assert (viber["text"], viber["binding"], viber["tag"], viber["version"]) == ("Order Z-9: late 🚚", None, None, 1)
    messenger = await admin.json("POST", "/api/v1/templates/order_update/preview", {"channel": "messenger"})
    assert messenger["tag"] == "POST_PURCHASE_UPDATE"


async def test_preview_names_missing_and_unknown_variables(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    missing = await admin.json(
        "POST", "/api/v1/templates/order_update/preview", {"variables": {"name": "Bo"}}, status=422
    )
    assert missing["error"]["code"] == "missing_variables"
    assert missing["error"]["missing"] == ["order", "status"]
    unknown = await admin.json(
        "POST",
        "/api/v1/templates/order_update/preview",
        {"variables": {"name": "a", "order": "b", "status": "c", "colour": "red"}},
        status=422,
    )
    assert (unknown["error"]["code"], unknown["error"]["missing"]) == ("unknown_variables", ["colour"])


INVALID = [
    ({"body": "Hi {{ name"}, "template_syntax", 1),
    ({"body": "line\n{{ who }}"}, "undeclared_variables", 2),
    ({"body": "{{ ''.__class__.__mro__ }}"}, "unsafe_template", 1),
    ({"body": "{{ cycler.__init__.__globals__ }}"}, "unsafe_template", 1),
    ({"body": "{% if false %}x{% endif %}"}, "empty_output", None),
    ({"body": "{{ 'x' * 2500 }}"}, "too_long", None),
    ({"body": "{% for i in range(10**9) %}x{% endfor %}"}, "render_timeout", 1),
    ({"body": "ok", "tag": "PROMO"}, "invalid_template", None),
]


@pytest.mark.parametrize(("fields", "code", "line"), INVALID)
async def test_an_invalid_template_is_refused_with_line_and_reason(
    api: Api, fields: dict[str, Any], code: str, line: int | None
) -> None:
    admin = await api.agent("root", role="admin")
    body = await admin.json("POST", "/api/v1/templates", {"name": "bad", **fields}, status=422)
    assert body["error"]["code"] == code
    assert body["error"]["line"] == line
    assert await count_templates(api.store) == 0


async def test_a_refused_update_keeps_the_current_version(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    refused = await admin.json(
        "PUT", "/api/v1/templates/order_update", {**ORDER, "body": "{{ name.__class__ }}"}, status=422
    )
    assert refused["error"]["code"] == "unsafe_template"
    assert [(t.name, t.version) for t in await list_templates(api.store)] == [("order_update", 1)]


async def test_names_are_unique_and_cannot_be_renamed(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    again = await admin.json("POST", "/api/v1/templates", ORDER, status=409)
    assert again["error"]["code"] == "template_exists"
    renamed = await admin.json("PUT", "/api/v1/templates/order_update", {**ORDER, "name": "other"}, status=422)
    assert renamed["error"]["field"] == "name"
    await admin.json("PUT", "/api/v1/templates/nope", {"body": "x"}, status=404)


@pytest.mark.parametrize("role", ["agent", "supervisor"])
async def test_only_admins_write_preview_diff_restore_and_delete(api: Api, role: str) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    other = await api.agent("someone", role=role)
    for method, path, body in [
        ("POST", "/api/v1/templates", {**ORDER, "name": "mine"}),
        ("PUT", "/api/v1/templates/order_update", ORDER),
        ("POST", "/api/v1/templates/order_update/preview", {}),
        ("GET", "/api/v1/templates/order_update/diff", None),
        ("POST", "/api/v1/templates/order_update/restore", {"version": 1}),
        ("DELETE", "/api/v1/templates/order_update", None),
    ]:
        refused = await other.json(method, path, body, status=403)
        assert refused["error"]["code"] == "forbidden"
    assert [(t.name, t.version) for t in await list_templates(api.store)] == [("order_update", 1)]
    assert (await other.json("GET", "/api/v1/templates/order_update"))["version"] == 1


async def test_anonymous_callers_are_refused(api: Api) -> None:
    response = await api.client.get("/api/v1/templates")
    assert response.status == 401


async def test_delete_is_refused_while_a_queued_message_uses_the_template(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    conversation_id = await api.customer_writes(text="where is my order?")
    message_id = await _queued_message(api, conversation_id, "order_update")
    refused = await admin.json("DELETE", "/api/v1/templates/order_update", status=409)
    assert refused["error"]["code"] == "template_in_use"
    await _mark_sent(api, message_id)
    await admin.json("DELETE", "/api/v1/templates/order_update", status=204)
    await admin.json("GET", "/api/v1/templates/order_update", status=404)
    # made again under the same name, it goes on from the last version a message was sent with, so that the sent
    # message's (name, version) never names another text
    again = await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    assert again["version"] == 2
    assert [v["version"] for v in (await admin.json("GET", "/api/v1/templates/order_update"))["versions"]] == [2]
    diff = await admin.json("GET", "/api/v1/templates/order_update/diff")
    assert (diff["from"], diff["to"], diff["diff"]) == (2, 2, "")


async def test_agents_list_templates_for_their_channel(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    await admin.json("POST", "/api/v1/templates", ORDER, status=201)
    agent = await api.agent("ann")
    viber = await agent.json("GET", "/api/v1/templates?channel=viber")
    assert viber["items"][0]["body"] == ORDER["variants"]["viber"]  # type: ignore[index]
    assert viber["items"][0]["bindings"] == {}
    whatsapp = await agent.json("GET", "/api/v1/templates?channel=whatsapp")
    assert whatsapp["items"][0]["bindings"] == ORDER["bindings"]
    assert whatsapp["items"][0]["tag"] is None
    bad = await agent.json("GET", "/api/v1/templates?channel=telegram", status=422)
    assert bad["error"]["field"] == "channel"


async def test_an_agent_renders_a_template_into_their_conversation(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    greeting = {
        "name": "hello",
        "body": "Hi {{ contact.name }}, {{ agent.display_name }} from {{ queue.name }} about {{ topic }}.",
        "variables": {"topic": "your order"},
        "bindings": {"twilio": {"content_sid": SID, "variables": {"1": "contact.name", "2": "topic"}}},
    }
    await admin.json("POST", "/api/v1/templates", greeting, status=201)
    agent = await api.agent("ann", ready=True)
    conversation_id = await api.customer_writes(sender="+420600000009", text="hi")
    await api.sweep()
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/accept", {})
    rendered = await agent.json(
        "POST", f"/api/v1/conversations/{conversation_id}/templates/hello/render", {"variables": {"topic": "a refund"}}
    )
    assert rendered["text"] == "Hi Customer +420600000009, ann from Support about a refund."
    assert rendered["channel"] == "whatsapp"
    assert rendered["binding"]["twilio"]["content_variables"] == {"1": "Customer +420600000009", "2": "a refund"}
    missing = await agent.json(
        "POST", f"/api/v1/conversations/{conversation_id}/templates/hello/render", {}, status=422
    )
    assert missing["error"]["missing"] == ["topic"]
    stranger = await api.agent("bob", queues=("sales",))
    await stranger.json(
        "POST",
        f"/api/v1/conversations/{conversation_id}/templates/hello/render",
        {"variables": {"topic": "x"}},
        status=403,
    )


async def test_shipped_templates_are_seeded_into_an_empty_store(make_api: MakeApi) -> None:
    api = await make_api()
    agent = await api.agent("ann")
    listed = await agent.json("GET", "/api/v1/templates")
    assert {t["name"] for t in listed["items"]} == SHIPPED


# ---------------------------------------------------------------------- helpers


async def _queued_message(api: Api, conversation_id: int, template: str) -> int:
    async with api.store.write() as connection:
        identity_id, account_id = (
            await connection.execute(
                select(identities.c.id, identities.c.account_id).where(identities.c.external_id == "+420600000001")
            )
        ).one()
        result = await connection.execute(
            insert(messages).values(
                conversation_id=conversation_id,
                identity_id=identity_id,
                account_id=account_id,
                direction="out",
                author="agent",
                kind="template",
                text="Hi",
                created_at=api.clock(),
                delivery_state=DeliveryState.QUEUED.value,
                template_name=template,
                template_version=1,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def _mark_sent(api: Api, message_id: int) -> None:
    async with api.store.write() as connection:
        await connection.execute(
            messages.update().where(messages.c.id == message_id).values(delivery_state=DeliveryState.SENT.value)
        )


async def test_rendering_into_a_conversation_gives_the_text_a_send_of_it_queues(api: Api) -> None:
    """The console's render is the agent's preview of a send: every context field a saved template may read
    (the example context's) renders the same there as in the message that a reply with it queues."""
    admin = await api.agent("root", role="admin")
    fields = {
        "contact": ("name",),
        "identity": ("id", "account_id", "channel", "external_id", "display_name"),
        "agent": ("id", "login", "display_name", "role"),
        "conversation": ("id", "account_id", "channel", "queue_id", "state", "important"),
        "queue": ("id", "name", "number"),
    }
    body = "\n".join(f"{obj}.{field}={{{{ {obj}.{field} }}}}" for obj, names in fields.items() for field in names)
    await admin.json("POST", "/api/v1/templates", {"name": "everything", "body": body}, status=201)
    agent = await api.agent("ann", ready=True)
    conversation_id = await api.customer_writes(sender="+420600000001", text="hi")
    await api.sweep()
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/accept", {})
    rendered = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/templates/everything/render", {})
    sent = await agent.json(
        "POST", f"/api/v1/conversations/{conversation_id}/messages", {"template": "everything"}, status=201
    )
    assert rendered["text"] == sent["text"]
    assert "identity.account_id=wa-test" in rendered["text"]
    assert (rendered["name"], rendered["version"]) == (sent["template"]["name"], sent["template"]["version"])
