"""The database goes away under webhook load, and comes back.

* PostgreSQL: the hub reaches its database through a TCP proxy on loopback that the test cuts (open
  connections reset, new ones refused) and restores, the shared server itself never stopping.
* SQLite: the database lives on a 16 MiB tmpfs that the test fills to the last byte, then frees.

Both ways the hub answers webhooks 503 while it cannot store them (providers retry), ``/readyz`` says
what is wrong where it can tell, the hub recovers by itself, and every delivery answered 200 is stored once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from hub.store import Store
from hub.store.tables import messages
from tests.conftest import make_database_url
from tests.faults._proxy import CuttableProxy
from tests.faults._support import HubProcess, make_hub, messenger_delivery, wait_until
from tests.ports import free_port

pytestmark = [pytest.mark.slow]

CONCURRENCY = 8
RETRY_DELAY = 0.2
OUTAGE = 4.0  # seconds the database stays away


class Deliveries:
    """A provider delivering messages one after another with ``CONCURRENCY`` connections, retrying each
    until it is answered 200; every answer is counted by the phase it came in."""

    def __init__(self, hub: HubProcess, run: str) -> None:
        self.hub = hub
        self.run = run
        self.phase = "before"
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.acknowledged: set[str] = set()
        self.sent = 0
        self.stopping = False
        self.bodies: dict[int, Any] = {}

    async def drive(self, session: aiohttp.ClientSession) -> None:
        async def one(n: int) -> None:
            mid = f"m_{self.run}_{n}"
            while True:
                body, headers = messenger_delivery(mid, n % 50, f"hello {n}")
                phase = self.phase
                try:
                    async with session.post(
                        self.hub.url + "/webhooks/messenger", data=body, headers=headers
                    ) as response:
                        status = response.status
                        if status >= 500:
                            self.bodies.setdefault(status, await response.json(content_type=None))
                except (aiohttp.ClientError, OSError, TimeoutError):
                    status = 0
                self.statuses[(phase, status)] += 1
                if status == 200:
                    self.acknowledged.add(mid)
                    return
                await asyncio.sleep(RETRY_DELAY)

        async def worker(first: int) -> None:
            n = first
            while not self.stopping:
                await one(n)
                n += CONCURRENCY

        await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))


async def readiness(session: aiohttp.ClientSession, hub: HubProcess) -> tuple[int, dict[str, Any]]:
    async with session.get(hub.url + "/readyz") as response:
        return response.status, await response.json()


async def stored(database_url: str, run: str) -> tuple[int, int]:
    """(distinct ids of this run stored, rows of this run stored)."""
    store = Store(database_url)
    try:
        async with store.read() as connection:
            mine = messages.c.provider_message_id.like(f"m_{run}_%")
            rows = (await connection.execute(select(func.count()).select_from(messages).where(mine))).scalar_one()
            distinct = (
                await connection.execute(select(func.count(func.distinct(messages.c.provider_message_id))).where(mine))
            ).scalar_one()
    finally:
        await store.close()
    return int(distinct), int(rows)


async def outage_under_load(
    hub: HubProcess, take_away: Callable[[], Awaitable[None]], bring_back: Callable[[], Awaitable[None]]
) -> tuple[Deliveries, list[tuple[int, dict[str, Any]]]]:
    """Deliveries run; after a second the database is taken away for ``OUTAGE`` seconds, then brought back;
    the deliveries go on until the hub has acknowledged some more. Returns the deliveries and what
    ``/readyz`` answered during the outage."""
    deliveries = Deliveries(hub, os.urandom(4).hex())
    ready_during: list[tuple[int, dict[str, Any]]] = []
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        driving = asyncio.create_task(deliveries.drive(session))
        try:
            await asyncio.sleep(1.0)
            deliveries.phase = "outage"
            await take_away()
            outage_ends = time.monotonic() + OUTAGE
            while time.monotonic() < outage_ends:
                await asyncio.sleep(0.5)
                ready_during.append(await readiness(session, hub))
            deliveries.phase = "after"
            await bring_back()
            recovered = len(deliveries.acknowledged)
            await wait_until(lambda: len(deliveries.acknowledged) >= recovered + 100, 30, "100 more acknowledgements")
            status, body = await readiness(session, hub)
            assert status == 200, body
        finally:
            deliveries.stopping = True
            await asyncio.wait_for(driving, timeout=30)
    return deliveries, ready_during


def report(name: str, deliveries: Deliveries, distinct: int, rows: int) -> None:
    print(
        f"\n{name}: statuses by phase {dict(sorted(deliveries.statuses.items()))}; "
        f"{len(deliveries.acknowledged)} acknowledged, {distinct} stored, {rows - distinct} duplicated; "
        f"5xx bodies {deliveries.bodies}"
    )


def assert_outage_answers(deliveries: Deliveries) -> None:
    during = {status for (phase, status), _ in deliveries.statuses.items() if phase == "outage"}
    assert 503 in during, deliveries.statuses  # the provider is told to retry
    answered = {status for _, status in deliveries.statuses}
    assert answered <= {200, 503}, deliveries.statuses  # no 500, no connection dropped, no hang
    assert deliveries.statuses[("after", 200)] > 0


# ------------------------------------------------------------------------------ PostgreSQL


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    yield from make_database_url("postgres", tmp_path)


@pytest.mark.postgres
async def test_postgres_going_away_is_503_and_the_hub_recovers_by_itself(tmp_path: Path, postgres_url: str) -> None:
    real = make_url(postgres_url)
    proxy = CuttableProxy(real.host or "127.0.0.1", real.port or 5432, free_port())
    await proxy.start()
    through_proxy = real.set(port=proxy.port).render_as_string(hide_password=False)
    hub = make_hub(tmp_path, through_proxy)
    try:
        await hub.started()
        deliveries, ready_during = await outage_under_load(hub, proxy.cut, proxy.restore)
    finally:
        hub.stop()
        await proxy.close()
    distinct, rows = await stored(postgres_url, deliveries.run)
    report("database restart (postgresql)", deliveries, distinct, rows)
    print(f"/readyz during the outage: {ready_during[:2]}")
    assert_outage_answers(deliveries)
    assert ready_during
    assert all(status == 503 for status, _ in ready_during)
    assert all("database unreachable" in body["detail"] for _, body in ready_during)
    assert distinct == len(deliveries.acknowledged)
    assert rows == distinct


# ------------------------------------------------------------------------------ SQLite disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (needs root, which CI has), skipped where it cannot be mounted. 2 MiB is too small:
    SQLite's write-ahead log grows to about 4 MiB between checkpoints, so the disk would stay full."""
    folder = tmp_path / "small"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a size-limited file system")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 16 MiB tmpfs (root needed): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the file system is full; returns it."""
    filler = folder / "filler"
    with suppress(OSError), filler.open("wb", buffering=0) as file:
        while True:
            file.write(b"\0" * 4096)
    return filler


async def test_sqlite_disk_full_is_503_and_the_hub_recovers_when_space_returns(
    tmp_path: Path, small_disk: Path
) -> None:
    database_url = f"sqlite:///{small_disk / 'hub.db'}"
    hub = make_hub(tmp_path, database_url)
    filler = small_disk / "filler"

    async def take_away() -> None:
        await asyncio.to_thread(fill, small_disk)

    async def bring_back() -> None:
        filler.unlink()

    try:
        await hub.started()
        deliveries, ready_during = await outage_under_load(hub, take_away, bring_back)
    finally:
        hub.stop()
    distinct, rows = await stored(database_url, deliveries.run)
    report("disk full (sqlite)", deliveries, distinct, rows)
    print(f"/readyz during the outage: {ready_during[:2]}")
    assert_outage_answers(deliveries)
    assert ready_during
    assert all(status == 503 for status, _ in ready_during)
    assert all(body["detail"].startswith("disk full") for _, body in ready_during)
    assert distinct == len(deliveries.acknowledged)
    assert rows == distinct
