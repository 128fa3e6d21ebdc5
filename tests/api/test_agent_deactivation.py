"""Deactivating an agent gives back their work in one step: tokens, offers, owned and shared conversations."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType

from hub.api.keys import BUS
from hub.bus import BusEvent
from tests.api.conftest import AgentHandle, Api, MakeApi
from tests.conftest import BASE_CONFIG
from tests.integration.test_agent_commands import run_cli


async def accepted(api: Api, agent: AgentHandle, sender: str = "+420600000001") -> int:
    """A conversation owned by ``agent`` (taken from the waiting list)."""
    conversation_id = await api.customer_writes(sender=sender)
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    return conversation_id


async def timeline(reader: AgentHandle, conversation_id: int) -> list[tuple[str, int | None, dict[str, Any]]]:
    history = await reader.json("GET", f"/api/v1/conversations/{conversation_id}/messages")
    return [(i["kind"], i["agent_id"], i["data"]) for i in history["items"] if i["type"] == "event"]


async def closed_for_deactivation(ws: ClientWebSocketResponse) -> None:
    """Reads the console's events until the socket closes: it must say why, then close with 4001."""
    kinds = []
    while True:
        message = await ws.receive(timeout=10)
        if message.type != WSMsgType.TEXT:
            break
        kinds.append(json.loads(message.data)["kind"])
    assert "agent.deactivated" in kinds
    assert (message.type, message.data) == (WSMsgType.CLOSE, 4001)


def drain(queue: asyncio.Queue[BusEvent]) -> list[BusEvent]:
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


async def test_deactivating_an_owner_requeues_the_conversation_and_the_next_ready_agent_gets_the_offer(
    api: Api,
) -> None:
    root = await api.agent("root", role="admin", queues=())
    alice = await api.agent("alice")
    conversation_id = await accepted(api, alice)
    # move the clock before anyone is ready: a sweep in flight would otherwise make the offer at the old time
    api.clock.advance(60)
    bob = await api.agent("bob", ready=True)
    async with api.app[BUS].subscribe() as bus:
        await root.json("DELETE", f"/api/v1/agents/{alice.id}", status=204)
        published = drain(bus)
    view = await bob.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert (view["state"], view["offered_to"], view["owner"]) == ("offered", bob.id, None)
    assert view["participants"] == []
    assert view["waiting_since"] == api.clock().isoformat()
    assert (await alice.get("/api/v1/me")).status == 401
    assert (await alice.post(f"/api/v1/conversations/{conversation_id}/close", {"status": "resolved"})).status == 401
    kinds = [(kind, agent) for kind, agent, _ in await timeline(root, conversation_id)]
    assert kinds[-2:] == [("transferred", alice.id), ("offered", bob.id)]
    _, _, data = (await timeline(root, conversation_id))[-2]
    assert data == {"to_queue": "support", "from_queue": "support", "reason": "deactivated", "by": root.id}
    # what a transfer to the queue publishes, so the consoles update
    updated = [e for e in published if e.kind == "conversation.updated" and e.conversation_id == conversation_id]
    assert [e.data["action"] for e in updated] == ["transferred"]
    assert updated[0].data["to_queue"] == "support"
    assert alice.id in updated[0].data["audience"]
    assert any(e.kind == "conversation.waiting" and e.conversation_id == conversation_id for e in published)
    assert any(e.kind == "offer" and e.agent_id == bob.id for e in published)
    assert any(e.kind == "agent.presence" and e.agent_id == alice.id for e in published)


async def test_a_pending_offer_is_withdrawn_and_goes_to_the_next_agent(api: Api) -> None:
    root = await api.agent("root", role="admin", queues=())
    alice = await api.agent("alice", ready=True)
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    await api.sweep()
    assert (await bob.json("GET", f"/api/v1/conversations/{conversation_id}"))["offered_to"] == alice.id
    async with api.app[BUS].subscribe() as bus:
        body = await root.json("PUT", f"/api/v1/agents/{alice.id}", {"active": False})
        published = drain(bus)
    assert body["active"] is False
    assert body["presence"]["state"] == "offline"
    assert body["deactivation"]["offers_withdrawn"] == [conversation_id]
    assert (body["deactivation"]["requeued"], body["deactivation"]["handed_over"]) == ([], [])
    assert body["deactivation"]["tokens_revoked"] >= 1  # the login's session and bearer token
    view = await bob.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert (view["state"], view["offered_to"]) == ("waiting", None)
    withdrawn = [e for e in published if e.kind == "offer.withdrawn"]
    assert [(e.conversation_id, e.agent_id, e.data["reason"]) for e in withdrawn] == [
        (conversation_id, alice.id, "deactivated")
    ]
    assert (await alice.post(f"/api/v1/conversations/{conversation_id}/accept")).status == 401
    await bob.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    view = await bob.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert (view["state"], view["offered_to"]) == ("offered", bob.id)
    events = await timeline(root, conversation_id)
    assert ("offer_withdrawn", alice.id, {"reason": "deactivated", "by": root.id}) in events


async def test_a_shared_conversation_passes_to_the_remaining_participant(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)
    root = await api.agent("root", role="admin", queues=())
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    carol = await api.agent("carol", ready=True)
    conversation_id = await accepted(api, alice)
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/invite", {"agent": bob.id})
    async with api.app[BUS].subscribe() as bus:
        body = await root.json("PUT", f"/api/v1/agents/{alice.id}", {"active": False})
        published = drain(bus)
    assert body["deactivation"]["handed_over"] == [{"conversation": conversation_id, "owner": bob.id}]
    assert body["deactivation"]["requeued"] == []
    view = await bob.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert (view["state"], view["owner"]) == ("active", bob.id)
    assert {p["agent_id"]: p["role"] for p in view["participants"]} == {bob.id: "owner"}
    assert view["offered_to"] is None  # carol, ready, is offered nothing
    updated = [e for e in published if e.kind == "conversation.updated"]
    assert [(e.data["action"], e.data["agent_id"], e.data["owner"]) for e in updated] == [("left", alice.id, bob.id)]
    assert ("left", alice.id, {"reason": "deactivated", "by": root.id, "owner": bob.id}) in await timeline(
        root, conversation_id
    )
    # the new owner carries on as usual, and the customer saw nothing of it
    closed = await bob.json("POST", f"/api/v1/conversations/{conversation_id}/close", {"status": "resolved"})
    assert closed["state"] == "closed"
    assert api.adapter.sent == []
    assert carol.id not in [p["agent_id"] for p in closed["participants"]]


async def test_a_deactivated_guest_leaves_and_the_owner_keeps_the_conversation(api: Api) -> None:
    root = await api.agent("root", role="admin", queues=())
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await accepted(api, alice)
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/invite", {"agent": bob.id})
    body = await root.json("PUT", f"/api/v1/agents/{bob.id}", {"active": False})
    assert body["deactivation"]["left"] == [conversation_id]
    view = await alice.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert (view["owner"], [p["agent_id"] for p in view["participants"]]) == (alice.id, [alice.id])


async def test_repeating_the_deactivation_is_harmless(api: Api) -> None:
    root = await api.agent("root", role="admin", queues=())
    alice = await api.agent("alice")
    owned = await accepted(api, alice)
    await root.json("DELETE", f"/api/v1/agents/{alice.id}", status=204)
    before = await root.json("GET", f"/api/v1/conversations/{owned}")
    events_before = await timeline(root, owned)
    await root.json("DELETE", f"/api/v1/agents/{alice.id}", status=204)
    again = await root.json("PUT", f"/api/v1/agents/{alice.id}", {"active": False})
    assert again["deactivation"] == {
        "tokens_revoked": 0,
        "offers_withdrawn": [],
        "requeued": [],
        "handed_over": [],
        "left": [],
    }
    assert (again["active"], again["presence"]["state"]) == (False, "offline")
    assert await root.json("GET", f"/api/v1/conversations/{owned}") == before
    assert await timeline(root, owned) == events_before
    assert (await root.get("/api/v1/agents/999999")).status == 404
    assert (await root.delete("/api/v1/agents/999999")).status == 404


async def test_a_deactivated_agent_is_offered_nothing_and_cannot_be_handed_anything(api: Api) -> None:
    root = await api.agent("root", role="admin", queues=())
    alice = await api.agent("alice", ready=True)
    bob = await api.agent("bob")
    await root.json("DELETE", f"/api/v1/agents/{alice.id}", status=204)
    conversation_id = await api.customer_writes()
    await api.sweep()
    view = await bob.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert (view["state"], view["offered_to"]) == ("waiting", None)
    await bob.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    refused = await bob.post(f"/api/v1/conversations/{conversation_id}/transfer", {"agent": alice.id})
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "unknown_agent"
    refused = await bob.post(f"/api/v1/conversations/{conversation_id}/invite", {"agent": alice.id})
    assert refused.status == 422


async def test_a_take_racing_the_deactivation_never_leaves_an_inactive_owner(api: Api) -> None:
    root = await api.agent("root", role="admin", queues=())
    agents = [await api.agent(f"agent{n}") for n in range(4)]
    for n, agent in enumerate(agents):
        conversation_id = await api.customer_writes(sender=f"+42060000010{n}")
        gone, took = await asyncio.gather(
            root.delete(f"/api/v1/agents/{agent.id}"),
            agent.post(f"/api/v1/conversations/{conversation_id}/take"),
        )
        assert gone.status == 204
        assert took.status in (200, 401, 403), took.status
        view = await root.json("GET", f"/api/v1/conversations/{conversation_id}")
        assert view["owner"] is None
        assert view["state"] == "waiting"
        assert view["participants"] == []


async def test_the_consoles_a_deactivated_agent_has_open_are_closed(api: Api) -> None:
    root = await api.agent("root", role="admin", queues=())
    alice = await api.agent("alice")
    ws = await api.client.ws_connect(f"/api/v1/ws?token={alice.token}")
    assert (await ws.receive_json(timeout=10))["kind"] == "hello"
    await root.json("DELETE", f"/api/v1/agents/{alice.id}", status=204)
    await closed_for_deactivation(ws)
    await ws.close()


async def test_channelhub_agents_deactivate_gives_back_the_work_of_an_agent_while_the_hub_runs(
    api: Api, tmp_path: Path
) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    alone = await accepted(api, alice)
    shared = await accepted(api, alice, sender="+420600000002")
    await alice.json("POST", f"/api/v1/conversations/{shared}/invite", {"agent": bob.id})
    ws = await api.client.ws_connect(f"/api/v1/ws?token={alice.token}")
    assert (await ws.receive_json(timeout=10))["kind"] == "hello"
    config = tmp_path / "cli.toml"
    config.write_text(BASE_CONFIG, encoding="utf-8")
    # in a thread: the hub in this process keeps serving (and holding SQLite's lock in turn) meanwhile
    done = await asyncio.to_thread(run_cli, config, api.settings.database_url, "deactivate", "alice")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"deactivated agent alice (id {alice.id}; sessions and tokens revoked: 2)",  # the login's session and bearer
        f"conversations given back: back to waiting {alone}; handed over {shared} to bob",
    ]
    assert (await alice.get("/api/v1/me")).status == 401
    view = await bob.json("GET", f"/api/v1/conversations/{shared}")
    assert (view["state"], view["owner"]) == ("active", bob.id)
    view = await bob.json("GET", f"/api/v1/conversations/{alone}")
    assert (view["state"], view["owner"], view["participants"]) == ("waiting", None, [])
    _, agent_id, data = (await timeline(bob, alone))[-1]
    assert agent_id == alice.id
    assert data == {"to_queue": "support", "from_queue": "support", "reason": "deactivated"}  # no admin: no "by"
    # the hub picks the logged event up on its next routing tick and closes the agent's console
    await closed_for_deactivation(ws)
    await ws.close()
