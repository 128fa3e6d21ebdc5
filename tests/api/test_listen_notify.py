"""Several hubs on one PostgreSQL database: an event one logs reaches the others' consoles through
LISTEN/NOTIFY, not the routing tick (set to an hour here, so polling cannot be what delivered it)."""

from __future__ import annotations

import asyncio

import pytest

from hub.api.keys import NOTIFIER
from tests.api.conftest import MakeApi
from tests.api.test_ws import connect, next_event

SLOW_TICK = """
[routing]
tick_seconds = 3600
"""

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def _listening(api: object) -> None:
    """Until the hub's listener has connected (it starts beside the hub; this only guards against a hang)."""
    notifier = api.app[NOTIFIER]  # type: ignore[attr-defined]
    for _ in range(200):
        if notifier._listener is not None and notifier._listener.connected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the event-log listener never connected")


async def test_an_offer_made_by_one_hub_reaches_an_agent_connected_to_another(make_api: MakeApi) -> None:
    a = await make_api(SLOW_TICK)
    b = await make_api(SLOW_TICK)
    await _listening(b)
    alice = await b.agent("alice", ready=True)  # logged in, and listening, on hub B
    ws = await connect(b, alice)
    conversation_id = await a.customer_writes()  # the webhook lands on hub A, whose router offers it
    offer = await next_event(ws, "offer")
    assert offer["agent_id"] == alice.id
    assert offer["data"]["conversation"]["id"] == conversation_id
    # accepted on B: A's consoles hear of it the same way
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    await ws.close()


async def test_a_hub_ignores_the_notifications_of_its_own_writes(make_api: MakeApi) -> None:
    a = await make_api(SLOW_TICK)
    await _listening(a)
    notifier = a.app[NOTIFIER]
    alice = await a.agent("alice", ready=True)
    ws = await connect(a, alice)
    await a.customer_writes()
    await next_event(ws, "offer")
    # PostgreSQL announced its rows, and the hub knew them for its own: handed out as published, not read again
    assert notifier._listener is not None
    assert notifier._listener.own_skipped > 0
    assert notifier._announced is None
    await ws.close()
