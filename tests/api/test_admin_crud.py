"""Admin CRUD through the API: queues (members, figures), statuses, agents, accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from hub.store.tables import account_health, agents, auth_tokens, conversations, queues, statuses
from tests.api.conftest import Api


async def _queue_row(api: Api, queue_id: str) -> Any:
    async with api.store.read() as connection:
        return (await connection.execute(select(queues).where(queues.c.id == queue_id))).first()


async def test_everyone_lists_queues_seeded_from_the_config(api: Api) -> None:
    alice = await api.agent("alice")
    body = await alice.json("GET", "/api/v1/queues")
    by_id = {q["id"]: q for q in body["items"]}
    assert set(by_id) == {"support", "sales"}
    assert by_id["support"]["number"] == 100
    assert by_id["support"]["statuses"] == ["resolved", "spam"]
    assert by_id["support"]["members"] == [alice.id]
    assert by_id["sales"]["offer_timeout"] == 20


async def test_admin_creates_changes_and_deletes_a_queue(api: Api) -> None:
    root = await api.agent("root", role="admin")
    created = await root.json(
        "POST",
        "/api/v1/queues",
        {
            "id": "vip",
            "name": "VIP",
            "number": 300,
            "offer_timeout": 15,
            "statuses": ["resolved"],
            "url_template": "https://crm.example/c/{contact_id}?conv={conversation_id}",
        },
        status=201,
    )
    assert created["statuses"] == ["resolved"]
    assert created["members"] == []
    changed = await root.json("PUT", "/api/v1/queues/vip", {"name": "Very important", "url_template": None})
    assert (changed["name"], changed["url_template"], changed["number"]) == ("Very important", None, 300)
    row = await _queue_row(api, "vip")
    assert row.name == "Very important"
    await root.json("DELETE", "/api/v1/queues/vip", status=204)
    assert await _queue_row(api, "vip") is None
    response = await root.get("/api/v1/queues/vip")
    assert response.status == 404


async def test_invalid_queue_input_is_422_and_duplicate_id_409(api: Api) -> None:
    root = await api.agent("root", role="admin")
    for body, field in [
        ({"name": "X", "number": 1}, "id"),
        ({"id": "bad id!", "name": "X", "number": 1}, "id"),
        ({"id": "x", "number": 1}, "name"),
        ({"id": "x", "name": "X", "number": 1, "offer_timeout": 0}, "offer_timeout"),
        ({"id": "x", "name": "X", "number": 1, "statuses": ["nope"]}, "statuses"),
        ({"id": "x", "name": "X", "number": 1, "url_template": "ftp://x"}, "url_template"),
        ({"id": "x", "name": "X", "number": 1, "url_template": "https://x/{secret}"}, "url_template"),
        ({"id": "x", "name": "X", "number": 1, "url_template": "https://x/{"}, "url_template"),
    ]:
        response = await root.post("/api/v1/queues", json=body)
        assert response.status == 422, body
        assert (await response.json())["error"]["field"] == field, body
    assert await _queue_row(api, "x") is None
    response = await root.post("/api/v1/queues", json={"id": "support", "name": "Again", "number": 5})
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "queue_exists"
    assert (await _queue_row(api, "support")).name == "Support"


async def test_queue_used_by_an_account_or_open_conversations_cannot_be_deleted(api: Api) -> None:
    root = await api.agent("root", role="admin")
    response = await root.delete("/api/v1/queues/support")  # the wa-test account routes into it
    assert response.status == 409
    body = await response.json()
    assert body["error"]["code"] == "queue_in_use"
    assert body["error"]["accounts"] == ["wa-test"]
    conversation_id = await api.customer_writes()
    async with api.store.write() as connection:
        await connection.execute(
            update(conversations).where(conversations.c.id == conversation_id).values(queue_id="sales")
        )
    response = await root.delete("/api/v1/queues/sales")
    assert response.status == 409
    assert await _queue_row(api, "sales") is not None


async def test_queue_members_are_replaced_by_a_supervisor(api: Api) -> None:
    alice = await api.agent("alice", queues=())
    bob = await api.agent("bob", queues=("sales",))
    boss = await api.agent("boss", role="supervisor", queues=())
    body = await boss.json("PUT", "/api/v1/queues/sales/members", {"agents": [alice.id]})
    assert body["members"] == [alice.id]
    me = await bob.json("GET", "/api/v1/me")
    assert "sales" not in me["queues"]
    response = await boss.put("/api/v1/queues/sales/members", json={"agents": [99999]})
    assert response.status == 422
    response = await boss.put("/api/v1/queues/nope/members", json={"agents": []})
    assert response.status == 404
    response = await alice.put("/api/v1/queues/sales/members", json={"agents": [alice.id, bob.id]})
    assert response.status == 403
    assert (await boss.json("GET", "/api/v1/queues/sales"))["members"] == [alice.id]


async def test_queue_figures_count_waiting_and_agents_by_presence(api: Api) -> None:
    alice = await api.agent("alice", capacity=1)
    bob = await api.agent("bob")
    await api.agent("carol")  # stays offline
    # everyone is offline while the customers write, so routing offers nothing meanwhile
    first = await api.customer_writes(sender="+420600000001")
    api.clock.advance(5)
    await api.customer_writes(sender="+420600000002")
    api.clock.advance(15)
    async with api.store.write() as connection:
        await connection.execute(
            update(conversations).where(conversations.c.id == first).values(state="active", owner_agent_id=alice.id)
        )
    await alice.json("PUT", "/api/v1/me/presence", {"state": "ready"})  # ready, but full
    await bob.json("PUT", "/api/v1/me/presence", {"state": "paused", "reason": "lunch"})
    body = await bob.json("GET", "/api/v1/queues/support")
    figures = body["figures"]
    assert (figures["waiting"], figures["offered"], figures["active"]) == (1, 0, 1)
    assert figures["longest_wait_seconds"] == 15
    assert figures["agents"] == {"ready": 0, "busy": 1, "paused": 1, "offline": 1}
    listed = await bob.json("GET", "/api/v1/queues")
    assert next(q for q in listed["items"] if q["id"] == "support")["figures"] == figures


async def test_statuses_crud_and_in_use_refusal(api: Api) -> None:
    root = await api.agent("root", role="admin")
    alice = await api.agent("alice")
    assert [s["id"] for s in (await alice.json("GET", "/api/v1/statuses"))["items"]] == ["resolved", "spam"]
    await root.json("POST", "/api/v1/statuses", {"id": "callback", "name": "Call back"}, status=201)
    renamed = await root.json("PUT", "/api/v1/statuses/callback", {"name": "Call back later"})
    assert renamed == {"id": "callback", "name": "Call back later"}
    response = await root.post("/api/v1/statuses", json={"id": "callback", "name": "Twice"})
    assert response.status == 409
    response = await root.delete("/api/v1/statuses/resolved")  # support allows it at close
    assert response.status == 409
    assert (await response.json())["error"]["queues"] == ["support"]
    await root.json("DELETE", "/api/v1/statuses/callback", status=204)
    async with api.store.read() as connection:
        left = (await connection.execute(select(statuses.c.id).order_by(statuses.c.id))).scalars().all()
    assert left == ["resolved", "spam"]
    response = await alice.post("/api/v1/statuses", json={"id": "x", "name": "X"})
    assert response.status == 403


async def test_admin_creates_and_changes_an_agent_who_can_then_log_in(api: Api) -> None:
    root = await api.agent("root", role="admin")
    created = await root.json(
        "POST",
        "/api/v1/agents",
        {"login": "dana", "password": "s3cret-enough", "role": "supervisor", "capacity": 3, "queues": ["sales"]},
        status=201,
    )
    assert (created["role"], created["capacity"], created["queues"], created["active"]) == (
        "supervisor",
        3,
        ["sales"],
        True,
    )
    response = await api.client.post("/api/v1/auth/login", json={"login": "dana", "password": "s3cret-enough"})
    assert response.status == 200
    changed = await root.json(
        "PUT",
        f"/api/v1/agents/{created['id']}",
        {"role": "agent", "display_name": "Dana D.", "queues": ["support", "sales"], "password": "another-one"},
    )
    assert (changed["role"], changed["display_name"], changed["queues"]) == ("agent", "Dana D.", ["sales", "support"])
    old = await api.client.post("/api/v1/auth/login", json={"login": "dana", "password": "s3cret-enough"})
    assert old.status == 401
    new = await api.client.post("/api/v1/auth/login", json={"login": "dana", "password": "another-one"})
    assert new.status == 200
    listed = await root.json("GET", "/api/v1/agents")
    assert {a["login"] for a in listed["items"]} == {"root", "dana"}


async def test_invalid_agent_input_is_422_and_duplicate_login_409(api: Api) -> None:
    root = await api.agent("root", role="admin")
    for body, field in [
        ({"password": "long-enough"}, "login"),
        ({"login": "x y", "password": "long-enough"}, "login"),
        ({"login": "x"}, "password"),
        ({"login": "x", "password": "short"}, "password"),
        ({"login": "x", "password": "long-enough", "role": "god"}, "role"),
        ({"login": "x", "password": "long-enough", "capacity": 0}, "capacity"),
        ({"login": "x", "password": "long-enough", "queues": ["nope"]}, "queues"),
    ]:
        response = await root.post("/api/v1/agents", json=body)
        assert response.status == 422, body
        assert (await response.json())["error"]["field"] == field, body
    async with api.store.read() as connection:
        logins = (await connection.execute(select(agents.c.login))).scalars().all()
    assert logins == ["root"]
    response = await root.post("/api/v1/agents", json={"login": "root", "password": "long-enough"})
    assert response.status == 409


async def test_nobody_changes_their_own_role_or_deactivates_themselves(api: Api) -> None:
    root = await api.agent("root", role="admin")
    response = await root.put(f"/api/v1/agents/{root.id}", json={"role": "agent"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "own_account"
    response = await root.delete(f"/api/v1/agents/{root.id}")
    assert response.status == 403
    me = await root.json("GET", "/api/v1/me")
    assert me["role"] == "admin"
    # their own display name is fine
    assert (await root.json("PUT", f"/api/v1/agents/{root.id}", {"display_name": "Root"}))["display_name"] == "Root"


async def test_deactivated_agent_is_logged_out_and_cannot_log_in(api: Api) -> None:
    root = await api.agent("root", role="admin")
    alice = await api.agent("alice")
    await alice.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    await root.json("DELETE", f"/api/v1/agents/{alice.id}", status=204)
    response = await alice.get("/api/v1/me")
    assert response.status == 401
    response = await api.client.post("/api/v1/auth/login", json={"login": "alice", "password": "correct horse battery"})
    assert response.status == 401
    async with api.store.read() as connection:
        row = (
            await connection.execute(select(agents.c.active, agents.c.presence).where(agents.c.id == alice.id))
        ).one()
        live = (
            await connection.execute(
                select(auth_tokens.c.id).where(auth_tokens.c.agent_id == alice.id, auth_tokens.c.revoked_at.is_(None))
            )
        ).all()
    assert (row.active, row.presence) == (False, "offline")
    assert live == []
    listed = await root.json("GET", "/api/v1/agents")
    assert [a["login"] for a in listed["items"]] == ["root"]
    everyone = await root.json("GET", "/api/v1/agents?inactive=1")
    assert {a["login"] for a in everyone["items"]} == {"root", "alice"}
    back = await root.json("PUT", f"/api/v1/agents/{alice.id}", {"active": True})
    assert back["active"] is True


async def test_one_agent_is_read_with_their_load_active_or_not(api: Api) -> None:
    """``GET /api/v1/agents/{id}``: the agent as the list shows them, their load counting the conversation they
    own; after deactivation still found, not active, with no load; an unknown id is 404."""
    root = await api.agent("root", role="admin")
    alice = await api.agent("alice")
    conversation_id = await api.customer_writes()
    async with api.store.write() as connection:
        await connection.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(state="active", owner_agent_id=alice.id, waiting_since=None)
        )
    one = await root.json("GET", f"/api/v1/agents/{alice.id}")
    (listed,) = [a for a in (await root.json("GET", "/api/v1/agents"))["items"] if a["id"] == alice.id]
    assert one == listed
    assert (one["active"], one["load"], one["queues"]) == (True, 1, listed["queues"])
    await root.json("DELETE", f"/api/v1/agents/{alice.id}", status=204)
    gone = await root.json("GET", f"/api/v1/agents/{alice.id}")
    assert (gone["login"], gone["active"], gone["load"]) == ("alice", False, 0)
    response = await root.get("/api/v1/agents/999999")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_accounts_show_health_and_never_secrets(api: Api) -> None:
    boss = await api.agent("boss", role="supervisor")
    alice = await api.agent("alice")
    body = await boss.json("GET", "/api/v1/accounts")
    (account,) = body["items"]
    assert account["id"] == "wa-test"
    assert account["health"]["state"] == "silent"
    assert account["address"] == "+15550001111"
    await api.customer_writes()
    async with api.store.write() as connection:
        await connection.execute(
            update(account_health)
            .where(account_health.c.account_id == "wa-test")
            .values(last_send_error="63016: outside the window", last_send_error_at=api.clock())
        )
    raw = await (await boss.get("/api/v1/accounts")).text()
    assert "test-auth-token" not in raw
    account = (await boss.json("GET", "/api/v1/accounts"))["items"][0]
    assert account["health"]["state"] == "failing"
    assert account["health"]["last_webhook_at"] is not None
    assert account["health"]["last_send_error"] == "63016: outside the window"
    response = await alice.get("/api/v1/accounts")
    assert response.status == 403
