"""The WebSocket: offers, withdrawals, messages, presence; catch-up after reconnect."""

from __future__ import annotations

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
    await api.customer_writes(sender="+420600000009", text="new customer")
    waiting = await next_event(bob_ws, "conversation.waiting")  # bob hears of his queue, not of alice's chat
    assert waiting["conversation_id"] != conversation_id
    await alice_ws.close()
    await bob_ws.close()


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
