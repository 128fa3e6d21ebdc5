"""The audit log: what the actions record, how admins search and export it, that nobody edits it, and
that it is kept only ``[audit] keep_days``."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.api.keys import HUB
from hub.audit import AuditKeeper, record
from hub.settings import AuditSettings
from hub.store.tables import audit_log
from hub.templates import TemplateDraft
from hub.usecases import Parts, Principal
from hub.usecases import templates as template_usecases
from tests.api.conftest import Api, MakeApi
from tests.api.test_desk_close_transfer import close, owned_with_guests

SIMPLE = {"name": "greeting", "body": "Hello {{ name }}!", "variables": {"name": "Ann"}}


@pytest.fixture
async def api(make_api: MakeApi, tmp_path: Path) -> Api:
    empty = tmp_path / "no-templates"
    empty.mkdir()
    return await make_api(f'\n[templates]\ndir = "{empty.as_posix()}"\n', fake_adapter=True)


async def entries(api: Api, query: str = "") -> list[dict[str, Any]]:
    admin = await _admin(api)
    body = await admin.json("GET", f"/api/v1/audit?limit=200{query}")
    return list(body["items"])


async def _admin(api: Api) -> Any:
    handle = getattr(api, "_audit_admin", None)
    if handle is None:
        handle = await api.agent("auditor", role="admin")
        api._audit_admin = handle  # type: ignore[attr-defined]
    return handle


def by_action(items: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [item for item in items if item["action"] == action]


async def count_rows(api: Api) -> int:
    async with api.store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(audit_log))).scalar_one())


# ------------------------------------------------------------------ what is recorded


async def test_logins_and_failed_logins_are_recorded_with_the_address(api: Api) -> None:
    await api.agent("ana")
    failed = await api.client.post("/api/v1/auth/login", json={"login": "ana", "password": "wrong password"})
    assert failed.status == 401
    unknown = await api.client.post("/api/v1/auth/login", json={"login": "nobody", "password": "whatever pass"})
    assert unknown.status == 401

    items = await entries(api)

    [login] = [i for i in by_action(items, "auth.login") if i["actor"] == "ana"]
    assert (login["actor_kind"], login["address"]) == ("agent", "127.0.0.1")
    failures = by_action(items, "auth.login_failed")
    assert {(f["actor"], f["after"]["reason"], f["address"]) for f in failures} == {
        ("ana", "invalid_credentials", "127.0.0.1"),
        ("nobody", "invalid_credentials", "127.0.0.1"),
    }
    assert set(login) >= {"id", "at", "actor", "actor_kind", "action", "address", "target", "before", "after"}


async def test_a_logout_and_its_entry_are_written_together(api: Api) -> None:
    """The database refuses the entry (its table is away): the logout fails as a whole and the token still
    works; the next logout is recorded once."""
    ana = await api.agent("ana")
    async with api.store.write() as connection:
        await connection.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_away")
    try:
        assert (await ana.post("/api/v1/auth/logout")).status == 500
    finally:
        async with api.store.write() as connection:
            await connection.exec_driver_sql("ALTER TABLE audit_log_away RENAME TO audit_log")
    assert (await ana.get("/api/v1/me")).status == 200, "no entry, no logout"
    assert by_action(await entries(api), "auth.logout") == []

    assert (await ana.post("/api/v1/auth/logout")).status == 204
    assert (await ana.get("/api/v1/me")).status == 401
    [logout] = by_action(await entries(api), "auth.logout")
    assert (logout["actor"], logout["actor_kind"], logout["address"]) == ("ana", "agent", "127.0.0.1")


async def test_presence_is_recorded_with_before_and_after(api: Api) -> None:
    ana = await api.agent("ana")
    await ana.json("PUT", "/api/v1/me/presence", {"state": "paused", "reason": "lunch", "paid": False})

    [change] = by_action(await entries(api), "presence.changed")

    assert (change["actor"], change["target"]) == ("ana", "agent:ana")
    assert change["before"]["state"] == "offline"
    assert change["after"] == {"state": "paused", "reason": "lunch", "paid": False}


async def test_the_unpaid_pause_after_a_missed_offer_is_recorded_as_the_systems(api: Api) -> None:
    ana = await api.agent("ana", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    api.clock.advance(3600)
    await api.sweep()  # the offer ran out: ana is paused, unpaid

    [paused] = [i for i in await entries(api, "&action=presence.changed") if i["actor_kind"] == "system"]

    assert (paused["actor"], paused["target"], paused["conversation"]) == (None, f"agent:{ana.login}", conversation_id)
    assert paused["before"] == {"state": "ready"}
    assert paused["after"] == {"state": "paused", "reason": "missed offer", "paid": False}


async def test_conversation_actions_and_sends_are_recorded(api: Api) -> None:
    ana = await api.agent("ana", ready=True)
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    await api.sweep()
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "On it"}, 201)
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/invite", {"agent": "bob"})
    await bob.json("POST", f"/api/v1/conversations/{conversation_id}/leave")
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "sales"})

    items = await entries(api, f"&conversation={conversation_id}")

    assert [i["action"] for i in reversed(items)] == [
        "conversation.accepted",
        "message.sent",
        "conversation.invited",
        "conversation.left",
        "conversation.transferred",
    ]
    accepted, sent, invited, left, transferred = reversed(items)
    assert (accepted["before"]["state"], accepted["after"]["state"]) == ("offered", "active")
    assert sent["after"]["template"] is None
    assert isinstance(sent["after"]["message_id"], int)
    assert invited["after"]["invited"]
    assert (left["actor"], transferred["actor"]) == ("bob", "ana")
    assert (transferred["before"]["queue"], transferred["after"]["queue"]) == ("support", "sales")
    assert all(i["target"] == f"conversation:{conversation_id}" for i in items)


async def test_send_and_close_is_found_under_conversation_closed(api: Api) -> None:
    ana = await api.agent("ana", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/close", {"status": "resolved"})

    [closed] = await entries(api, "&action=conversation.closed")

    assert (closed["actor"], closed["after"]["state"], closed["after"]["status"]) == ("ana", "closed", "resolved")


async def test_start_chat_is_recorded_as_conversation_opened(api: Api) -> None:
    ana = await api.agent("ana", ready=True)
    first = await api.customer_writes()
    await api.sweep()
    await ana.json("POST", f"/api/v1/conversations/{first}/accept")
    await ana.json("POST", f"/api/v1/conversations/{first}/close", {"status": "resolved"})
    identity = (await ana.json("GET", f"/api/v1/conversations/{first}"))["identity"]
    identity_id = identity["id"] if isinstance(identity, dict) else identity
    started = await ana.json("POST", "/api/v1/outbound", {"identity": identity_id, "mode": "chat"})

    [opened] = await entries(api, "&action=conversation.opened")

    assert opened["target"] == f"conversation:{started['conversation']['id']}"
    assert (opened["actor"], opened["after"]["state"], opened["after"]["identity"]) == ("ana", "active", identity_id)


async def test_template_edits_are_recorded_with_before_and_after(api: Api) -> None:
    admin = await _admin(api)
    await admin.json("POST", "/api/v1/templates", SIMPLE, status=201)
    await admin.json("PUT", "/api/v1/templates/greeting", {"body": "Hi {{ name }}!", "variables": {"name": "Ann"}})
    await admin.json("DELETE", "/api/v1/templates/greeting", status=204)

    items = await entries(api, "&action=template.")

    created, updated, deleted = reversed(items)
    assert (created["action"], created["before"], created["after"]["body"]) == (
        "template.created",
        None,
        "Hello {{ name }}!",
    )
    assert (updated["before"]["body"], updated["after"]["body"]) == ("Hello {{ name }}!", "Hi {{ name }}!")
    assert (updated["before"]["version"], updated["after"]["version"]) == (1, 2)
    assert (deleted["action"], deleted["before"]["version"], deleted["after"]) == ("template.deleted", 2, None)
    assert {i["target"] for i in items} == {"template:greeting"}


async def test_article_edits_are_recorded_with_before_and_after(api: Api) -> None:
    admin = await _admin(api)
    made = await admin.json(
        "POST", "/api/v1/articles", {"title": "Returns", "body": "Send it back.", "tags": ["post"]}, status=201
    )
    await admin.json("PUT", f"/api/v1/articles/{made['id']}", {"body": "Send it back within 30 days."})
    await admin.json("DELETE", f"/api/v1/articles/{made['id']}", status=204)

    items = await entries(api, "&action=article.")

    created, updated, deleted = reversed(items)
    assert (created["action"], created["before"], created["after"]["title"]) == ("article.created", None, "Returns")
    assert (updated["action"], updated["before"]["body"], updated["after"]["body"]) == (
        "article.updated",
        "Send it back.",
        "Send it back within 30 days.",
    )
    assert (updated["before"]["version"], updated["after"]["version"]) == (1, 2)
    assert (deleted["action"], deleted["before"]["version"], deleted["after"]) == ("article.deleted", 2, None)
    assert {i["target"] for i in items} == {f"article:{made['id']}"}
    assert {i["actor"] for i in items} == {"auditor"}


async def test_the_command_line_is_recorded_as_cli(api: Api) -> None:
    hub = api.app[HUB]
    parts = Parts(settings=hub.settings, store=hub.store, bus=hub.bus, clock=hub.clock)
    await template_usecases.create(parts, Principal.operator(), TemplateDraft(name="cli_made", body="Hi"))

    [created] = await entries(api, "&action=template.created")

    assert (created["actor"], created["actor_kind"], created["address"]) == (None, "cli", None)


async def test_agent_and_queue_changes_are_recorded(api: Api) -> None:
    admin = await _admin(api)
    made = await admin.json(
        "POST", "/api/v1/agents", {"login": "cleo", "password": "long enough pass", "queues": ["support"]}, 201
    )
    await admin.json("PUT", f"/api/v1/agents/{made['id']}", {"capacity": 5, "password": "another long one"})
    await admin.json("DELETE", f"/api/v1/agents/{made['id']}", status=204)
    await admin.json("PUT", "/api/v1/queues/support", {"name": "Customer support"})
    await admin.json("PUT", "/api/v1/queues/sales/members", {"agents": [admin.id]})

    items = await entries(api)

    [created] = by_action(items, "agent.created")
    [updated] = by_action(items, "agent.updated")
    [deactivated] = by_action(items, "agent.deactivated")
    assert created["target"] == updated["target"] == deactivated["target"] == "agent:cleo"
    assert (updated["before"]["capacity"], updated["after"]["capacity"]) == (2, 5)
    assert updated["after"]["password_changed"] is True
    assert "long" not in json.dumps(updated)  # the password itself is never recorded
    assert (deactivated["after"]["active"], deactivated["actor"]) == (False, "auditor")
    [queue] = by_action(items, "queue.updated")
    assert (queue["before"]["name"], queue["after"]["name"]) == ("Support", "Customer support")
    [members] = by_action(items, "queue.members_changed")
    assert (members["target"], members["after"]["members"]) == ("queue:sales", [admin.id])


async def test_allowing_transfer_back_is_recorded_as_a_queue_change(api: Api) -> None:
    admin = await _admin(api)
    await admin.json("PUT", "/api/v1/queues/support", {"transfer_back": True})

    [updated] = await entries(api, "&action=queue.updated")

    assert (updated["before"]["transfer_back"], updated["after"]["transfer_back"]) == (False, True)


async def test_deleting_a_contact_is_recorded_without_its_data(api: Api) -> None:
    admin = await _admin(api)
    contact = await admin.json("POST", "/api/v1/contacts", {"name": "Jane Private", "phone": "+420600000009"}, 201)
    await admin.json("DELETE", f"/api/v1/contacts/{contact['id']}", status=204)

    items = await entries(api, "&action=contact.")

    assert [i["action"] for i in items] == ["contact.deleted", "contact.created"]
    assert items[0]["target"] == f"contact:{contact['id']}"
    assert "Jane" not in json.dumps(items)
    assert "+420600000009" not in json.dumps(items)


async def test_deleting_a_contacts_data_is_recorded(api: Api) -> None:
    admin = await _admin(api)
    contact = await admin.json("POST", "/api/v1/contacts", {"name": "Jane Private"}, 201)
    await admin.json("DELETE", f"/api/v1/contacts/{contact['id']}/data")

    [deleted] = await entries(api, "&action=contact.data_deleted")

    assert (deleted["actor"], deleted["target"]) == ("auditor", f"contact:{contact['id']}")
    assert deleted["after"] == {"attachments": 0, "blobs": 0, "blobs_pending": 0}
    assert "Jane" not in json.dumps(deleted)


async def test_ticket_changes_are_recorded_without_their_text(api: Api) -> None:
    ana = await api.agent("ana", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    ticket = await ana.json("POST", "/api/v1/tickets", {"title": "Refund for Jane Private"}, 201)
    await ana.json("PUT", f"/api/v1/tickets/{ticket['id']}", {"title": "Refund, Jane Private"})
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/ticket", {"ticket": ticket["id"]})

    items = await entries(api, "&action=ticket.")

    assert [i["action"] for i in reversed(items)] == ["ticket.created", "ticket.updated", "ticket.assigned"]
    assert {i["target"] for i in items} == {f"ticket:{ticket['id']}"}
    assert items[0]["conversation"] == conversation_id
    assert items[1]["after"] == {"fields": ["title"]}
    assert "Jane" not in json.dumps(items)


async def test_outgoing_webhook_changes_are_recorded_without_their_secret(api: Api) -> None:
    admin = await _admin(api)
    url = "https://bob:pw-in-url@crm.example/hook?token=tok-in-url"
    hook = {"id": "crm", "url": url, "events": ["message.created"]}
    created = await admin.json("POST", "/api/v1/webhooks-out", hook, 201)
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    await admin.json("PUT", "/api/v1/webhooks-out/crm", {"secret": secret, "queues": ["support"]})
    await api.customer_writes()
    page = await admin.json("GET", "/api/v1/webhooks-out/crm/deliveries")
    delivery = page["items"][0]["id"]
    await admin.json("POST", f"/api/v1/webhooks-out/crm/deliveries/{delivery}/replay", status=202)
    await admin.json("DELETE", "/api/v1/webhooks-out/crm", status=204)

    items = list(reversed(await entries(api, "&action=webhook_out.")))

    assert [i["action"] for i in items] == [
        "webhook_out.created",
        "webhook_out.updated",
        "webhook_out.replayed",
        "webhook_out.deleted",
    ]
    assert {(i["actor"], i["target"]) for i in items} == {("auditor", "webhook_out:crm")}
    assert items[0]["after"]["url"] == "https://crm.example/hook"
    assert (items[1]["before"]["queues"], items[1]["after"]["queues"]) == (None, ["support"])
    assert items[1]["after"]["secret_changed"] is True
    assert items[2]["after"] == {"delivery": delivery}
    written = json.dumps(items)
    for hidden in (created["secret"], secret, "pw-in-url", "tok-in-url"):
        assert hidden not in written


# ------------------------------------------------------------------ searching and paging


async def test_filters_by_actor_action_and_time(api: Api) -> None:
    ana = await api.agent("ana")
    api.clock.advance(60)
    await ana.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    api.clock.advance(30)
    middle = api.clock().isoformat()
    api.clock.advance(30)
    await ana.json("PUT", "/api/v1/me/presence", {"state": "offline"})

    only_ana = await entries(api, "&actor=ana")
    assert {i["actor"] for i in only_ana} == {"ana"}
    assert [i["action"] for i in only_ana] == ["presence.changed", "presence.changed", "auth.login"]
    since = await entries(api, "&action=presence.changed&from=" + middle.replace("+", "%2B"))
    assert [i["after"]["state"] for i in since] == ["offline"]
    until = await entries(api, "&action=presence.changed&to=" + middle.replace("+", "%2B"))
    assert [i["after"]["state"] for i in until] == ["ready"]
    assert await entries(api, "&action=auth.") == by_action(await entries(api), "auth.login")


async def test_a_time_typed_with_its_offset_unescaped_is_read_as_written(api: Api) -> None:
    # ?from=...+00:00 as typed in a shell arrives with a space for the "+"; the reports already read it so
    ana = await api.agent("ana")
    api.clock.advance(60)
    middle = api.clock().isoformat()
    api.clock.advance(60)
    await ana.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    assert "+" in middle
    escaped = await entries(api, "&action=presence.changed&from=" + middle.replace("+", "%2B"))
    typed = await entries(api, "&action=presence.changed&from=" + middle)
    assert [i["after"]["state"] for i in typed] == ["ready"]
    assert typed == escaped


async def test_an_offset_written_unescaped_in_the_query_still_parses(api: Api) -> None:
    """``from=...T10:00:00+01:00`` typed into curl or a browser: the query string turns the "+" into a space."""
    ana = await api.agent("ana")
    await ana.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    api.clock.advance(60)
    middle = api.clock().astimezone(timezone(timedelta(hours=1))).isoformat()  # 10:01:00+01:00
    api.clock.advance(60)
    await ana.json("PUT", "/api/v1/me/presence", {"state": "offline"})

    since = await entries(api, f"&action=presence.changed&from={middle}")
    assert [i["after"]["state"] for i in since] == ["offline"]
    exported = await (await _admin(api)).get(f"/api/v1/audit.jsonl?action=presence.changed&to={middle}")
    assert exported.status == 200
    assert [json.loads(line)["after"]["state"] for line in (await exported.text()).splitlines()] == ["ready"]


async def test_pages_follow_the_next_cursor(api: Api) -> None:
    ana = await api.agent("ana")
    for state in ("ready", "paused", "ready", "offline", "ready"):
        await ana.json("PUT", "/api/v1/me/presence", {"state": state})
    admin = await _admin(api)
    seen: list[int] = []
    path = "/api/v1/audit?action=presence.changed&limit=2"
    while True:
        body = await admin.json("GET", path)
        seen += [i["id"] for i in body["items"]]
        if body["next"] is None:
            break
        path = f"/api/v1/audit?action=presence.changed&limit=2&after={body['next']}"
    assert len(seen) == 5
    assert seen == sorted(seen, reverse=True)


async def test_bad_queries_are_422(api: Api) -> None:
    admin = await _admin(api)
    for query, field in (
        ("after=not-a-cursor", "after"),
        ("from=yesterday", "from"),
        ("conversation=abc", "conversation"),
        ("from=2026-03-02T10:00:00Z&to=2026-03-02T09:00:00Z", "to"),
        ("limit=1000", "limit"),
        ("from=0001-01-01T00:00:00%2B05:00", "from"),  # in UTC, before year 1
        ("to=9999-12-31T23:00:00-05:00", "to"),  # in UTC, after year 9999
    ):
        response = await admin.get(f"/api/v1/audit?{query}")
        assert response.status == 422, query
        assert (await response.json())["error"]["field"] == field


async def test_exports_refuse_a_date_out_of_range_before_they_start(api: Api) -> None:
    admin = await _admin(api)
    for path in ("/api/v1/audit.csv", "/api/v1/audit.jsonl"):
        response = await admin.get(f"{path}?from=0001-01-01T00:00:00%2B05:00")
        assert response.status == 422, path
        assert (await response.json())["error"]["field"] == "from"


async def test_only_admins_read_it(api: Api) -> None:
    for role in ("agent", "supervisor"):
        caller = await api.agent(f"a-{role}", role=role)
        for path in ("/api/v1/audit", "/api/v1/audit.csv", "/api/v1/audit.jsonl"):
            response = await caller.get(path)
            assert response.status == 403, (role, path)
    api.client.session.cookie_jar.clear()  # the console's session cookie of the last login
    assert (await api.client.get("/api/v1/audit")).status == 401


async def test_nothing_edits_or_deletes_an_entry_through_the_api(api: Api) -> None:
    admin = await _admin(api)
    [entry] = await entries(api)
    before = await count_rows(api)
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        for path in ("/api/v1/audit", f"/api/v1/audit/{entry['id']}", "/api/v1/audit.csv"):
            response = await admin.request(method, path, json={"action": "auth.nothing"})
            assert response.status in (404, 405), (method, path)
    assert await count_rows(api) == before
    assert (await entries(api))[-1] == entry


# ------------------------------------------------------------------ exports


async def test_csv_and_json_lines_export_what_the_filters_select(api: Api) -> None:
    ana = await api.agent("=cmd|calc")  # a login a spreadsheet would take for a formula
    await ana.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    admin = await _admin(api)

    response = await admin.get("/api/v1/audit.csv?action=presence.changed")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "audit.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert len(rows) == 1
    assert rows[0]["action"] == "presence.changed"
    assert rows[0]["actor"] == "'=cmd|calc"
    assert json.loads(rows[0]["after"])["state"] == "ready"

    response = await admin.get("/api/v1/audit.jsonl?actor=auditor")
    assert response.status == 200
    lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [line["action"] for line in lines] == ["auth.login"]
    assert lines[0]["actor"] == "auditor"


# ------------------------------------------------------------------ the store side


async def test_an_entry_written_in_a_failed_transaction_is_gone_with_it(api: Api) -> None:
    before = await count_rows(api)

    async def change_that_fails() -> None:
        async with api.store.write() as connection:
            await record(api.store, "queue.updated", actor=None, at=api.clock(), connection=connection)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    assert await count_rows(api) == before


async def test_entries_past_keep_days_are_swept(api: Api) -> None:
    await record(api.store, "system.old", actor=None, at=api.clock() - timedelta(days=31))
    await record(api.store, "system.recent", actor=None, at=api.clock() - timedelta(days=29))
    keeper = AuditKeeper(api.store, AuditSettings(keep_days=30), clock=api.clock)

    assert await keeper.sweep() == 1

    actions = [i["action"] for i in await entries(api)]
    assert "system.recent" in actions
    assert "system.old" not in actions
    [recent] = by_action(await entries(api), "system.recent")
    assert (recent["actor"], recent["actor_kind"]) == (None, "system")


async def test_a_running_hub_sweeps_old_entries_itself(make_api: MakeApi) -> None:
    first = await make_api("\n[audit]\nkeep_days = 7\n")
    await record(first.store, "system.ancient", actor=None, at=first.clock() - timedelta(days=8))
    second = await make_api("\n[audit]\nkeep_days = 7\n")  # another process starting on the same database
    keepers = (first.app[HUB].audit, second.app[HUB].audit)
    for _ in range(200):  # whichever process's pass comes first deletes it (each sweeps once as it starts)
        if sum(k.swept for k in keepers):
            break
        await asyncio.sleep(0.02)
    assert sum(k.swept for k in keepers) == 1
    assert "system.ancient" not in [i["action"] for i in await entries(second)]


async def test_closing_only_ones_part_is_audited_apart_from_closing_the_conversation(api: Api) -> None:
    alice, bob = await api.agent("alice"), await api.agent("bob")
    conversation_id = await owned_with_guests(api, alice, bob)
    await close(bob, conversation_id, "spam")  # alice goes on with the customer

    [part] = await entries(api, "&action=conversation.part_closed")
    assert (part["actor"], part["target"]) == ("bob", f"conversation:{conversation_id}")
    assert (part["after"]["state"], part["after"]["owner"]) == ("active", alice.id)
    assert await entries(api, "&action=conversation.closed") == []

    await close(alice, conversation_id)
    [closed] = await entries(api, "&action=conversation.closed")
    assert (closed["actor"], closed["after"]["state"]) == ("alice", "closed")
