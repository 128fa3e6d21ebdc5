"""Engines from the plain URLs users write, with the durability settings we promise.

``sqlite:///path.db`` becomes aiosqlite (one thread trip per statement, see
``_sqlite_driver``) in WAL mode with ``synchronous=FULL`` and ``BEGIN IMMEDIATE``
transactions; ``postgresql://...`` becomes asyncpg with
PostgreSQL's default ``synchronous_commit=on``. See
docs/decisions/0003-durability-and-group-commit.md.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from hub.store._sqlite_driver import BEGIN_READ, BEGIN_WRITE, OneTripConnection, connect

__all__ = ["async_url", "create_engine", "sync_url"]


def async_url(url: str) -> URL:
    """The async driver URL for what a user wrote."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}")


def sync_url(url: str) -> URL:
    """Plain-driver URL for tools that are synchronous (nothing at run time)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    return parsed.set(drivername="sqlite" if backend == "sqlite" else "postgresql")


DEFAULT_POOL_SIZE = {"sqlite": 10, "postgresql": 20}
"""Connections an engine keeps when ``database.pool_size`` is not set."""


def create_engine(url: str, *, pool_size: int | None = None, echo: bool = False, immediate: bool = True) -> AsyncEngine:
    """``immediate=False`` gives SQLite readers a plain deferred BEGIN."""
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        size = pool_size or DEFAULT_POOL_SIZE["sqlite"]
        return _sqlite_engine(target, echo=echo, immediate=immediate, pool_size=size)
    # A fixed set of connections, the one used last handed out first. An overflow connection (one beyond the pool,
    # closed on its return) costs the server a new backend and the driver a type lookup and a fresh prepare of
    # every statement it runs: with 64 requests at once that was a new connection every few requests, and the
    # accept bench ran at less than half its speed. Most recently used first keeps the writer's hot statements on
    # connections that have them prepared. Requests beyond the pool wait for a connection instead (ADR 0020).
    engine = create_async_engine(
        target,
        pool_size=pool_size or DEFAULT_POOL_SIZE["postgresql"],
        max_overflow=0,
        pool_use_lifo=True,
        echo=echo,
    )
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE = 30.0
"""Seconds a pooled PostgreSQL connection may sit unused before it is checked on its way out of the pool (as
PgBouncer's ``server_check_delay``). SQLAlchemy's ``pool_pre_ping`` checks every checkout: one more round trip
per transaction, which under load waits a turn of a busy event loop (20-60 ms measured with a hundred sends in
flight). A connection in steady use that the server dropped fails its statement instead, and SQLAlchemy then
discards every connection of the pool opened before the failure."""


def _ping_when_idle(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _idle_from_now(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle_long(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return  # new, or used a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            raise DisconnectionError("the server closed an idle connection")  # the pool connects anew


def _sqlite_engine(target: URL, *, echo: bool, immediate: bool, pool_size: int) -> AsyncEngine:
    memory = target.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"echo": echo}
    if memory:
        kwargs["poolclass"] = NullPool
    else:
        # Connections kept, none made for a moment: an overflow connection is a new thread, a file open and four
        # pragmas, thrown away on return, and under more concurrent readers than the pool holds every read made
        # one. Readers beyond the pool wait for a connection instead (SQLite serves them one at a time anyway).
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = 0

    def one_trip_connection() -> OneTripConnection:
        # what SQLAlchemy would pass to aiosqlite.connect, to our connection instead (see _sqlite_driver)
        arguments, options = engine.dialect.create_connect_args(target)
        return connect(*arguments, **{**options, "timeout": 30})

    engine = create_async_engine(target, async_creator=one_trip_connection, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # let SQLAlchemy, not the driver, open transactions (savepoints work)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we say 200
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # writers take the lock up front: no deadlock when a reader later writes
        connection.exec_driver_sql(BEGIN_WRITE if immediate else BEGIN_READ)

    return engine
