"""aiosqlite connections that cross to their thread once per statement, not four times.

SQLAlchemy's aiosqlite adapter opens a cursor, executes, fetches and closes it,
each an ``await`` that hands work to the connection's thread and waits for the
event loop to be told the answer. Under load the loop is busy with HTTP, so
every hand-off waits its turn: a group commit of twenty statements made eighty
such trips, and the trips, not SQLite, were most of its time. Here a cursor is a
plain object; ``execute`` runs the statement, reads every row and closes the
SQLite cursor in one trip, and ``fetch*``/``close`` answer from what it kept.

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

__all__ = ["OneTripConnection", "connect"]

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


class OneTripConnection(aiosqlite.Connection):
    def cursor(self) -> PrefetchingCursor:  # type: ignore[override]  # a plain object, not a coroutine
        return PrefetchingCursor(self)

    async def run(self, function: Callable[..., _Outcome], sql: str, parameters: Any) -> _Outcome:
        """``function(sqlite3_connection, sql, parameters)`` on the connection's thread."""
        outcome: _Outcome = await self._execute(function, self._conn, sql, parameters)  # type: ignore[no-untyped-call]
        return outcome


def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """Like ``aiosqlite.connect``; ``kwargs`` go to ``sqlite3.connect``."""

    def connector() -> sqlite3.Connection:
        connection: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return connection

    return OneTripConnection(connector, iter_chunk_size=64)
