"""PostgreSQL connections are checked on their way out of the pool only after they sat idle a while."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

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
