"""SQLite's one write turn, shared by the writers of one process.

SQLite lets one transaction write at a time, so the writers of a process queue for their turn in memory instead
of in SQLite's busy handler (ADR 0014). They are served first come, first served, with one exception: a
*background* write, one that nothing on its way is waiting for (the consoles' event log), gives way to every
other writer that is waiting, for at most ``BACKGROUND_PATIENCE`` seconds. At 100 bot turns a second the turn
is busy nearly all the time, and the event log's transactions, one for every group of replies and of provider
acceptances, used to sit in the queue ahead of the ingest's and the outbox's, on the way of every reply
(docs/decisions/0051-background-writes-give-way.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["BACKGROUND_PATIENCE", "WriteTurns"]

BACKGROUND_PATIENCE = 0.05
"""Seconds a background write gives way at most: after that it goes before writers that asked after it, so a
busy hub still logs its events for the consoles within tens of milliseconds."""


class WriteTurns:
    """Turns at one event loop's SQLite write lock: whoever holds the turn may ``BEGIN IMMEDIATE``."""

    def __init__(self, *, patience: float = BACKGROUND_PATIENCE, clock: Callable[[], float] = time.monotonic) -> None:
        self._patience = patience
        self._clock = clock
        self._held = False
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._background: deque[tuple[float, asyncio.Future[None]]] = deque()  # (asked at, waiter)

    @asynccontextmanager
    async def turn(self, *, background: bool = False) -> AsyncIterator[None]:
        """Hold the write turn for the body. ``background``: give way to the writers waiting (see the module)."""
        await self._take(background)
        try:
            yield
        finally:
            self._pass_on()

    @property
    def waiting(self) -> int:
        """Writers waiting for the turn now."""
        return sum(not f.done() for f in self._waiting) + sum(not f.done() for _, f in self._background)

    async def _take(self, background: bool) -> None:
        if not self._held:  # a free turn has nobody waiting for it: a turn given up goes to the next waiter
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if background:
            self._background.append((self._clock(), waiter))
        else:
            self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # cancelled while waiting, its waiter stays queued, done, and is skipped when the turn comes to it;
            # given the turn just as it was cancelled, it passes the turn on
            if not waiter.cancelled():
                self._pass_on()
            raise

    def _pass_on(self) -> None:
        """The turn goes to the next writer, or is free when nobody waits."""
        while (waiter := self._next()) is not None:
            if not waiter.done():  # a waiter cancelled meanwhile is skipped
                waiter.set_result(None)
                return
        self._held = False

    def _next(self) -> asyncio.Future[None] | None:
        if self._background:
            asked_at, waiter = self._background[0]
            if not self._waiting or self._clock() - asked_at >= self._patience:
                self._background.popleft()
                return waiter
        if self._waiting:
            return self._waiting.popleft()
        return None
