"""The use cases called directly, as a bot or the CLI would call them: no HTTP for the action itself.

The hub around them is the API tests' running hub (real store on SQLite and PostgreSQL, router,
outbox); its parts are handed over as ``hub.api._hub.parts_of`` hands them to the routes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hub.agent_commands import deactivate
from hub.api._hub import parts_of
from hub.api.keys import BUS
from hub.bus import BusEvent, EventBus
from hub.errors import Conflict, Forbidden, Invalid, NotFound, PolicyRefusal, Refusal
from hub.events import QueueChanged, unwrapped
from hub.model import Queue, Role, Status
from hub.store.agents import find_agent_by_login
from hub.store.routing import RoutingRefused
from hub.usecases import ActorKind, HubParts, Principal, queues
from hub.usecases.agents import NewAgent, create_agent, deactivate_agent
from hub.usecases.conversations import Target, close, take_over, transfer
from hub.usecases.outbound import Send, reply, send_new
from tests.api.conftest import Api

DAY = 24 * 3600


async def principal(api: Api, login: str) -> Principal:
    found = await find_agent_by_login(api.store, login)
    assert found is not None
    return Principal.of_agent(found[0])


def drain(queue: asyncio.Queue[BusEvent]) -> list[BusEvent]:
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


async def taken(api: Api, hub: HubParts, actor: Principal, sender: str = "+420600000001") -> int:
    conversation_id = await api.customer_writes(sender=sender)
    await take_over(hub, actor, conversation_id)
    return conversation_id


async def test_a_reply_is_queued_and_published_for_the_actor_who_took_the_conversation(api: Api) -> None:
    await api.agent("alice")
    hub = parts_of(api.app)
    alice = await principal(api, "alice")
    conversation_id = await taken(api, hub, alice)
    async with api.app[BUS].subscribe() as bus:
        replied = await reply(hub, alice, conversation_id, Send(text="hello from the desk"))
        published = drain(bus)
    assert (replied.message.conversation_id, replied.message.agent_id) == (conversation_id, alice.id)
    assert replied.message.text == "hello from the desk"
    assert replied.plan["decision"]["basis"] == "window"
    assert [e.kind for e in published] == [e.kind for e in replied.events]
    assert "message.created" in [e.kind for e in published]


async def test_reply_refusals_carry_their_code_and_nothing_is_queued(api: Api) -> None:
    await api.agent("alice")
    await api.agent("bob", queues=("sales",))
    hub = parts_of(api.app)
    alice, bob = await principal(api, "alice"), await principal(api, "bob")
    conversation_id = await taken(api, hub, alice)
    with pytest.raises(NotFound) as missing:
        await reply(hub, alice, conversation_id + 1000, Send(text="hi"))
    assert (missing.value.code, missing.value.message) == ("not_found", f"no conversation {conversation_id + 1000}")
    with pytest.raises(Forbidden) as stranger:
        await reply(hub, bob, conversation_id, Send(text="hi"))
    assert stranger.value.code == "forbidden"
    api.clock.advance(DAY + 1)
    with pytest.raises(PolicyRefusal) as late:
        await reply(hub, alice, conversation_id, Send(text="hello?"))
    assert (late.value.kind, late.value.code, late.value.rule) == ("invalid", "window_closed", "window_closed")
    assert late.value.window_closed_at is not None
    assert late.value.fields["window_closed_at"] == late.value.window_closed_at.isoformat()
    await close(hub, alice, conversation_id, "resolved")
    await api.agent("sup", role="supervisor")
    with pytest.raises(Conflict) as closed:  # a supervisor may act on it, but it is closed
        await reply(hub, await principal(api, "sup"), conversation_id, Send(text="one more thing"))
    assert closed.value.code == "conversation_closed"


async def test_a_new_message_to_a_customer_with_someone_elses_open_conversation_is_refused_with_its_id(
    api: Api,
) -> None:
    await api.agent("alice")
    await api.agent("bob")
    hub = parts_of(api.app)
    alice, bob = await principal(api, "alice"), await principal(api, "bob")
    conversation_id = await taken(api, hub, alice)
    found = await find_identity(api, conversation_id)
    with pytest.raises(Conflict) as taken_already:
        await send_new(hub, bob, found, Send(text="hi"))
    assert taken_already.value.code == "conversation_taken"
    assert dict(taken_already.value.fields) == {"conversation_id": conversation_id}
    sent = await send_new(hub, alice, found, Send(text="closing note"), close=True, status="resolved")
    assert (sent.closed, sent.conversation.id, sent.conversation.state.value) == (True, conversation_id, "closed")
    assert any(e.kind == "conversation.updated" and e.data.get("action") == "closed" for e in sent.events)


async def find_identity(api: Api, conversation_id: int) -> int:
    from hub.store.conversations import get_conversation

    found = await get_conversation(api.store, conversation_id)
    assert found is not None
    return found.conversation.identity_id


async def test_hand_off_refusals_from_the_routing_store_join_the_refusal_family(api: Api) -> None:
    await api.agent("alice")
    hub = parts_of(api.app)
    alice = await principal(api, "alice")
    conversation_id = await taken(api, hub, alice)
    with pytest.raises(Invalid) as self_transfer:
        await transfer(hub, alice, conversation_id, Target(agent=alice.id))
    assert (self_transfer.value.kind, self_transfer.value.code) == ("invalid", "transfer_to_self")
    with pytest.raises(Invalid) as unknown:
        await transfer(hub, alice, conversation_id, Target(agent="nobody"))
    assert (unknown.value.code, unknown.value.fields) == ("unknown_agent", {"field": "agent"})
    with pytest.raises(Invalid) as wrong_status:
        await close(hub, alice, conversation_id, "no-such-status")
    assert wrong_status.value.code == "status_not_allowed"
    changed = await close(hub, alice, conversation_id, "resolved")
    assert (changed.view["state"], changed.view["status"]) == ("closed", "resolved")
    assert changed.events, "a close publishes what changed"
    await api.agent("sup", role="supervisor")
    with pytest.raises(Conflict) as again:  # the routing store's "conflict" kind
        await close(hub, await principal(api, "sup"), conversation_id, "resolved")
    assert again.value.code == "conversation_closed"


def test_routing_kinds_map_onto_the_family() -> None:
    for kind, cls in (("not_found", NotFound), ("forbidden", Forbidden), ("conflict", Conflict), ("invalid", Invalid)):
        refusal = RoutingRefused(kind, f"{kind}_code", "a sentence")
        joined = Refusal.of_kind(refusal.kind, refusal.code, refusal.message)
        assert type(joined) is cls
        assert (joined.kind, joined.code, joined.message) == (kind, f"{kind}_code", "a sentence")


def test_an_operator_has_an_admins_rights_but_takes_no_part_in_conversations() -> None:
    operator = Principal.operator()
    assert (operator.kind, operator.role, operator.id, operator.supervises) == (
        ActorKind.OPERATOR,
        Role.ADMIN,
        None,
        True,
    )
    with pytest.raises(ValueError, match="operator"):
        operator.agent_id()


async def test_only_an_admin_deactivates_and_nobody_deactivates_themselves(api: Api) -> None:
    await api.agent("root", role="admin", queues=())
    await api.agent("sup", role="supervisor")
    await api.agent("alice")
    hub = parts_of(api.app)
    root, sup, alice = await principal(api, "root"), await principal(api, "sup"), await principal(api, "alice")
    with pytest.raises(Forbidden) as not_admin:
        await deactivate_agent(hub, sup, alice.agent_id())
    assert (not_admin.value.code, not_admin.value.message) == ("forbidden", "this needs the role admin")
    with pytest.raises(Forbidden) as themselves:
        await deactivate_agent(hub, root, root.agent_id())
    assert themselves.value.code == "own_account"
    with pytest.raises(NotFound):
        await deactivate_agent(hub, root, 999_999)


def shape(events: list[BusEvent], agent_id: int, conversation_id: int) -> list[tuple[Any, ...]]:
    """The events with the agent's and the conversation's ids replaced, and without who asked (``by``)."""

    def plain(value: Any) -> Any:
        if value == agent_id:
            return "AGENT"
        if value == conversation_id:
            return "CONVERSATION"
        if isinstance(value, dict) and value.get("id") == agent_id:
            return "AGENT"  # the agent's JSON
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    events = [unwrapped(e) for e in events]
    return [
        (
            e.kind,
            plain(e.conversation_id),
            plain(e.agent_id),
            e.queue_id,
            {k: plain(v) for k, v in e.data.items() if k != "by"},
        )
        for e in events
    ]


async def test_the_cli_and_the_api_publish_the_same_events_for_a_deactivation(api: Api, tmp_path: Path) -> None:
    root = await api.agent("root", role="admin", queues=())
    await api.agent("alice")
    await api.agent("carol")
    hub = parts_of(api.app)
    alice, carol = await principal(api, "alice"), await principal(api, "carol")
    alices = await taken(api, hub, alice, sender="+420600000001")
    carols = await taken(api, hub, carol, sender="+420600000002")
    async with api.app[BUS].subscribe() as bus:
        await root.json("DELETE", f"/api/v1/agents/{alice.id}", status=204)
        by_api = [e for e in drain(bus) if e.kind != "offer"]
    cli_bus = EventBus()
    async with cli_bus.subscribe() as seen:
        done = await deactivate(api.settings, "carol", bus=cli_bus)
        by_cli = drain(seen)
    assert by_cli == done.events
    assert shape(by_api, alice.agent_id(), alices) == shape(by_cli, carol.agent_id(), carols)
    kinds = [e.kind for e in by_cli]
    assert {"conversation.updated", "agent.presence", "agent.deactivated"} <= set(kinds)


async def test_templates_are_saved_and_restored_by_an_admin_only_and_a_bad_one_is_refused_with_its_line(
    api: Api,
) -> None:
    from hub.templates import TemplateDraft
    from hub.usecases import templates

    await api.agent("root", role="admin", queues=())
    await api.agent("alice")
    hub = parts_of(api.app)
    root, alice = await principal(api, "root"), await principal(api, "alice")
    first = TemplateDraft(name="hello", body="Hi {{ name }}!", variables={"name": "Ann"})
    with pytest.raises(Forbidden):
        await templates.create(hub, alice, first)
    created = await templates.create(hub, root, first)
    assert (created.version, created.created_by) == (1, root.id)
    with pytest.raises(Conflict) as exists:
        await templates.create(hub, root, first)
    assert exists.value.code == "template_exists"
    with pytest.raises(templates.TemplateRefused) as bad:
        await templates.save(hub, root, TemplateDraft(name="hello", body="Hi {{ nobody }}", variables={"name": "A"}))
    assert (bad.value.kind, bad.value.fields["line"]) == ("invalid", 1)
    second = await templates.save(
        hub, root, TemplateDraft(name="hello", body="Hello {{ name }}", variables=first.variables)
    )
    assert second.version == 2
    restored = await templates.restore(hub, root, "hello", 1)
    assert (restored.version, restored.body) == (3, first.body)
    with pytest.raises(NotFound):
        await templates.restore(hub, root, "hello", 9)


async def test_pairing_and_a_ticket_assignment_go_through_use_cases_and_the_assignment_is_published(
    api: Api,
) -> None:
    from hub.usecases import contacts, tickets

    await api.agent("alice")
    hub = parts_of(api.app)
    alice = await principal(api, "alice")
    conversation_id = await taken(api, hub, alice)
    identity_id = await find_identity(api, conversation_id)
    with pytest.raises(Invalid) as unknown:
        await contacts.pair(hub, alice, identity_id, 999_999)
    assert (unknown.value.code, unknown.value.fields) == ("unknown_contact", {"field": "contact"})
    paired = await contacts.new_contact_for(hub, alice, identity_id, {"name": "Ann Example"})
    assert paired["contact"] is not None
    assert (await contacts.unpair(hub, alice, identity_id))["contact"] is None
    with pytest.raises(NotFound):
        await contacts.unpair(hub, alice, 999_999)
    ticket = await tickets.create(hub, alice, {"title": "Broken order"})
    async with api.app[BUS].subscribe() as bus:
        assigned = await tickets.assign(hub, alice, conversation_id, ticket["id"])
        published = drain(bus)
    assert published == [assigned.event]
    assert (assigned.event.kind, assigned.event.data["ticket"], assigned.event.data["by"]) == (
        "conversation.ticket",
        ticket["id"],
        alice.id,
    )


async def test_queues_statuses_and_new_agents_are_changed_through_use_cases_that_refuse_with_their_code(
    api: Api,
) -> None:
    await api.agent("root", role="admin", queues=())
    await api.agent("sup", role="supervisor")
    hub = parts_of(api.app)
    root, sup = await principal(api, "root"), await principal(api, "sup")
    vip = Queue(id="vip", name="VIP", number=77, offer_timeout=30, statuses=("won",))
    with pytest.raises(Invalid) as no_status:
        await queues.create_queue(hub, root, vip)
    assert (no_status.value.code, no_status.value.message, no_status.value.fields) == (
        "unknown_status",
        "unknown status 'won'",
        {"field": "statuses"},
    )
    with pytest.raises(Forbidden):
        await queues.create_status(hub, sup, Status(id="won", name="Won"))
    await queues.create_status(hub, root, Status(id="won", name="Won"))
    async with api.app[BUS].subscribe() as bus:
        await queues.create_queue(hub, root, vip)
        await queues.set_members(hub, sup, "vip", [sup.agent_id()])  # supervisors may set who is in a queue
        with pytest.raises(Forbidden):
            await queues.update_queue(hub, sup, "vip", {"name": "Very"})
        await queues.update_queue(hub, root, "vip", {"name": "Very"})
        published = [unwrapped(e) for e in drain(bus)]
    changes = [(e.queue_id, e.action) for e in published if isinstance(e, QueueChanged)]
    assert changes == [("vip", "created"), ("vip", "members"), ("vip", "updated")]
    with pytest.raises(Conflict) as in_use:
        await queues.delete_status(hub, root, "won")
    assert in_use.value.code == "status_in_use"
    with pytest.raises(NotFound):
        await queues.delete_queue(hub, root, "nowhere")
    with pytest.raises(Invalid) as unknown_queue:
        await create_agent(hub, root, NewAgent(login="carol", password="long enough", queues=("nowhere",)))
    assert unknown_queue.value.code == "unknown_queue"
    carol = await create_agent(hub, root, NewAgent(login="carol", password="long enough", queues=("vip",)))
    assert (carol.login, carol.queues) == ("carol", ("vip",))
    with pytest.raises(Conflict) as taken_login:
        await create_agent(hub, root, NewAgent(login="carol", password="long enough"))
    assert taken_login.value.code == "agent_exists"


async def test_contacts_are_created_edited_and_deleted_through_use_cases_audited_by_field_names(api: Api) -> None:
    from hub.store.audit import AuditFilter, list_entries
    from hub.usecases import contacts

    await api.agent("alice")
    await api.agent("sup", role="supervisor")
    hub = parts_of(api.app)
    alice, sup = await principal(api, "alice"), await principal(api, "sup")
    created = await contacts.create(hub, alice, {"name": "Ann Example", "phone": "+420600000009"})
    edited = await contacts.update(hub, alice, created.id, {"company": "Example Ltd"})
    assert (edited.name, edited.company) == ("Ann Example", "Example Ltd")
    with pytest.raises(NotFound):
        await contacts.update(hub, alice, 999_999, {"company": "nobody"})
    with pytest.raises(Forbidden):
        await contacts.delete(hub, alice, created.id)  # agents edit contacts; deleting one is supervision
    await contacts.delete(hub, sup, created.id)
    with pytest.raises(NotFound):
        await contacts.delete(hub, sup, created.id)
    entries = await list_entries(api.store, AuditFilter(action="contact."), limit=10)
    assert [(e.action, e.after) for e in reversed(entries)] == [
        ("contact.created", {"fields": ["name", "phone"]}),  # the names, never the customer's values
        ("contact.updated", {"fields": ["company"]}),
        ("contact.deleted", None),
    ]


async def test_an_agent_who_pauses_through_the_use_case_is_audited_told_and_has_a_default_reason(api: Api) -> None:
    from hub.events import AgentPresence
    from hub.model import Presence
    from hub.usecases.presence import DEFAULT_PAUSE_REASON, set_my_presence

    await api.agent("alice")
    hub = parts_of(api.app)
    alice = await principal(api, "alice")
    async with api.app[BUS].subscribe() as bus:
        paused = await set_my_presence(hub, alice, Presence.PAUSED)
        published = [unwrapped(e) for e in drain(bus)]
    assert paused is not None
    assert (paused.presence, paused.pause_reason, paused.pause_paid) == (Presence.PAUSED, DEFAULT_PAUSE_REASON, True)
    assert AgentPresence(agent_id=alice.id) in published
    with pytest.raises(Forbidden):
        await set_my_presence(hub, Principal.operator(), Presence.READY)  # only an agent has a presence
