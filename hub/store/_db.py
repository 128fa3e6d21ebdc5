"""The Store: engines, transactions, and small SQL helpers shared by store modules."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import ARRAY, JSON, Table, any_, bindparam, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.store._sqlite_driver import OneTripConnection
from hub.store._write_turns import WriteTurns
from hub.store.engine import create_engine
from hub.store.migrate import current_revision, head_revision, upgrade

__all__ = [
    "DIALECTS",
    "Store",
    "StoreClosed",
    "database_unavailable",
    "in_json_array",
    "lost_to_a_concurrent_change",
    "one_of",
    "upsert",
]


class StoreClosed(ConnectionError):
    """The store was closed: no connection is opened any more. A task still running as the hub stops meets this
    (an ``OSError``, so it is "the database is unavailable" to every caller) instead of opening a connection in
    a new pool that nobody would close."""


class Store:
    """Owns the database engines.

    ``write()`` opens a transaction that takes the write lock at once (SQLite:
    ``BEGIN IMMEDIATE``); ``read()`` opens one that never writes, so readers do
    not queue behind the writer on SQLite. On PostgreSQL both share one pool.

    SQLite has one writer. Left to themselves, this process's writers (ingest,
    notifier, router, outbox) would meet at ``BEGIN IMMEDIATE`` and all but one
    would sleep in SQLite's busy handler, which backs off in steps of up to
    100 ms whether or not the lock is free by then. So on SQLite ``write()``
    first queues for the process's write turn (first come, first served, but a
    background write gives way: ``WriteTurns``); the busy handler is left for
    writers in other processes.
    """

    def __init__(self, url: str, *, pool_size: int | None = None) -> None:
        self.url = url
        self.writer: AsyncEngine = create_engine(url, pool_size=pool_size)
        self.dialect = self.writer.dialect.name
        self._write_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WriteTurns] | None = None
        if self.dialect == "sqlite":
            self.reader: AsyncEngine = create_engine(url, pool_size=pool_size, immediate=False)
            self._write_turns = weakref.WeakKeyDictionary()
        else:
            self.reader = self.writer
        # the server pids of this store's own connections: a LISTEN for event-log rows skips what they wrote
        self.backend_pids: set[int] = set()
        if self.dialect == "postgresql":
            _remember_backend_pids(self.writer, self.backend_pids)
        self._lent = [_lent_connections(engine) for engine in {self.writer, self.reader}]
        self._closed = False
        for engine in {self.writer, self.reader}:
            _refuse_once_closed(engine, self)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    @asynccontextmanager
    async def write(self, *, background: bool = False) -> AsyncIterator[AsyncConnection]:
        """A write transaction. ``background``: nothing on its way waits for it (the consoles' event log); on
        SQLite it gives way to the other writers waiting for the write turn, for a moment at most (ADR 0051).
        PostgreSQL has no write turn: there it is an ordinary write."""
        self._check_open()
        if self._write_turns is None:
            async with self.writer.begin() as connection:
                yield connection
            return
        async with self._write_turn().turn(background=background):
            self._check_open()  # the store may have closed while this writer waited for its turn
            async with self.writer.begin() as connection:
                yield connection

    def _write_turn(self) -> WriteTurns:
        # one per event loop: a Store may outlive the loop it was first used on (CLI, tests)
        loop = asyncio.get_running_loop()
        assert self._write_turns is not None
        turns = self._write_turns.get(loop)
        if turns is None:
            turns = self._write_turns[loop] = WriteTurns()
        return turns

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose every statement commits on its own: for a write that is one statement, atomic
        by itself. On PostgreSQL that saves the transaction's ``BEGIN`` and ``COMMIT`` round trips. SQLite:
        the same write lock turn as ``write()``."""
        self._check_open()
        if self._write_turns is not None:
            async with self.write() as connection:
                yield connection
            return
        async with self.writer.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def read(self, *, brief: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read transaction. ``brief``: a few statements by key, on the way of something waited for (a bot's
        turn); on SQLite they run on the event loop's thread instead of crossing to the connection's, as a write
        transaction's do (ADR 0050). A read that may be long (a report, a list, a search) is never brief: it
        would hold the loop for its whole length.

        On PostgreSQL a brief read runs without ``BEGIN`` and ``ROLLBACK``, two round trips of three for a read
        of one statement (ADR 0052). Read committed, the hub's isolation, gives each statement its own snapshot
        inside a transaction as well, so its statements see what they would have seen in one; a read that needs
        the transaction (``set_config`` with ``is_local``) is not brief."""
        self._check_open()
        async with self.reader.connect() as connection:
            if brief and self.dialect == "sqlite":
                driver = (await connection.get_raw_connection()).driver_connection
                assert isinstance(driver, OneTripConnection)
                driver.read_here()
            elif brief:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    async def migrate(self) -> None:
        self._check_open()
        await upgrade(self.writer)

    async def is_ready(self) -> tuple[bool, str]:
        """Database reachable and migrations current (for /readyz)."""
        try:
            async with self.read() as connection:
                await connection.execute(text("SELECT 1"))
            current = await current_revision(self.writer)
        except Exception as exc:  # readiness reports any failure, it never raises
            return False, f"database unreachable: {type(exc).__name__}"
        head = head_revision()
        if current != head:
            return False, f"migrations not current: at {current}, head is {head}"
        if self.dialect == "sqlite" and (full := _sqlite_disk_full(self.url)):
            return False, full
        return True, "ok"

    async def close(self) -> None:
        """Close every connection, including those a task still holds.

        ``dispose()`` closes only the connections in the pool. One still checked out (a task cancelled after
        this, say) would go back to a pool nobody owns and be collected unclosed: the server keeps its backend
        until the socket is gone, and the driver warns from the garbage collector. Those are ended here; their
        holder gets an error on its next statement.

        PostgreSQL: ``terminate()`` drops the socket at once. SQLite: the connection is closed on its own thread
        (``terminate()`` would stop that thread, and a later ``close()`` by the pool would then wait forever for
        it). After this the store opens no connection (``StoreClosed``): ``dispose()`` would let the engine
        start a new pool, and a late task's connection there would be collected unclosed too."""
        self._closed = True
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
        for lent in self._lent:
            for record in list(lent):
                connection = record.dbapi_connection
                if connection is None:
                    continue
                if self.dialect == "sqlite":
                    await connection.driver_connection.close()
                else:
                    connection.terminate()
            lent.clear()


SQLITE_MIN_FREE_BYTES = 1024 * 1024
"""Below this much free space where the SQLite file lives, /readyz reports the disk full: every write fails
there (the write-ahead log grows by pages) while reads, and so ``SELECT 1``, still work."""


def _lent_connections(engine: AsyncEngine) -> set[Any]:
    """The pool records of ``engine``'s connections checked out now, kept up to date by pool events."""
    lent: set[Any] = set()
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkout")
    def _lent(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        lent.add(record)

    @event.listens_for(pool, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        lent.discard(record)

    return lent


def _refuse_once_closed(engine: AsyncEngine, store: Store) -> None:
    """A connection that the pool finishes opening after the store closed is closed at once (SQLAlchemy closes a
    connection whose ``connect`` event fails) and its opener gets StoreClosed. ``close()`` ends the connections
    lent out when it runs, and ``dispose()`` leaves the engine a new pool: without this, a task that was already
    on its way to a connection (connecting, or queued for SQLite's write turn) when the store closed would get
    one in that new pool, which nobody closes, and the driver would warn from the garbage collector. Registered
    after the engine's own ``connect`` hook, so it looks once that hook's statements are done."""

    @event.listens_for(engine.sync_engine, "connect")
    def _refuse(_dbapi_connection: Any, _record: Any) -> None:
        store._check_open()


def _remember_backend_pids(engine: AsyncEngine, pids: set[int]) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connected(dbapi_connection: Any, _record: Any) -> None:
        pids.add(int(dbapi_connection.driver_connection.get_server_pid()))


def _sqlite_disk_full(url: str) -> str | None:
    """What /readyz says when the SQLite database's file system is (nearly) full; None when it is not."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(database)))
    except OSError:
        return None
    free = stats.f_bavail * stats.f_frsize
    if free >= SQLITE_MIN_FREE_BYTES:
        return None
    return f"disk full: {free} bytes free where the database is"


def upsert(dialect: str, table: Table, values: Mapping[str, Any] | None = None) -> Any:
    """INSERT for the dialect at hand, with ``on_conflict_*`` available (SQLite and PostgreSQL agree).

    Without ``values``, execute it with a list of rows: SQLAlchemy batches them into multi-row
    statements from one cached compilation ("insertmanyvalues"), RETURNING included."""
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table)
    return stmt if values is None else stmt.values(values)


DIALECTS = ("sqlite", "postgresql")
"""The engines the store runs on, by SQLAlchemy dialect name: what a statement built once per dialect is built for."""


def one_of(column: Any, name: str, dialect: str) -> Any:
    """``column`` is one of the values bound as ``name``, a list sent as one parameter: an array on PostgreSQL
    (``= ANY``), a JSON array on SQLite (``in_json_array``). One statement text whatever the list's length, so
    one compilation in SQLAlchemy's cache and one prepared statement in the driver's; an expanding ``IN`` is
    rendered anew on every execution, one parameter per value."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return in_json_array(column, name)


def in_json_array(column: Any, name: str) -> Any:
    """SQLite: ``column`` is one of the values bound as ``name``, a list sent as one JSON array (``json_each``).
    One parameter, so one statement text whatever the length: an expanding ``IN`` is rendered by SQLAlchemy
    one parameter per value, and its text (and SQLite's prepared statement) changes with every length."""
    values = func.json_each(bindparam(name, type_=JSON())).table_valued("value")
    return column.in_(select(values.c.value))


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or could not write (connection refused or lost, disk full): what a
    retry a moment later cures, unlike a statement the database refused. A transaction whose connection was
    lost under it ends in ``PendingRollbackError`` ("can't reconnect until invalid transaction is rolled
    back")."""
    if isinstance(exc, (OSError, TimeoutError, DisconnectionError, InterfaceError, PendingRollbackError)):
        return True
    if isinstance(exc, OperationalError):
        if isinstance(exc.orig, sqlite3.Error):
            # SQLite calls nearly every error "operational", a missing table too: only these pass by themselves
            return any(passing in str(exc.orig).lower() for passing in _SQLITE_PASSING)
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


_SQLITE_PASSING = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
)


def lost_to_a_concurrent_change(exc: BaseException) -> bool:
    """PostgreSQL rolled this transaction back for a concurrent one (a deadlock's victim, or a serialisation
    failure): nothing of it was committed, and trying again sees the other change."""
    if not isinstance(exc, SQLAlchemyError):
        return False
    text = str(exc).lower()
    return "deadlock" in text or "could not serialize" in text
