"""In-process event bus: what changed (hub/events.py), for the router and the WebSocket.

Publishing never blocks the publisher: each subscriber gets its own queue and
a slow subscriber only delays itself. Other hub processes learn of changes
through the database (bus_log and the router's sweep), not through this bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias

from hub.events import HubEvent

__all__ = ["BusEvent", "EventBus"]

logger = logging.getLogger(__name__)

BusEvent: TypeAlias = HubEvent
"""What the bus carries (the typed events of hub/events.py), under the name the store's signatures use."""


class EventBus:
    """Every published event to every subscriber's queue, in publishing order."""

    def __init__(self, *, queue_size: int = 10_000) -> None:
        self._subscribers: set[asyncio.Queue[BusEvent]] = set()
        self._listeners: list[Callable[[BusEvent], None]] = []
        self._queue_size = queue_size
        self.published = 0
        self.dropped = 0

    def listen(self, listener: Callable[[BusEvent], None]) -> None:
        """Call ``listener`` with every event as it is published, in the publisher's turn (it must be quick and
        never wait: the metrics' counters). Its failure is logged, never raised to the publisher."""
        self._listeners.append(listener)

    def publish(self, event: BusEvent) -> None:
        self.published += 1
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("bus listener failed on %s", event.kind)
        for queue in self._subscribers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1
                logger.warning("bus subscriber is full; dropped %s", event.kind)

    def publish_all(self, events: list[BusEvent]) -> None:
        for event in events:
            self.publish(event)

    @asynccontextmanager
    async def subscribe(self, queue: asyncio.Queue[BusEvent] | None = None) -> AsyncIterator[asyncio.Queue[BusEvent]]:
        """A queue of every event published from now on (``queue``, if the subscriber brings its own kind)."""
        queue = queue if queue is not None else asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
