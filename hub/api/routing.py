"""The router's background worker: one sweep loop per hub process.

It sweeps every ``routing.tick_seconds`` (offer deadlines, waiting queues) and
at once when the bus says something routing cares about happened (a
conversation started waiting, an agent became ready, capacity was freed).
Several processes may sweep the same database; hub.store.routing keeps that safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import datetime

from aiohttp import web

from hub.api.keys import BUS, CLOCK, SETTINGS, STORE
from hub.store import Journal
from hub.store.routing import SweepResult, sweep

__all__ = ["ROUTER", "Router", "setup", "sweep_app"]

logger = logging.getLogger(__name__)

#: bus events after which a waiting conversation may find an agent
KICKERS = frozenset(
    {"conversation.waiting", "agent.presence", "conversation.updated", "offer.withdrawn", "agents.changed"}
)


class Router:
    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.sweeps = 0
        self.journal: Journal | None = None  # records the offers' events with the offers (the notifier's)

    async def sweep(self, now: datetime | None = None) -> SweepResult:
        """One pass now; publishes what it changed. Concurrent calls in one process queue up."""
        app = self._app
        async with self._lock:
            result = await sweep(
                app[STORE],
                now=now or app[CLOCK](),
                missed_offer_reason=app[SETTINGS].routing.missed_offer_reason,
                journal=self.journal,
            )
            self.sweeps += 1
        app[BUS].publish_all(result.events)
        return result

    def kick(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="router-listen"),
            asyncio.create_task(self._loop(), name="router-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _listen(self) -> None:
        async with self._app[BUS].subscribe() as queue:
            while True:
                event = await queue.get()
                if event.kind in KICKERS:
                    self._wake.set()

    async def _loop(self) -> None:
        tick = self._app[SETTINGS].routing.tick_seconds
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives as
            # the event is set, and stop() then waited for this loop forever (tests/unit/test_stopping.py)
            with suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next tick tries again; routing must not die
                logger.exception("routing sweep failed")


ROUTER = web.AppKey("router", Router)


async def sweep_app(app: web.Application, *, now: datetime | None = None) -> SweepResult:
    """One routing pass for ``app`` at ``now`` (tests call this with their clock)."""
    return await app[ROUTER].sweep(now)


async def _router_context(app: web.Application) -> AsyncIterator[None]:
    router = Router(app)
    app[ROUTER] = router
    from hub.api.ws import NOTIFIER  # here, not at the top: ws imports auth, which imports this module

    if NOTIFIER in app:  # it starts first (hub.api.handoff.setup)
        router.journal = app[NOTIFIER].journal
    await router.start()
    yield
    await router.stop()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_router_context)
