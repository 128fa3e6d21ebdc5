"""Ingest: normalised inbound events in, durable rows and bus events out.

Webhook handlers call ``Ingestor.submit`` and answer the provider only when it
returns: the delivery is then committed. Concurrent deliveries are grouped
into one transaction (group commit): one fsync serves many requests, and each
delivery still commits or rolls back on its own (``hub.store.ingest.store_group``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hub.bus import EventBus
from hub.logs import correlated
from hub.model import ChannelAccount, InboundEvent
from hub.store import DeliveryOutcome, Journal, Store, store_group

__all__ = ["HEALTH_STAMP_EVERY", "MAX_IGNORED_KINDS", "IngestResult", "Ingestor"]

logger = logging.getLogger(__name__)

#: distinct ignored-event kinds counted one by one (``channelhub_inbound_ignored_total``); later ones are "other"
MAX_IGNORED_KINDS = 100

#: how often a process stamps an account's ``last_webhook_at`` at most (the admin API's account health): a stamp
#: is a statement in the group's transaction, and under load nearly every group would otherwise make one
HEALTH_STAMP_EVERY = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: int
    duplicates: int
    updated: int
    ignored: tuple[str, ...]

    @property
    def duplicate_only(self) -> bool:
        return self.duplicates > 0 and self.stored == 0 and self.updated == 0


def utc_now() -> datetime:
    return datetime.now(UTC)


class Ingestor:
    """Group-committing writer of inbound deliveries.

    ``max_group`` bounds one transaction; there is no artificial wait: a group
    is whatever arrived while the previous commit was on disk.
    """

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        accounts: Sequence[ChannelAccount],
        *,
        clock: Callable[[], datetime] = utc_now,
        max_group: int = 256,
        journal: Journal | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._accounts = {a.id: a for a in accounts}
        self._clock = clock
        self._max_group = max_group
        self._queue: asyncio.Queue[tuple[Sequence[InboundEvent], asyncio.Future[DeliveryOutcome]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.ignored_counts: Counter[str] = Counter()
        self.groups = 0
        self.deliveries = 0
        self.journal = journal  # records the events with the messages, in their transaction (the notifier's)
        self._stamped: dict[str, datetime] = {}  # account id -> the last_webhook_at this process last stored
        # told of each committed group: (deliveries in it, seconds the transaction took); hub/metrics.py
        self.on_group: Callable[[int, float], None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ingest-group-commit")

    async def stop(self) -> None:
        """Finish what was submitted, then stop."""
        if self._task is None:
            return
        await self._queue.join()  # every submitted delivery has been committed or failed
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, events: Sequence[InboundEvent]) -> IngestResult:
        """Store one delivery; returns once it is committed. Raises what rolled it back."""
        for event in events:
            if event.account_id not in self._accounts:
                raise KeyError(f"unknown account {event.account_id!r}")
        if self._task is None:
            await self.start()
        future: asyncio.Future[DeliveryOutcome] = asyncio.get_running_loop().create_future()
        logger.debug("delivery submitted", extra={"events": len(events)})
        await self._queue.put((events, future))
        outcome = await future
        for kind in outcome.ignored:
            self.ignored_counts[self._counted_as(kind)] += 1
            logger.info("acknowledged an event kind we do not handle", extra={"event_kind": kind})
        return IngestResult(
            stored=outcome.stored,
            duplicates=outcome.duplicates,
            updated=outcome.updated,
            ignored=tuple(outcome.ignored),
        )

    def _counted_as(self, kind: str) -> str:
        """``kind`` (``channel:what``), or ``channel:other`` once ``MAX_IGNORED_KINDS`` kinds are counted: some
        kinds carry a name from the provider's payload, and the counts are exported as metric labels, which must
        stay few."""
        if kind in self.ignored_counts or len(self.ignored_counts) < MAX_IGNORED_KINDS:
            return kind
        return f"{kind.partition(':')[0]}:other"

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < self._max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                with correlated(prefix="ingest"):
                    await self._commit(group)
            except Exception as exc:  # a bug of ours: fail this group's deliveries, keep serving the next ones
                logger.exception("ingest failed outside its transaction; %d deliveries not acknowledged", len(group))
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                for _ in group:
                    self._queue.task_done()

    def _stamps_due(self, accounts: set[str], now: datetime) -> list[str]:
        """The accounts whose ``last_webhook_at`` this group stamps: those this process has not stamped for
        ``HEALTH_STAMP_EVERY`` (or whose stamp is ahead of the clock)."""
        due = []
        for account_id in sorted(accounts):
            last = self._stamped.get(account_id)
            if last is None or not last <= now < last + HEALTH_STAMP_EVERY:
                due.append(account_id)
        return due

    async def _commit(self, group: list[tuple[Sequence[InboundEvent], asyncio.Future[DeliveryOutcome]]]) -> None:
        began = time.perf_counter()
        now = self._clock()
        stamp = self._stamps_due({event.account_id for events, _ in group for event in events}, now)
        try:
            results = await store_group(
                self._store, [events for events, _ in group], self._accounts, now, journal=self.journal, stamp=stamp
            )
        except Exception as exc:  # the commit itself failed: every delivery in it fails
            logger.exception("ingest transaction failed; %d deliveries not acknowledged", len(group))
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self._stamped.update(dict.fromkeys(stamp, now))
        self.groups += 1
        self.deliveries += len(group)
        logger.debug("ingest group committed", extra={"deliveries": len(group)})
        if self.on_group is not None:
            self.on_group(len(group), time.perf_counter() - began)
        for (_, future), result in zip(group, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
                continue
            future.set_result(result)  # stored: acknowledged whatever happens to the news of it below
            # a failure to publish is logged, not raised: consoles catch up from bus_log when they reconnect,
            # and the router's next sweep (a tick later) finds the conversation
            try:
                self._bus.publish_all(result.events)
            except Exception:
                logger.exception("stored a delivery but could not publish its %d events", len(result.events))
