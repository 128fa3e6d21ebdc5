"""The router's background worker: one sweep loop per hub process.

It sweeps every ``routing.tick_seconds`` (offer deadlines, waiting queues) and
at once when the bus says something routing cares about happened (a
conversation started waiting, an agent became ready, capacity was freed).
Several processes may sweep the same database; hub.store.offers keeps that safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime

from hub._tasks import cancel_and_wait
from hub.bus import EventBus
from hub.events import (
    AgentPresence,
    ConversationClosed,
    ConversationUpdated,
    ConversationWaiting,
    HubEvent,
    OfferWithdrawn,
    QueueChanged,
    Recorded,
)
from hub.hours import closed_queues
from hub.logs import correlated
from hub.settings import Settings
from hub.store import Journal, Store
from hub.store.offers import SweepResult, sweep

__all__ = ["Router", "SweepResult", "wakes_the_router"]

logger = logging.getLogger(__name__)


def wakes_the_router(event: HubEvent) -> bool:
    """Whether a waiting conversation may find an agent after ``event``: one started waiting, an agent's
    presence changed, a hand-off or a close freed capacity, an offer ended, or a queue's members changed."""
    match event:
        case Recorded(event=inner):
            return wakes_the_router(inner)
        case (
            ConversationWaiting()
            | ConversationUpdated()
            | ConversationClosed()
            | OfferWithdrawn()
            | AgentPresence()
            | QueueChanged()
        ):
            return True
        case _:
            return False


class Router:
    """Offers waiting conversations to agents and expires offers nobody answered, as one serialised sweep.

    ``journal`` records the offers' events in the sweep's own transaction (the notifier's, given by the
    composition root); without one they are published unrecorded and logged by whoever subscribes.
    """

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        journal: Journal | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self._clock = clock
        self._journal = journal
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.sweeps = 0

    async def sweep(self, now: datetime | None = None) -> SweepResult:
        """One pass now; publishes what it changed. Concurrent calls in one process queue up. A queue outside
        its business hours (``[queues.hours]``) is offered nothing: the tick after its opening offers it."""
        clock = self._clock if now is None else _stopped_at(now)
        async with self._lock:
            result = await sweep(
                self._store,
                clock=clock,
                missed_offer_reason=self._settings.routing.missed_offer_reason,
                journal=self._journal,
                closed=closed_queues(self._settings.queue_hours, clock()),
            )
            self.sweeps += 1
        if result.offered or result.expired:
            logger.debug("routing sweep", extra={"offered": len(result.offered), "expired": len(result.expired)})
        self._bus.publish_all(result.events)
        return result

    def kick(self) -> None:
        """Sweep soon, without waiting for the next tick."""
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="router-listen"),
            asyncio.create_task(self._loop(), name="router-sweep"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def _listen(self) -> None:
        async with self._bus.subscribe() as queue:
            while True:
                if wakes_the_router(await queue.get()):
                    self._wake.set()

    async def _loop(self) -> None:
        tick = self._settings.routing.tick_seconds
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives as
            # the event is set, and stop() then waited for this loop forever (tests/unit/test_stopping.py)
            with suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self._wake.wait()
            self._wake.clear()
            try:
                with correlated(prefix="sweep"):
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next tick tries again; routing must not die
                logger.exception("routing sweep failed")


def _stopped_at(now: datetime) -> Callable[[], datetime]:
    """A clock that reads ``now`` (a sweep asked for at a given time, as tests and tools do)."""
    return lambda: now
