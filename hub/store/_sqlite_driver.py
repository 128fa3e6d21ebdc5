"""aiosqlite connections that cross to their thread once per statement, not four times.

SQLAlchemy's aiosqlite adapter opens a cursor, executes, fetches and closes it,
each an ``await`` that hands work to the connection's thread and waits for the
event loop to be told the answer. Under load the loop is busy with HTTP, so
every hand-off waits its turn: a group commit of twenty statements made eighty
such trips, and the trips, not SQLite, were most of its time. Here a cursor is a
plain object; ``execute`` runs the statement, reads every row and closes the
SQLite cursor in one trip, and ``fetch*``/``close`` answer from what it kept.

Inside a write transaction (after ``BEGIN IMMEDIATE`` succeeded, until its
commit or rollback) statements run on the calling thread instead, with no
hand-off at all: the transaction holds SQLite's write lock, so no statement in
it can wait for another writer, and its statements are short. Under load each
hand-off waited for a whole turn of a busy event loop, so a transaction of six
statements took six turns (the outbox's writer: 60 to 180 ms while 100 sends
were in flight). ``BEGIN IMMEDIATE`` is tried here without waiting and goes to
the connection's thread only when a writer in another process holds the lock
(SQLite's busy handler then waits there); the commit (which waits for the
disk) always goes to the connection's thread.
See docs/decisions/0016-sqlite-inline-writes.md.

A reader's statements go to the connection's thread too, its deferred
``BEGIN`` with its first statement in one trip (SQLite begins nothing before
that statement anyway: no lock, no snapshot), unless the read was declared
brief (``read_here``: a few statements by key, on a bot's turn's way): then
they run here as well, with SQLite's busy handler off. A reader of a WAL
database does not wait for writers; in the rare case it would have to wait (a
connection elsewhere recovering the WAL or holding an exclusive lock), SQLite
answers SQLITE_BUSY at once and the read goes on on the connection's thread,
where the busy handler may wait. See docs/decisions/0050-brief-reads-on-the-loop.md.

The connection is an ``aiosqlite.Connection`` (SQLAlchemy's adapter uses its
thread and queue); it is handed to SQLAlchemy through ``async_creator``, the
documented way to supply the driver connection. Results are read whole, which
is what SQLAlchemy's adapter does for every non-streaming cursor anyway; we
never stream from SQLite.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite

__all__ = ["BEGIN_READ", "BEGIN_WRITE", "OneTripConnection", "connect"]

_Outcome = tuple[Any, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.execute(sql, parameters if parameters is not None else ())
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(connection: sqlite3.Connection, sql: str, parameters: Iterable[Any]) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class PrefetchingCursor:
    """The async cursor SQLAlchemy's adapter drives: one thread trip per ``execute``."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []
        self._position = 0

    async def __aenter__(self) -> PrefetchingCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _keep(self, outcome: _Outcome) -> PrefetchingCursor:
        self.description, self._rows, self.rowcount, self.lastrowid = outcome
        self._position = 0
        return self

    async def execute(self, sql: str, parameters: Any = None) -> PrefetchingCursor:
        if sql == BEGIN_WRITE and not parameters:
            await self._connection.begin_write()
            return self._keep((None, [], -1, None))
        if sql == BEGIN_READ and not parameters:
            self._connection.begin_read()
            return self._keep((None, [], -1, None))
        return self._keep(await self._connection.run(_run, sql, parameters))

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> PrefetchingCursor:
        return self._keep(await self._connection.run(_run_many, sql, list(parameters)))

    async def fetchone(self) -> Any:
        if self._position >= len(self._rows):
            return None
        self._position += 1
        return self._rows[self._position - 1]

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self.arraysize if size is None else size
        chunk = self._rows[self._position : self._position + count]
        self._position += len(chunk)
        return chunk

    async def fetchall(self) -> Sequence[Any]:
        rest = self._rows[self._position :]
        self._position = len(self._rows)
        return rest

    async def close(self) -> None:
        self._rows = []
        self._position = 0


BEGIN_WRITE = "BEGIN IMMEDIATE"  # what the engine's begin hook sends for writers (hub.store.engine)
BEGIN_READ = "BEGIN"  # and for readers: deferred, it takes no lock until the transaction's first statement


def _begun(function: Callable[..., _Outcome], connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    """A reader's deferred ``BEGIN``, then the transaction's first statement: one trip for both."""
    connection.execute(BEGIN_READ)
    return function(connection, sql, parameters)


class OneTripConnection(aiosqlite.Connection):
    writing = False  # inside a write transaction: statements run on the caller's thread
    reading_here = False  # a brief read, until it ends or would wait: statements run on the caller's thread
    _begin_pending = False  # a reader's BEGIN, sent with the transaction's first statement
    _busy_timeout: int | None = None  # ms, as the engine set it (read once, restored after a no-wait statement)

    def cursor(self) -> PrefetchingCursor:  # type: ignore[override]  # a plain object, not a coroutine
        return PrefetchingCursor(self)

    async def run(self, function: Callable[..., _Outcome], sql: str, parameters: Any) -> _Outcome:
        """``function(sqlite3_connection, sql, parameters)``: here inside a write transaction or a brief read
        (which goes on on the connection's thread once a statement would wait), else on the connection's
        thread."""
        if self.writing:
            return function(self._conn, sql, parameters)
        plain = function
        if self._begin_pending:  # a reader's BEGIN goes with its first statement
            self._begin_pending = False
            function = functools.partial(_begun, plain)
        if self.reading_here:
            try:
                return function(self._conn, sql, parameters)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
                self._stop_reading_here()  # nothing was read: the statement is asked again, where it may wait
                if self._conn.in_transaction:  # its BEGIN went through (a deferred one waits for nothing)
                    function = plain
        outcome: _Outcome = await self._execute(function, self._conn, sql, parameters)  # type: ignore[no-untyped-call]
        return outcome

    def begin_read(self) -> None:
        """A reader's ``BEGIN``, kept for its first statement's trip: a deferred BEGIN does nothing in SQLite
        until that statement (no lock, no snapshot), so sending the two together changes nothing but the trip."""
        self._begin_pending = True

    def read_here(self) -> None:
        """The read transaction about to start is brief: its statements run on the caller's thread, without
        waiting, until it ends (``rollback``, as the pool resets every connection it takes back)."""
        if self.writing or self._conn.in_transaction:
            raise RuntimeError("a brief read starts on a connection with no transaction open")
        self._remembered_busy_timeout()  # as the engine set it, before it is changed
        self._conn.execute("PRAGMA busy_timeout=0")
        self.reading_here = True

    def _stop_reading_here(self) -> None:
        if self.reading_here:
            self.reading_here = False
            self._conn.execute(f"PRAGMA busy_timeout={self._remembered_busy_timeout()}")

    def _remembered_busy_timeout(self) -> int:
        if self._busy_timeout is None:
            self._busy_timeout = int(self._conn.execute("PRAGMA busy_timeout").fetchone()[0])
        return self._busy_timeout

    async def begin_write(self) -> None:
        """``BEGIN IMMEDIATE`` here when the write lock is free; if a writer in another process holds it,
        on the connection's thread, where SQLite's busy handler may wait for it without stalling the loop."""
        if not self._begin_without_waiting():
            await self._execute(self._conn.execute, BEGIN_WRITE)  # type: ignore[no-untyped-call]
        self.writing = True

    def _begin_without_waiting(self) -> bool:
        connection = self._conn
        busy_timeout = self._remembered_busy_timeout()
        connection.execute("PRAGMA busy_timeout=0")
        try:
            connection.execute(BEGIN_WRITE)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            return False
        finally:
            connection.execute(f"PRAGMA busy_timeout={busy_timeout}")
        return True

    async def commit(self) -> None:
        self._begin_pending = False
        try:
            await super().commit()
        finally:
            self.writing = False

    async def rollback(self) -> None:
        """Nothing to cross for when no transaction is open: the pool "resets" every connection it takes back.
        A brief read ends here, on the caller's thread."""
        self._begin_pending = False
        try:
            if self._conn.in_transaction:
                if self.reading_here:
                    self._conn.rollback()
                else:
                    await super().rollback()
        finally:
            self.writing = False
            self._stop_reading_here()


def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """Like ``aiosqlite.connect``; ``kwargs`` go to ``sqlite3.connect``."""

    def connector() -> sqlite3.Connection:
        # used from the event loop's thread inside write transactions, never by two threads at once
        connection: sqlite3.Connection = sqlite3.connect(database, **{**kwargs, "check_same_thread": False})
        return connection

    return OneTripConnection(connector, iter_chunk_size=64)
