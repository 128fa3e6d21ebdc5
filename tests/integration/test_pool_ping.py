"""The PostgreSQL pool: a fixed set of connections, the one used last handed out first, each checked on its way out
of the pool only after it sat idle a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import Store
from hub.store import engine as engine_module
from tests.conftest import make_database_url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    yield from make_database_url("postgres", tmp_path)


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[Store]:
    store = Store(postgres_url)
    yield store
    await store.close()


async def _terminate(url: str, pid: int) -> None:
    """End a session from outside the pool, as a server restart or an idle timeout would."""
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()


async def _backend_pid(store: Store) -> int:
    async with store.write() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_used_a_moment_ago_is_not_pinged(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[object] = []
    dialect = pg_store.writer.sync_engine.dialect
    original = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda dbapi_connection: pings.append(1) or original(dbapi_connection))
    first = await _backend_pid(pg_store)
    for _ in range(5):
        assert await _backend_pid(pg_store) == first  # the same pooled connection, every time
    assert pings == []


async def test_a_connection_the_server_dropped_while_idle_is_replaced_unseen(
    pg_store: Store, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = await _backend_pid(pg_store)
    await _terminate(postgres_url, dropped)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 0.0)  # it has now sat idle long enough

    assert await _backend_pid(pg_store) != dropped  # no error reached the caller: a new connection


async def test_without_the_ping_a_dropped_connection_fails_once_then_the_pool_recovers(
    pg_store: Store, postgres_url: str
) -> None:
    """What a connection in steady use that the server dropped costs: its statement fails (nothing was
    acknowledged), and the pool's connections are replaced for the next caller."""
    dropped = await _backend_pid(pg_store)
    await _terminate(postgres_url, dropped)
    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(pg_store)
    assert failed.value.connection_invalidated
    assert await _backend_pid(pg_store) != dropped


async def test_a_burst_beyond_the_pool_waits_for_its_connections_and_opens_none(postgres_url: str) -> None:
    """Six transactions at once on a pool of two: the two connections serve them all, one after another, instead of
    four connections opened for one transaction each and closed on return (each a new server backend, and a fresh
    prepare of every statement it runs)."""
    store = Store(postgres_url, pool_size=2)
    opened: list[object] = []
    event.listen(store.writer.sync_engine.pool, "connect", lambda *_: opened.append(1))
    release = asyncio.Event()

    async def hold() -> int:
        async with store.write() as connection:
            pid = int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await release.wait()
            return pid

    try:
        holders = [asyncio.create_task(hold()) for _ in range(6)]
        await asyncio.sleep(0.2)
        assert len(opened) == 2  # the other four wait for a connection
        release.set()
        pids = await asyncio.gather(*holders)
        assert len(set(pids)) == 2
        assert len(opened) == 2
    finally:
        await store.close()


async def test_the_connection_used_last_is_handed_out_first(pg_store: Store) -> None:
    """Its statements are prepared already; the pool's other connections age out of use."""

    async def pid(connection: AsyncConnection) -> int:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    async with pg_store.write() as outer:
        async with pg_store.write() as inner:
            returned_first = await pid(inner)
        returned_last = await pid(outer)
    assert returned_first != returned_last
    assert await _backend_pid(pg_store) == returned_last
