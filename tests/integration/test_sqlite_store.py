"""SQLite under the Store: one thread trip per statement (none inside a write transaction), and writers of one
process taking turns."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from hub.store import Store, _sqlite_driver
from hub.store._sqlite_driver import OneTripConnection

queues = Table("scratch", MetaData(), Column("id", String, primary_key=True), Column("name", String))


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}")
    async with store.write() as connection:
        await connection.run_sync(queues.metadata.create_all)
    yield store
    await store.close()


async def test_statements_answer_as_the_driver_would(sqlite_store: Store) -> None:
    async with sqlite_store.write() as connection:
        await connection.execute(insert(queues), [{"id": f"q{n}", "name": f"Queue {n}"} for n in range(3)])
        changed = await connection.execute(update(queues).where(queues.c.id != "q0").values(name="renamed"))
        assert changed.rowcount == 2
        found = (await connection.execute(select(queues.c.id, queues.c.name).order_by(queues.c.id))).all()
        assert [tuple(r) for r in found] == [("q0", "Queue 0"), ("q1", "renamed"), ("q2", "renamed")]
        streamed = await connection.execute(select(queues.c.id).order_by(queues.c.id))
        assert streamed.first() == ("q0",)
        assert (await connection.execute(text("SELECT 1 WHERE 0"))).first() is None
        removed = await connection.execute(delete(queues).where(queues.c.id == "q2"))
        assert removed.rowcount == 1


async def test_errors_and_savepoints_behave_as_before(sqlite_store: Store) -> None:
    async with sqlite_store.write() as connection:
        await connection.execute(insert(queues).values(id="kept", name="Kept"))
        with pytest.raises(IntegrityError):
            async with connection.begin_nested():
                await connection.execute(insert(queues).values(id="kept", name="Twice"))
        await connection.execute(insert(queues).values(id="after", name="After"))
    async with sqlite_store.read() as connection:
        names = (await connection.execute(select(queues.c.name).order_by(queues.c.id))).scalars().all()
    assert names == ["After", "Kept"]


async def test_a_statement_crosses_to_the_connection_thread_once(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = 0
    original = OneTripConnection._execute

    async def counted(self: OneTripConnection, *args: object, **kwargs: object) -> object:
        nonlocal trips
        trips += 1
        return await original(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    async with sqlite_store.read() as connection:
        await connection.execute(text("SELECT 1"))  # the transaction is open
        monkeypatch.setattr(OneTripConnection, "_execute", counted)
        rows = (await connection.execute(select(queues.c.id))).all()
        assert rows == []
        assert trips == 1  # aiosqlite's own cursor took four: open, execute, fetch, close


async def served(store: Store, writers: list[tuple[str, bool]]) -> list[str]:
    """Who got the write turn, in order, when ``writers`` (name, background) ask one after another while a first
    writer holds it; each inserts a row named after itself."""
    order: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with store.write() as connection:
            await connection.execute(insert(queues).values(id="first", name="First"))
            holding.set()
            await release.wait()

    async def writer(name: str, background: bool) -> None:
        async with store.write(background=background) as connection:
            order.append(name)
            await connection.execute(insert(queues).values(id=name, name=name))

    holder = asyncio.create_task(first())
    await holding.wait()
    tasks = []
    for name, background in writers:
        tasks.append(asyncio.create_task(writer(name, background)))
        await asyncio.sleep(0)  # each has asked for its turn before the next is created
    release.set()
    await asyncio.gather(holder, *tasks)
    return order


async def test_writers_of_one_process_take_turns_in_arrival_order(sqlite_store: Store) -> None:
    """No writer of this process sleeps in SQLite's busy handler: they queue, first come first served."""
    names = [f"w{n}" for n in range(8)]
    assert await served(sqlite_store, [(name, False) for name in names]) == names


async def test_a_background_write_gives_way_to_the_writers_waiting(sqlite_store: Store) -> None:
    """The consoles' event log is written in the background: a reply's writers that ask after it go first."""
    order = await served(sqlite_store, [("event log", True), ("ingest", False), ("outbox", False)])
    assert order == ["ingest", "outbox", "event log"]
    async with sqlite_store.read() as connection:
        stored = (await connection.execute(select(queues.c.id).order_by(queues.c.id))).scalars().all()
    assert stored == ["event log", "first", "ingest", "outbox"]


def count_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What crossed to a connection's thread from now on (the function's name, per crossing)."""
    trips: list[str] = []
    original = OneTripConnection._execute

    async def counted(self: OneTripConnection, function: object, *args: object, **kwargs: object) -> object:
        trips.append(getattr(function, "__name__", repr(function)))
        return await original(self, function, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(OneTripConnection, "_execute", counted)
    return trips


async def test_a_write_transaction_crosses_to_the_thread_only_to_commit(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside BEGIN IMMEDIATE ... COMMIT the statements run here (ADR 0016); the commit waits for the disk there."""
    trips = count_trips(monkeypatch)
    async with sqlite_store.write() as connection:
        await connection.execute(insert(queues), [{"id": f"q{n}", "name": f"Queue {n}"} for n in range(3)])
        await connection.execute(update(queues).where(queues.c.id == "q1").values(name="renamed"))
        assert len((await connection.execute(select(queues.c.id))).all()) == 3
        assert trips == []
    assert trips == ["commit"]
    async with sqlite_store.read() as connection:  # a reader's statements still go to the thread
        assert (await connection.execute(select(queues.c.name).where(queues.c.id == "q1"))).scalar() == "renamed"
    assert "_run" in trips


async def test_a_write_lock_held_by_another_process_is_waited_for_on_the_thread(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's writer (here: a plain sqlite3 connection) holds the lock: BEGIN IMMEDIATE goes to the
    connection's thread and waits there, so the event loop keeps running meanwhile."""
    other = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    trips = count_trips(monkeypatch)
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def write() -> None:
        async with sqlite_store.write() as connection:
            await connection.execute(insert(queues).values(id="waited", name="Waited"))

    ticker = asyncio.create_task(ticking())
    writing = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writing.done()  # still waiting for the other writer
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(writing, 10)
    ticker.cancel()
    assert ticks >= 10  # the loop was never blocked by the wait
    assert trips[0] == "execute"  # the waiting BEGIN IMMEDIATE, on the thread
    async with sqlite_store.read() as connection:
        assert (await connection.execute(select(queues.c.name).where(queues.c.id == "waited"))).scalar() == "Waited"


async def test_a_brief_read_runs_here_from_its_begin_to_its_end(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A brief read (ADR 0050) crosses to no thread at all, answers as any read does, and gives its connection
    back to the pool with the busy timeout the engine set."""
    async with sqlite_store.write() as connection:
        await connection.execute(insert(queues).values(id="q1", name="Queue 1"))
    async with sqlite_store.read() as connection:  # the reader's connection is opened (on its thread) first
        await connection.execute(select(queues.c.id))
    trips = count_trips(monkeypatch)
    async with sqlite_store.read(brief=True) as connection:
        assert (await connection.execute(select(queues.c.name).where(queues.c.id == "q1"))).scalar() == "Queue 1"
        assert (await connection.execute(select(queues.c.name).where(queues.c.id == "none"))).first() is None
        driver = (await connection.get_raw_connection()).driver_connection
        assert isinstance(driver, OneTripConnection)
        assert driver.reading_here
    assert trips == []
    assert not driver.reading_here
    assert driver._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    async with sqlite_store.read() as connection:  # a read that is not brief crosses as before
        assert (await connection.execute(select(queues.c.id))).scalars().all() == ["q1"]
    assert len(trips) == 2  # its BEGIN with its statement, then its ROLLBACK
    assert "_begun" in trips[0]


async def test_a_brief_read_that_would_wait_goes_on_on_the_thread(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader of a WAL database is refused with SQLITE_BUSY only while another connection recovers the WAL or
    holds the file in exclusive locking mode, neither of which can start while this store's connections are
    open; so the refusal is injected here, once, on the loop's thread. The statement is asked again on the
    connection's thread, the rest of the read stays there, and the busy timeout is the engine's again."""
    async with sqlite_store.write() as connection:
        await connection.execute(insert(queues).values(id="q1", name="Queue 1"))
    async with sqlite_store.read() as connection:
        await connection.execute(select(queues.c.id))
    loop_thread = threading.get_ident()
    refused: list[str] = []
    original = _sqlite_driver._run

    def busy_once_here(connection: sqlite3.Connection, sql: str, parameters: object) -> object:
        if threading.get_ident() == loop_thread and not refused and sql.startswith("SELECT"):
            refused.append(sql)
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise busy
        return original(connection, sql, parameters)

    monkeypatch.setattr(_sqlite_driver, "_run", busy_once_here)
    trips = count_trips(monkeypatch)
    async with sqlite_store.read(brief=True) as connection:
        assert (await connection.execute(select(queues.c.name).where(queues.c.id == "q1"))).scalar() == "Queue 1"
        driver = (await connection.get_raw_connection()).driver_connection
        assert isinstance(driver, OneTripConnection)
        assert not driver.reading_here
        assert (await connection.execute(select(queues.c.id))).scalars().all() == ["q1"]
    assert len(refused) == 1
    assert trips.count("busy_once_here") == 2  # the refused statement asked again there, and the next one
    assert driver._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
