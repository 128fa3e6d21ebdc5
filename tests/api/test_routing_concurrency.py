"""Several sweepers (tasks, or hub processes with their own connection pools) on one database."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from hub.store import Store
from hub.store.offers import sweep
from hub.store.tables import conversations, timeline_events
from tests.api.conftest import Api


async def test_concurrent_sweeps_never_double_offer_nor_exceed_capacity(api: Api) -> None:
    agents = [await api.agent(f"agent{n}", ready=True, capacity=2) for n in range(3)]
    api.clock.advance(1)
    for n in range(10):
        await api.customer_writes(sender=f"+4207000000{n:02d}")
    stores = [Store(api.settings.database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(sweep(s, clock=api.clock) for s in stores for _ in range(2)))
        await api.sweep()
    finally:
        for s in stores:
            await s.close()
    offered = [pair for result in results for pair in result.offered]
    async with api.store.read() as connection:
        rows = (await connection.execute(select(conversations.c.id, conversations.c.offered_agent_id))).all()
        offer_events = (
            (
                await connection.execute(
                    select(timeline_events.c.conversation_id).where(timeline_events.c.kind == "offered")
                )
            )
            .scalars()
            .all()
        )
    per_agent = Counter(r.offered_agent_id for r in rows if r.offered_agent_id is not None)
    assert sum(per_agent.values()) == 6  # three agents with capacity two
    assert all(count == 2 for count in per_agent.values())
    assert set(per_agent) == {a.id for a in agents}
    assert max(Counter(offer_events).values()) == 1  # no conversation offered twice
    assert len(offered) == len(set(offered))


async def test_conversations_are_offered_in_order_of_waiting_time(api: Api) -> None:
    first = await api.customer_writes(sender="+420700000001")
    api.clock.advance(1)
    second = await api.customer_writes(sender="+420700000002")
    api.clock.advance(1)
    await api.agent("alice", ready=True, capacity=1)
    async with api.store.read() as connection:
        offered = dict(
            tuple(r) for r in await connection.execute(select(conversations.c.id, conversations.c.offered_agent_id))
        )
    assert offered[first] is not None
    assert offered[second] is None
