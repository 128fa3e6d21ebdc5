"""The WebSocket: offers, withdrawals, messages, presence; catch-up after reconnect."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSServerHandshakeError

from tests.api.conftest import AgentHandle, Api


async def next_event(ws: ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next event of ``kind`` (others are skipped); the receive timeout only guards against a hang."""
    while True:
        event = await ws.receive_json(timeout=10)
        if event["kind"] == kind:
            return event


async def connect(api: Api, agent: AgentHandle, since: int | None = None) -> ClientWebSocketResponse:
    query = f"?token={agent.token}" + (f"&since={since}" if since is not None else "")
    ws = await api.client.ws_connect(f"/api/v1/ws{query}")
    hello = await ws.receive_json(timeout=10)
    assert hello["kind"] == "hello"
    return ws


async def test_an_offer_arrives_on_the_agents_websocket_with_what_the_agent_needs(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    ws = await connect(api, alice)
    conversation_id = await api.customer_writes()
    await api.sweep()
    offer = await next_event(ws, "offer")
    assert offer["seq"] > 0
    assert offer["agent_id"] == alice.id
    conversation = offer["data"]["conversation"]
    assert conversation["id"] == conversation_id
    assert conversation["queue_name"] == "Support"
    assert conversation["queue_number"] == 100
    assert conversation["identity"]["display_name"] == "Customer +420600000001"
    assert conversation["waiting_since"]
    assert conversation["offered_at"]
    assert offer["data"]["deadline"] == conversation["offer_deadline"]
    await ws.close()


async def test_a_timed_out_offer_is_withdrawn_and_the_pause_announced(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    ws = await connect(api, alice)
    conversation_id = await api.customer_writes()
    await api.sweep()
    await next_event(ws, "offer")
    api.clock.advance(31)
    await api.sweep()
    seen: dict[str, dict[str, Any]] = {}
    while not {"offer.withdrawn", "agent.presence"} <= set(seen):
        event = await ws.receive_json(timeout=10)
        seen[event["kind"]] = event
    assert seen["offer.withdrawn"]["conversation_id"] == conversation_id
    assert seen["offer.withdrawn"]["data"]["reason"] == "timeout"
    assert seen["agent.presence"]["data"]["agent"]["presence"]["reason"] == "missed offer"
    await ws.close()


async def test_new_messages_reach_the_owner_only(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    alice_ws = await connect(api, alice)
    bob_ws = await connect(api, bob)
    await api.customer_writes(text="are you there?")
    message = await next_event(alice_ws, "message.created")
    assert message["conversation_id"] == conversation_id
    other = await api.customer_writes(sender="+420600000009", text="new customer")
    kinds = []
    while True:  # bob hears of his queue's waiting list, not of alice's chat
        event = await bob_ws.receive_json(timeout=10)
        kinds.append(event["kind"])
        if event["kind"] == "queue.waiting" and other in event["data"]["changed"]:
            break
    assert "message.created" not in kinds
    await alice_ws.close()
    await bob_ws.close()


async def test_waiting_list_changes_reach_the_queue_coalesced(api: Api) -> None:
    """Ten new conversations do not mean ten events on every console of the queue: one update says it all."""
    bob = await api.agent("bob")
    bob_ws = await connect(api, bob)
    first = await next_event(bob_ws, "queue.waiting")  # where the list stands when the console connects
    assert first["data"] == {"queue_id": "support", "waiting": 0, "oldest_waiting_since": None, "changed": []}
    opened = set(await asyncio.gather(*(api.customer_writes(sender=f"+42060000010{n}") for n in range(10))))
    assert len(opened) == 10
    updates = []
    heard: set[int] = set()
    while heard != opened:
        update = await next_event(bob_ws, "queue.waiting")
        updates.append(update)
        heard |= set(update["data"]["changed"])
    assert updates[-1]["data"]["waiting"] == 10
    assert updates[-1]["data"]["oldest_waiting_since"]
    assert all(isinstance(u["seq"], int) for u in updates)  # numbered like any event: replayable
    assert first["seq"] is None  # the snapshot on connect is this console's own
    assert len(updates) < 10
    await bob_ws.close()


async def test_a_console_that_was_away_gets_the_waiting_list_updates_it_missed(api: Api) -> None:
    bob = await api.agent("bob")
    carol = await api.agent("carol")  # stays connected: she sees when the update has been made
    bob_ws = await connect(api, bob)
    carol_ws = await connect(api, carol)
    first = await api.customer_writes(sender="+420600000201")
    update = await next_event(bob_ws, "queue.waiting")
    while first not in update["data"]["changed"]:
        update = await next_event(bob_ws, "queue.waiting")
    await bob_ws.close()
    missed = await api.customer_writes(sender="+420600000202")
    seen = await next_event(carol_ws, "queue.waiting")
    while missed not in seen["data"]["changed"]:
        seen = await next_event(carol_ws, "queue.waiting")
    again = await connect(api, bob, since=update["seq"])
    replayed = await next_event(again, "queue.waiting")
    assert replayed["seq"] == seen["seq"]  # the update bob missed, as carol got it
    assert replayed["data"]["waiting"] == 2
    await again.close()
    await carol_ws.close()


async def test_a_client_reconnecting_with_since_gets_what_it_missed(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    ws = await connect(api, alice)
    conversation_id = await api.customer_writes()
    await api.sweep()
    offer = await next_event(ws, "offer")
    await ws.close()
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    await api.customer_writes(text="one")
    await api.customer_writes(text="two")
    await api.customer_writes(sender="+420600000005", text="someone else")
    again = await connect(api, alice, since=offer["seq"])
    missed: list[dict[str, Any]] = []
    while len(missed) < 3:
        event = await again.receive_json(timeout=10)
        if event["kind"] in ("conversation.updated", "message.created"):
            missed.append(event)
    assert [e["kind"] for e in missed] == ["conversation.updated", "message.created", "message.created"]
    assert all(e["conversation_id"] == conversation_id for e in missed)
    assert missed[0]["seq"] > offer["seq"]
    assert [e["seq"] for e in missed] == sorted(e["seq"] for e in missed)
    await again.close()


async def test_the_websocket_needs_a_token_or_session(api: Api) -> None:
    with pytest.raises(WSServerHandshakeError) as refused:
        await api.client.ws_connect("/api/v1/ws?token=nonsense")
    assert refused.value.status == 401
    await api.agent("alice")
    await api.client.post("/api/v1/auth/login", json={"login": "alice", "password": "correct horse battery"})
    ws = await api.client.ws_connect("/api/v1/ws")  # the session cookie
    assert (await ws.receive_json(timeout=10))["kind"] == "hello"
    await ws.close()


async def test_an_ingested_message_is_in_the_event_log_when_its_webhook_is_acknowledged(api: Api) -> None:
    """The ingest writes the consoles' log rows in its own transaction: acknowledged means replayable."""
    from hub.store.events import read_events

    alice = await api.agent("alice")
    conversation_id = await api.customer_writes()
    ws = await connect(api, alice)
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    # the take's own events come through the notifier; once alice has them, it holds nothing unlogged
    # (while it does, the ingest leaves its events to it, to keep the numbers in order)
    await next_event(ws, "conversation.updated")
    await api.customer_writes(text="is it logged?")
    # nothing has waited for the notifier: the row was committed with the message
    rows = [e for e in await read_events(api.store, after=0) if e.kind == "message.created"]
    assert rows[-1].conversation_id == conversation_id
    assert rows[-1].data["audience"] == [alice.id]
    live = await next_event(ws, "message.created")
    assert live["seq"] == rows[-1].seq  # the live event is that row, not a second copy
    assert "audience" not in live["data"]
    created = [e for e in await read_events(api.store, after=0) if e.kind == "message.created"]
    assert len(created) == 2  # the first message and this one, each logged once
    await ws.close()


async def test_if_the_ingest_cannot_log_events_the_messages_still_commit_and_reach_the_consoles(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub import notifier as ws_module

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("views unavailable")

    alice = await api.agent("alice")
    conversation_id = await api.customer_writes()
    ws = await connect(api, alice)
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    await next_event(ws, "conversation.updated")  # the notifier holds nothing unlogged (see above)
    original = ws_module._rows
    calls = 0

    async def fails_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await broken()
        return await original(*args, **kwargs)

    monkeypatch.setattr(ws_module, "_rows", fails_once)
    await api.customer_writes(text="still stored")
    live = await next_event(ws, "message.created")  # logged by the notifier instead, after the commit
    assert live["conversation_id"] == conversation_id
    assert live["seq"] > 0
    assert calls == 2
    await ws.close()
