"""PostgreSQL ``LISTEN`` for new event-log rows written by other hub processes.

A trigger on ``bus_log`` (migration 0011) sends ``NOTIFY channelhub_bus_log, '<first seq>,<last seq>'`` for every
statement that inserts rows; PostgreSQL delivers it when that transaction commits, in commit order. One
connection per process, outside the pool, listens. Notifications from this process's own pool connections
(known by their backend pids) are ignored: this process hands its own events out when they are published.
After a (re)connection the caller is told to catch up, since notifications sent while nobody listened are
lost; polling the event log stays as the fallback meanwhile. SQLite has one process per file and no listener.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from hub.store._db import Store

__all__ = ["CHANNEL", "BusLogListener"]

logger = logging.getLogger(__name__)

CHANNEL = "channelhub_bus_log"
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _connection: event.set()


class BusLogListener:
    """Calls ``on_rows(first, last)`` for rows another process logged, ``on_connected()`` after each connect."""

    def __init__(self, store: Store, on_rows: Callable[[int, int], None], on_connected: Callable[[], None]) -> None:
        self._store = store
        self._on_rows = on_rows
        self._on_connected = on_connected
        self.connected = False
        self.own_skipped = 0  # notifications of this process's own writes, not read again

    def _heard(self, connection: object, pid: int, channel: str, payload: str) -> None:
        if pid in self._store.backend_pids:
            self.own_skipped += 1
            return
        try:
            first, last = (int(part) for part in payload.split(","))
        except ValueError:
            logger.warning("unexpected notification on %s: %r", channel, payload[:100])
            return
        self._on_rows(first, last)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after a lost connection."""
        failures = 0
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(_dsn(self._store.url), timeout=10)
                lost = asyncio.Event()
                connection.add_termination_listener(_setter(lost))
                await connection.add_listener(CHANNEL, self._heard)
                self.connected = True
                failures = 0
                self._on_connected()
                await lost.wait()
                logger.warning("the event-log listener lost its connection; polling until it is back")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("the event-log listener could not connect (%s); polling until it can", exc)
            finally:
                self.connected = False
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1
