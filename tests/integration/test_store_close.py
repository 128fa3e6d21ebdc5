"""Closing the store ends every connection, also those a task still holds when it closes.

Before, ``Store.close()`` closed only the pool's idle connections: one still checked out went back later to a pool
nobody owned and was collected unclosed, which kept its PostgreSQL backend alive until the socket was collected and
made the driver warn from the garbage collector, in whichever test happened to collect it."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.util import await_

from hub.store import Store, StoreClosed, database_unavailable
from tests.conftest import PG_ADMIN_URL


async def _hold_until_cancelled(store: Store, held: asyncio.Event, drivers: list[Any], pid: list[int]) -> None:
    async with store.read() as connection:
        if store.dialect == "postgresql":
            pid.append(int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
        else:
            await connection.execute(text("SELECT 1"))
        drivers.append((await connection.get_raw_connection()).driver_connection)
        held.set()
        await asyncio.Event().wait()


def _closed(driver: Any) -> bool:
    """The driver's own word: asyncpg's ``is_closed()``; aiosqlite drops its sqlite3 connection when closed."""
    return bool(driver.is_closed()) if hasattr(driver, "is_closed") else driver._connection is None


async def _backend_alive(pid: int) -> bool:
    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return bool(await connection.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid))
    finally:
        await connection.close()


def _collect_earlier_leftovers() -> None:
    """What earlier tests of this worker left for the garbage collector goes now, unheard: each test here judges
    only what its own store's close leaves behind."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def test_a_connection_still_held_when_the_store_closes_is_closed_with_it(database_url: str) -> None:
    store = Store(database_url)
    held, drivers, pid = asyncio.Event(), [], []
    holder = asyncio.create_task(_hold_until_cancelled(store, held, drivers, pid))
    await held.wait()
    (driver,) = drivers
    _collect_earlier_leftovers()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await store.close()
        assert _closed(driver)  # closed by the store, not left for the garbage collector
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(30):  # the holder's way out must not wait for a closed connection forever
                await holder
        del holder, drivers, driver
        gc.collect()

    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    if pid:
        # the server's backend is gone too (it notices the closed socket; give it a moment)
        for _ in range(100):
            if not await _backend_alive(pid[0]):
                break
            await asyncio.sleep(0.05)
        assert not await _backend_alive(pid[0])


async def test_a_store_closes_cleanly_when_nothing_is_held(database_url: str) -> None:
    _collect_earlier_leftovers()
    store = Store(database_url)
    async with store.read() as connection:
        await connection.execute(text("SELECT 1"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await store.close()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_a_closed_store_opens_no_connection(database_url: str) -> None:
    """A task still running as the hub stops must not open a connection in a new pool nobody would close: it
    meets StoreClosed, which every caller reads as "the database is unavailable"."""
    store = Store(database_url)
    await store.migrate()
    await store.close()
    _collect_earlier_leftovers()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for opening in (store.read, store.write, store.autocommit):
            with pytest.raises(StoreClosed) as refused:
                async with opening() as connection:
                    await connection.execute(text("SELECT 1"))
            assert database_unavailable(refused.value)
        with pytest.raises(StoreClosed):
            await store.migrate()
        del store
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def _unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def test_a_connection_still_opening_when_the_store_closes_is_closed_and_refused(database_url: str) -> None:
    """A reader that passed the store's own check and was still connecting when the store closed got its
    connection in the fresh pool that ``dispose()`` leaves behind, which nobody closed: the driver warned from the
    garbage collector, in whichever later test happened to collect it. It is refused (StoreClosed) and closed."""
    store = Store(database_url)  # no connection yet: the reader's is the one being opened
    connecting, go_on = asyncio.Event(), asyncio.Event()

    def pause(_dbapi_connection: Any, _record: Any) -> None:
        connecting.set()
        await_(go_on.wait())  # the pool's connect hooks run in SQLAlchemy's greenlet: this waits on the loop

    event.listen(store.reader.sync_engine, "connect", pause, insert=True)

    async def reader() -> None:
        async with store.read() as connection:
            await connection.execute(text("SELECT 1"))

    reading = asyncio.create_task(reader())
    await connecting.wait()
    _collect_earlier_leftovers()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await store.close()
        go_on.set()
        with pytest.raises(StoreClosed):
            await reading
        del reading
        gc.collect()
    assert _unclosed(caught) == []


async def test_a_writer_waiting_for_its_turn_when_the_store_closes_opens_no_connection(sqlite_url: str) -> None:
    """SQLite: a writer queued behind another for the write turn had passed the store's check before it closed,
    and opened a connection nobody would close once its turn came. It meets StoreClosed instead."""
    store = Store(sqlite_url)
    await store.migrate()
    writing, finish = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store.write() as connection:
            await connection.execute(text("SELECT 1"))
            writing.set()
            await finish.wait()

    async def queued() -> None:
        async with store.write() as connection:
            await connection.execute(text("SELECT 1"))

    holder = asyncio.create_task(first())
    await writing.wait()
    waiter = asyncio.create_task(queued())
    for _ in range(10):
        await asyncio.sleep(0)  # the second writer is past the check, queued for the turn
    _collect_earlier_leftovers()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await store.close()
        finish.set()
        await asyncio.gather(holder, return_exceptions=True)  # its connection was closed under it
        with pytest.raises(StoreClosed):
            await waiter
        del holder, waiter
        gc.collect()
    assert _unclosed(caught) == []
