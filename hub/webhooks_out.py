"""The outgoing webhooks' dispatcher: sends the deliveries the store recorded, signed, in order, with retries.

Owned by the ``Hub`` (started after the notifier, stopped before it). Each round leases a batch of due
deliveries (the head of each conversation's line, hub/store/webhooks_out.py), POSTs them concurrently,
each signed with the Standard Webhooks scheme, and stores every attempt in one transaction. The bus only
wakes it early; deliveries are found in the database, so those another process recorded are sent too,
and a process that stops mid-delivery leaves nothing behind (its leases are given back or run out).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from standardwebhooks import Webhook

from hub._tasks import cancel_and_wait
from hub.bus import BusEvent, EventBus
from hub.settings import Settings
from hub.store import Store
from hub.store.webhooks_out import (
    AttemptResult,
    DueDelivery,
    record_and_claim,
    release_claims,
    seed_subscriptions,
)

__all__ = ["WebhookDispatcher", "signed_headers", "webhook_id"]

logger = logging.getLogger(__name__)

_USER_AGENT = "channelhub-webhooks/1"
_LANES = 3
_BATCH = 4  # deliveries leased per lane and round, per request in flight allowed


def webhook_id(delivery_id: int) -> str:
    """The ``webhook-id`` of a delivery: the same for every attempt and replay, so receivers deduplicate."""
    return f"dlv_{delivery_id}"


def signed_headers(secret: str, delivery_id: int, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` sent at ``at``."""
    signature = Webhook(secret).sign(webhook_id(delivery_id), at, body.decode())
    return {
        "content-type": "application/json",
        "user-agent": _USER_AGENT,
        "webhook-id": webhook_id(delivery_id),
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


class _Wake(asyncio.Queue[BusEvent]):
    """A bus subscription that keeps nothing: any published event just wakes the dispatcher."""

    def __init__(self, wake: asyncio.Event) -> None:
        super().__init__()
        self._wake = wake

    def _put(self, item: BusEvent) -> None:
        self._wake.set()


class WebhookDispatcher:
    """Delivers outgoing webhooks for one hub process; several processes may run one each."""

    def __init__(self, store: Store, bus: EventBus, settings: Settings, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self._tuning = settings.webhooks_delivery
        self._clock = clock
        self.owner = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._in_flight: set[int] = set()
        self._gate = asyncio.Semaphore(self._tuning.concurrency)
        self.delivered = 0
        self.failed_attempts = 0

    async def start(self) -> None:
        """Seed the configured subscriptions, then deliver in the background."""
        await seed_subscriptions(self._store, self._settings.webhooks_out, now=self._clock())
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._tuning.timeout_seconds),
            connector=aiohttp.TCPConnector(limit=self._tuning.concurrency * 2),
        )
        self._tasks = [asyncio.create_task(self._listen(), name="webhooks-out-wake")]
        # lanes: while one records its batch or leases the next, the others' requests are on the wire
        self._tasks += [asyncio.create_task(self._run(), name=f"webhooks-out-{n}") for n in range(_LANES)]

    async def stop(self) -> None:
        """Stop sending; leases of attempts cut short are given back, so they are sent again at once."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._in_flight:
            try:
                await release_claims(self._store, sorted(self._in_flight), owner=self.owner)
            except Exception:  # the lease runs out by itself
                logger.warning("could not give back %d webhook leases", len(self._in_flight), exc_info=True)
            self._in_flight = set()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def kick(self) -> None:
        """Look for due deliveries now (an admin resumed or replayed something)."""
        self._wake.set()

    async def _listen(self) -> None:
        async with self._bus.subscribe(_Wake(self._wake)):
            await asyncio.Event().wait()  # until cancelled

    async def _run(self) -> None:
        """One lane: record the last round's attempts and lease the next round in one transaction, send."""
        results: list[AttemptResult] = []
        while True:
            self._wake.clear()  # before looking: a change committed meanwhile wakes the next round
            try:
                results = await self._round(results)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("delivering outgoing webhooks failed")
                results = []  # unrecorded attempts: their leases run out and they are sent again
            if results:
                continue  # the next in each line may be due now
            await self._nap()

    async def _nap(self) -> None:
        """Until woken or ``poll_seconds`` passed. Not ``wait_for``: on Python 3.11 it can swallow the
        cancellation that stops the dispatcher when the wake-up comes at the same moment."""
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter}, timeout=self._tuning.poll_seconds)
        finally:
            waiter.cancel()

    async def _round(self, done: list[AttemptResult]) -> list[AttemptResult]:
        tuning = self._tuning
        due = await record_and_claim(
            self._store,
            done,
            owner=self.owner,
            now=self._clock(),
            lease=tuning.lease_seconds,
            limit=tuning.concurrency * _BATCH,
            tuning=tuning,
        )
        self._count(done)
        self._in_flight -= {r.delivery_id for r in done}
        if not due:
            return []
        self._in_flight |= {d.id for d in due}
        return list(await asyncio.gather(*(self._attempt(d, self._gate) for d in due)))

    def _count(self, results: list[AttemptResult]) -> None:
        delivered = sum(1 for r in results if r.delivered)
        self.delivered += delivered
        self.failed_attempts += len(results) - delivered

    async def _attempt(self, delivery: DueDelivery, gate: asyncio.Semaphore) -> AttemptResult:
        assert self._http is not None
        body = delivery.body
        status: int | None = None
        error: str | None = None
        async with gate:
            started = time.monotonic()
            try:
                # the receiver checks the timestamp against its own clock: the wall clock, not the hub's
                headers = signed_headers(delivery.secret, delivery.id, body, datetime.now(UTC))
                async with self._http.post(delivery.url, data=body, headers=headers, allow_redirects=False) as answer:
                    status = answer.status
                    if not 200 <= status < 300:
                        error = f"HTTP {status}: {(await answer.text(errors='replace'))[:300]}"
            except TimeoutError:
                error = f"timed out after {self._tuning.timeout_seconds:g} s"
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                error = _describe(exc)
            duration = int((time.monotonic() - started) * 1000)
        if error is not None:
            logger.info(
                "outgoing webhook %s to %s failed: %s", webhook_id(delivery.id), delivery.subscription_id, error
            )
        return AttemptResult(
            delivery_id=delivery.id,
            subscription_id=delivery.subscription_id,
            created_at=delivery.created_at,
            status_code=status,
            error=error,
            duration_ms=duration,
        )


def _describe(exc: Any) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
