"""Hand-off actions in process: the store's take, invite, mark important, leave, transfers and close, one after another.

    python bench/actions.py [--conversations 100] [--database-url postgresql://...]

Each conversation goes through eight actions (take, invite, mark important, the owner leaves, transfer to an
agent, transfer to the queue, take, close), each its own transaction, as the API runs them. Reported: wall
time and this process's CPU time per action, against a baseline in the same run: one bare transaction per action
that updates the same conversation row once (the commit and round trips every action pays at least).

The code measured is the tree the script is run from (the current directory comes first on the path), so the
same script compares two trees: ``cd other-tree && python /path/to/bench/actions.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from sqlalchemy import update

from hub.model import Role
from hub.store import Store, routing
from hub.store.agents import create_agent
from hub.store.tables import conversations, identities, queues, statuses

ACTIONS = 8
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def prepare(store: Store, count: int) -> tuple[list[int], int, int]:
    await store.migrate()
    agents = [
        await create_agent(
            store, login=login, password="bench-password", role=Role.AGENT, now=T0, capacity=10**6, queues=["support"]
        )
        for login in ("a", "b")
    ]
    ids = []
    async with store.write() as connection:
        await connection.execute(
            queues.insert().values(id="support", name="Support", number=1, offer_timeout=30, statuses=[])
        )
        await connection.execute(statuses.insert().values(id="resolved", name="Resolved"))
        for n in range(count):
            identity = (
                await connection.execute(
                    identities.insert()
                    .values(account_id="fb", channel="messenger", external_id=f"u{n}", created_at=T0)
                    .returning(identities.c.id)
                )
            ).scalar_one()
            conversation = (
                await connection.execute(
                    conversations.insert()
                    .values(
                        account_id="fb",
                        channel="messenger",
                        identity_id=identity,
                        queue_id="support",
                        state="waiting",
                        waiting_since=T0,
                        opened_at=T0,
                    )
                    .returning(conversations.c.id)
                )
            ).scalar_one()
            ids.append(int(conversation))
    return ids, agents[0].id, agents[1].id


async def hand_offs(store: Store, ids: list[int], a: int, b: int) -> None:
    now = T0
    for cid in ids:
        now += timedelta(seconds=1)
        await routing.take(store, cid, a, now=now)
        await routing.invite(store, cid, a, now=now, agent_id=b)
        await routing.set_important(store, cid, a, None, now=now)
        await routing.leave(store, cid, a, now=now)
        await routing.transfer_to_agent(store, cid, b, a, now=now)
        await routing.transfer_to_queue(store, cid, a, "support", now=now)
        await routing.take(store, cid, b, now=now)
        await routing.close_conversation(store, cid, b, "resolved", now=now)


async def bare(store: Store, ids: list[int]) -> None:
    for cid in ids:
        for _ in range(ACTIONS):
            async with store.write() as connection:
                await connection.execute(
                    update(conversations).where(conversations.c.id == cid).values(version=conversations.c.version + 1)
                )


async def timed(run: Awaitable[None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await run
    return time.perf_counter() - wall, time.process_time() - cpu


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db")
        try:
            ids, a, b = await prepare(store, args.conversations)
            base_wall, base_cpu = await timed(bare(store, ids))
            wall, cpu = await timed(hand_offs(store, ids, a, b))
        finally:
            await store.close()
    n = len(ids) * ACTIONS
    print(f"tree {Path.cwd().name}; engine {store.dialect}; {n} actions")
    print(f"actions  {wall / n * 1000:6.2f} ms wall  {cpu / n * 1000:6.2f} ms CPU per action")
    print(f"bare     {base_wall / n * 1000:6.2f} ms wall  {base_cpu / n * 1000:6.2f} ms CPU per transaction")
    print(f"ratio actions/bare  wall {wall / base_wall:.2f}x  CPU {cpu / base_cpu:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
