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
disk) and every reader's statement always go to the connection's thread.
See docs/decisions/0016-sqlite-inline-writes.md.

The connection is an ``aiosqlite.Connection`` (SQLAlchemy's adapter uses its
thread and queue); it is handed to SQLAlchemy through ``async_creator``, the
documented way to supply the driver connection. Results are read whole, which
is what SQLAlchemy's adapter does for every non-streaming cursor anyway; we
never stream from SQLite.
"""

from __future__ import annotations

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
    _begin_pending = False  # a reader's BEGIN, sent with the transaction's first statement
    _busy_timeout: int | None = None  # ms, as the engine set it (read once, restored after a no-wait BEGIN)

    def cursor(self) -> PrefetchingCursor:  # type: ignore[override]  # a plain object, not a coroutine
        return PrefetchingCursor(self)

    async def run(self, function: Callable[..., _Outcome], sql: str, parameters: Any) -> _Outcome:
        """``function(sqlite3_connection, sql, parameters)``: here inside a write transaction, else on the
        connection's thread."""
        if self.writing:
            return function(self._conn, sql, parameters)
        if self._begin_pending:
            self._begin_pending = False
            begun: _Outcome = await self._execute(_begun, function, self._conn, sql, parameters)  # type: ignore[no-untyped-call]
            return begun
        outcome: _Outcome = await self._execute(function, self._conn, sql, parameters)  # type: ignore[no-untyped-call]
        return outcome

    def begin_read(self) -> None:
        """A reader's ``BEGIN``, kept for its first statement's trip: a deferred BEGIN does nothing in SQLite
        until that statement (no lock, no snapshot), so sending the two together changes nothing but the trip."""
        self._begin_pending = True

    async def begin_write(self) -> None:
        """``BEGIN IMMEDIATE`` here when the write lock is free; if a writer in another process holds it,
        on the connection's thread, where SQLite's busy handler may wait for it without stalling the loop."""
        if not self._begin_without_waiting():
            await self._execute(self._conn.execute, BEGIN_WRITE)  # type: ignore[no-untyped-call]
        self.writing = True

    def _begin_without_waiting(self) -> bool:
        connection = self._conn
        if self._busy_timeout is None:
            self._busy_timeout = int(connection.execute("PRAGMA busy_timeout").fetchone()[0])
        connection.execute("PRAGMA busy_timeout=0")
        try:
            connection.execute(BEGIN_WRITE)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            return False
        finally:
            connection.execute(f"PRAGMA busy_timeout={self._busy_timeout}")
        return True

    async def commit(self) -> None:
        self._begin_pending = False
        try:
            await super().commit()
        finally:
            self.writing = False

    async def rollback(self) -> None:
        """Nothing to cross for when no transaction is open: the pool "resets" every connection it takes back."""
        self._begin_pending = False
        try:
            if self._conn.in_transaction:
                await super().rollback()
        finally:
            self.writing = False


def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """Like ``aiosqlite.connect``; ``kwargs`` go to ``sqlite3.connect``."""

    def connector() -> sqlite3.Connection:
        # used from the event loop's thread inside write transactions, never by two threads at once
        connection: sqlite3.Connection = sqlite3.connect(database, **{**kwargs, "check_same_thread": False})
        return connection

    return OneTripConnection(connector, iter_chunk_size=64)
