"""The outgoing webhooks' dispatcher: sends the deliveries the store recorded, signed, in order, with retries.

Owned by the ``Hub`` (started after the notifier, stopped before it). ``concurrency`` senders take leased
deliveries from a local queue and POST them, each signed with the Standard Webhooks scheme. One recorder
runs rounds back to back while attempts finish: each round stores the attempts finished since the last one
and leases more due deliveries (the head of each conversation's line, hub/store/webhooks_out_dispatch.py) in one
transaction, so the next delivery of a line is sent as soon as its previous one is recorded, not when a
whole batch is done. The bus only wakes it early; deliveries are found in the database, so those another
process recorded are sent too, and a process that stops mid-delivery leaves nothing behind (what it sent is
recorded, its other leases are given back or run out). Delivered deliveries are deleted ``keep_days`` after
delivery, by a sweep at start and every hour.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from hub._tasks import cancel_and_wait
from hub.bus import BusEvent, EventBus
from hub.settings import Settings
from hub.store import Store
from hub.store.webhooks_out import has_subscriptions, seed_subscriptions
from hub.store.webhooks_out_dispatch import (
    AttemptResult,
    DueDelivery,
    any_due,
    prune_delivered,
    record_and_claim,
    record_attempts,
    release_claims,
)
from hub.webhooks_out_events import outgoing_of

__all__ = ["WebhookDispatcher", "delivery_number", "signed_headers", "webhook_id"]

logger = logging.getLogger(__name__)

_USER_AGENT = "channelhub-webhooks/1"
_AHEAD = 12  # deliveries leased and not yet finished, per request in flight allowed: the senders' queue
_RECORDERS = 2  # rounds that may run at once (PostgreSQL overlaps them; SQLite's writers take turns)
# A round waits for this many finished attempts per request in flight allowed, unless the senders' queue is below
# _QUEUE_LOW per request: every round costs the event loop's thread (SQLite: its rounds also take turns; PostgreSQL:
# its rounds overlap, but each round trip is a send and a wake-up), so fewer and larger ones while the senders are
# busy, and none held back when they are about to run dry.
_ROUND_EVERY = {"sqlite": 4, "postgresql": 1}
_QUEUE_LOW = 2
_PRUNE_EVERY = 3600.0  # seconds between retention sweeps of delivered deliveries (the first at start)


_WEBHOOK_ID_PREFIX = "dlv_"


def webhook_id(delivery_id: int) -> str:
    """The ``webhook-id`` of a delivery: the same for every attempt and replay, so receivers deduplicate."""
    return f"{_WEBHOOK_ID_PREFIX}{delivery_id}"


def delivery_number(text: str) -> str:
    """The delivery's number in ``text``, which is either that number or the ``webhook-id`` a receiver saw."""
    return text.removeprefix(_WEBHOOK_ID_PREFIX)


def signed_headers(secret: str, delivery_id: int, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` sent at ``at``."""
    return _signed(secret, webhook_id(delivery_id), body, int(at.timestamp()))


def _signed(secret: str, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks scheme: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body`` under the
    secret's key (the ``standardwebhooks`` package's ``Webhook.sign``, which the tests verify against). Done
    here with the key decoded once per secret: the package decodes it on every ``Webhook(secret)``."""
    stamp = str(timestamp)
    digest = hmac.digest(_signing_key(secret), b"%s.%s.%s" % (message_id.encode(), stamp.encode(), body), "sha256")
    return {
        "content-type": "application/json",
        "user-agent": _USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


@functools.lru_cache(maxsize=1024)
def _signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (unpadded base64 accepted, as the package does)."""
    encoded = secret.removeprefix("whsec_")
    key = base64.b64decode(encoded + "==")
    if not key:
        raise ValueError("webhook secret may not be empty")
    return key


class _Wake(asyncio.Queue[BusEvent]):
    """A bus subscription that keeps nothing: an event that integrations may hear of wakes the dispatcher.

    Offers, presence and waiting-list changes never become a delivery (``outgoing_of``): waking a round for
    each of them cost every lane a write transaction, on SQLite a turn at its one write lock, for nothing.
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def _put(self, item: BusEvent) -> None:
        try:
            heard = outgoing_of(item, new_conversation=True) is not None
        except Exception:  # called by whoever publishes: never fail them; a round that finds nothing is cheap
            logger.exception("could not tell whether integrations hear of %s", type(item).__name__)
            heard = True
        if heard:
            self._wake()


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
        self._in_flight: set[int] = set()  # leased and not yet recorded (queued, being sent, or finished)
        self._queue: asyncio.Queue[DueDelivery] = asyncio.Queue()
        self._finished: list[AttemptResult] = []  # attempts not yet recorded
        self._nudge = asyncio.Event()  # set when a waiting recorder should look again (woken, worth a round)
        self._leasing = 0  # leases asked for by rounds in progress
        self._round_every = _ROUND_EVERY.get(store.dialect, 0) * self._tuning.concurrency
        self._subscribed_checked = -math.inf  # monotonic time of the last look at whether any subscription exists
        self._subscribed = True
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
        self._tasks += [asyncio.create_task(self._run(), name=f"webhooks-out-recorder-{n}") for n in range(_RECORDERS)]
        self._tasks += [
            asyncio.create_task(self._send(), name=f"webhooks-out-sender-{n}") for n in range(self._tuning.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._retention(), name="webhooks-out-retention"))

    async def stop(self) -> None:
        """Stop sending; finished attempts are recorded, the leases of the others (queued or cut short) given
        back, so they are sent again at once."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        self._queue = asyncio.Queue()
        finished, self._finished = self._finished, []
        if finished:
            try:
                await record_attempts(self._store, finished, owner=self.owner, now=self._clock(), tuning=self._tuning)
                self._count(finished)
                self._in_flight -= {r.delivery_id for r in finished}
            except Exception:  # their leases run out: sent again, and receivers deduplicate
                logger.warning("could not record %d webhook attempts", len(finished), exc_info=True)
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
        """Look for due deliveries now (an admin subscribed, resumed or replayed something)."""
        self._subscribed_checked = -math.inf
        self._wake_up()

    def _wake_up(self) -> None:
        """Something may have become due: the next round looks, and a recorder waiting for one starts it."""
        self._wake.set()
        self._nudge.set()

    async def prune(self) -> int:
        """The retention sweep: deliveries delivered more than ``keep_days`` ago go, with their attempts."""
        return await prune_delivered(self._store, before=self._clock() - timedelta(days=self._tuning.keep_days))

    async def _retention(self) -> None:
        """``prune`` at start and then every hour; a failed sweep is tried again at the next."""
        while True:
            try:
                removed = await self.prune()
                if removed:
                    logger.info("outgoing webhooks retention removed %d delivered deliveries", removed)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outgoing webhooks retention sweep failed")
            await asyncio.sleep(_PRUNE_EVERY)

    async def _listen(self) -> None:
        async with self._bus.subscribe(_Wake(self._wake_up)):
            await asyncio.Event().wait()  # until cancelled

    async def _run(self) -> None:
        """A recorder: a round when enough attempts finished or the senders run short (or something woke it),
        at the latest every ``poll_seconds``."""
        while True:
            self._wake.clear()  # before looking: a change committed meanwhile wakes the next round
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("delivering outgoing webhooks failed")
            await self._until_worth_a_round()

    def _worth_a_round(self) -> bool:
        """Enough finished attempts to record, or few left queued: fewer, larger rounds while the senders are
        busy, and no wait when they are about to run dry."""
        return bool(self._finished) and (
            len(self._finished) >= self._round_every or self._queue.qsize() < self._tuning.concurrency * _QUEUE_LOW
        )

    async def _until_worth_a_round(self) -> None:
        """Until woken, worth a round, or ``poll_seconds`` passed. A finished attempt nudges the recorders only
        when it makes a round worth it (``_send``), so a waiting recorder wakes once per round, not once per
        attempt. Not ``wait_for``: on Python 3.11 it can swallow the cancellation that stops the dispatcher
        when the wake-up comes at the same moment."""
        if self._wake.is_set() or self._worth_a_round():
            return
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._nudge.set()

        timer = asyncio.get_running_loop().call_later(self._tuning.poll_seconds, expire)
        try:
            while not (expired or self._wake.is_set() or self._worth_a_round()):
                self._nudge.clear()
                await self._nudge.wait()
        finally:
            timer.cancel()

    async def _round(self) -> None:
        """Record what finished and lease what the queue has room for, in one transaction."""
        done, self._finished = self._finished, []
        room = max(self._tuning.concurrency * _AHEAD - (len(self._in_flight) - len(done)) - self._leasing, 0)
        if not done and not room:
            return
        if not done and not (await self._any_subscription() and await any_due(self._store, now=self._clock())):
            return  # looked without the write lock: nothing to record, nothing to lease
        self._leasing += room
        try:
            due = await record_and_claim(
                self._store,
                done,
                owner=self.owner,
                now=self._clock(),
                lease=self._tuning.lease_seconds,
                limit=room,
                tuning=self._tuning,
            )
        finally:  # recorded, or not: then their leases run out and they are sent again
            self._leasing -= room
            self._in_flight -= {r.delivery_id for r in done}
        self._count(done)
        self._in_flight |= {d.id for d in due}
        for delivery in due:
            self._queue.put_nowait(delivery)

    async def _send(self) -> None:
        """One sender: the next leased delivery, one attempt, handed to the recorders (woken when it makes a
        round worth it)."""
        while True:
            delivery = await self._queue.get()
            result = await self._attempt(delivery)
            self._finished.append(result)
            if self._worth_a_round():
                self._nudge.set()

    async def _any_subscription(self) -> bool:
        """Whether any subscription exists, looked up at most every ``poll_seconds`` (and after a kick): without
        one no delivery is ever written, so a hub with no integrations does not look for due ones on every
        event. A subscription made in another process is seen within ``poll_seconds``."""
        if time.monotonic() - self._subscribed_checked >= self._tuning.poll_seconds:
            self._subscribed = await has_subscriptions(self._store)
            self._subscribed_checked = time.monotonic()
        return self._subscribed

    def _count(self, results: list[AttemptResult]) -> None:
        delivered = sum(1 for r in results if r.delivered)
        self.delivered += delivered
        self.failed_attempts += len(results) - delivered

    async def _attempt(self, delivery: DueDelivery) -> AttemptResult:
        assert self._http is not None
        body = delivery.body
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            # the receiver checks the timestamp against its own clock: the wall clock, not the hub's
            headers = _signed(delivery.secret, webhook_id(delivery.id), body, int(time.time()))
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
