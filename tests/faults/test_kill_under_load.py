"""Kill -9 under load: a real hub takes signed webhooks as fast as it can, is SIGKILLed mid-run and
restarted, and the load generator retries what got no 200, as providers do. Every delivery answered 200
is stored exactly once; none is stored twice.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from hub.store import Store
from hub.store.tables import messages
from tests.conftest import ENGINES, make_database_url
from tests.faults._support import HubProcess, make_hub, messenger_delivery, wait_until

pytestmark = [pytest.mark.slow]

DELIVERIES = 3000  # the whole run's bound in distinct webhooks
CONCURRENCY = 32  # connections of the load generator (providers deliver in parallel)
KILL_AFTER = 600  # acknowledgements before the SIGKILL: the hub is in full stride by then
RETRY_DELAY = 0.2  # seconds a delivery that got no 200 waits before it is sent again
RUN_TIMEOUT = 90.0  # seconds for the whole run, restart included


@pytest.fixture(params=ENGINES)
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database_url(request.param, tmp_path)


async def drive_and_kill(hub: HubProcess, run: str) -> tuple[set[str], int, int]:
    """Send ``DELIVERIES`` messages with ``CONCURRENCY`` connections, SIGKILL the hub after ``KILL_AFTER``
    acknowledgements, restart it, and retry every delivery that got no 200 until all are acknowledged.
    Returns the acknowledged ids, the attempts that got no 200, and the acknowledgements before the kill."""
    queue: deque[int] = deque(range(DELIVERIES))
    acknowledged: set[str] = set()
    refused = 0
    acked_at_kill = -1
    killed = asyncio.Event()
    deadline = time.monotonic() + RUN_TIMEOUT

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal refused
        while len(acknowledged) < DELIVERIES and time.monotonic() < deadline:
            if not queue:
                await asyncio.sleep(0.02)  # the others hold the rest; one may come back for a retry
                continue
            n = queue.popleft()
            mid = f"m_{run}_{n}"
            body, headers = messenger_delivery(mid, n % 200, f"hello {n}")
            try:
                async with session.post(hub.url + "/webhooks/messenger", data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, OSError, TimeoutError):
                ok = False
            if ok:
                acknowledged.add(mid)
                continue
            refused += 1
            await asyncio.sleep(RETRY_DELAY)
            queue.append(n)

    async def killer() -> None:
        nonlocal acked_at_kill
        await wait_until(lambda: len(acknowledged) >= KILL_AFTER, RUN_TIMEOUT, f"{KILL_AFTER} acknowledgements")
        hub.kill()
        acked_at_kill = len(acknowledged)
        killed.set()
        await asyncio.sleep(0.5)  # the generator meets a dead port for a while
        await hub.started()

    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        restart = asyncio.create_task(killer())
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        await asyncio.wait_for(restart, timeout=max(deadline - time.monotonic(), 1))
    assert killed.is_set()
    return acknowledged, refused, acked_at_kill


async def stored_counts(database_url: str, run: str) -> tuple[int, int, int]:
    """(distinct ids of this run stored, rows of this run stored, ids stored more than once)."""
    store = Store(database_url)
    try:
        async with store.read() as connection:
            mine = messages.c.provider_message_id.like(f"m_{run}_%")
            rows = (await connection.execute(select(func.count()).select_from(messages).where(mine))).scalar_one()
            distinct = (
                await connection.execute(select(func.count(func.distinct(messages.c.provider_message_id))).where(mine))
            ).scalar_one()
            repeated = (
                select(messages.c.provider_message_id)
                .where(mine)
                .group_by(messages.c.account_id, messages.c.provider_message_id)
                .having(func.count() > 1)
                .subquery()
            )
            twice = (await connection.execute(select(func.count()).select_from(repeated))).scalar_one()
    finally:
        await store.close()
    return int(distinct), int(rows), int(twice)


async def test_every_acknowledged_webhook_is_stored_exactly_once_across_a_sigkill(
    tmp_path: Path, engine_url: str
) -> None:
    hub = make_hub(tmp_path, engine_url)
    run = os.urandom(4).hex()
    await hub.started()
    try:
        acknowledged, refused, acked_at_kill = await drive_and_kill(hub, run)
    finally:
        hub.stop()
    distinct, rows, twice = await stored_counts(engine_url, run)
    print(
        f"\nkill -9 under load ({engine_url.split(':')[0]}): {DELIVERIES} deliveries, {acked_at_kill} acknowledged "
        f"before the kill, {refused} attempts without a 200 (retried), {len(acknowledged)} acknowledged, "
        f"{distinct} stored, {rows - distinct} duplicated, {hub.starts} starts"
    )
    assert refused > 0, "the kill met no delivery in flight: the test proved nothing"
    assert len(acknowledged) == DELIVERIES
    assert distinct == DELIVERIES  # every acknowledged delivery is stored
    assert rows == distinct
    assert twice == 0
