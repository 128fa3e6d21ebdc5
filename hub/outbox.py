"""Delivery workers: take due outbox rows, ask the policy again, send, record the outcome.

Guarantees (docs/decisions/0010-outbox-delivery.md): an accepted send is never
lost (it is a database row until the provider accepted or refused it for
good); the provider's message id goes to the writer right after the provider
accepts and is stored in its next transaction (with the next claim, ADR 0011;
on PostgreSQL in a statement of its own, ADR 0019),
so a restart never sends that row again; messages of one
conversation leave in order; transient failures are retried on tenacity's
exponential schedule with jitter, never sooner than the provider's Retry-After;
a per-account token bucket, shared by every process (hub/send_rate.py), keeps us under the provider's rate.
No aiohttp here: adapters are reached through hub.ports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_exponential, wait_fixed, wait_random
from tenacity.wait import wait_base

from hub.bus import EventBus
from hub.errors import ConfigError, ProviderRejected, ProviderUnavailable
from hub.logs import correlated, new_correlation_id
from hub.model import MessageKind, OutboundMessage, TemplateBinding
from hub.policy import Allowed, Draft, IdentityFacts, Refused, decide
from hub.ports import ChannelAdapter
from hub.registry import provider_facts
from hub.send_rate import SharedTokenBucket
from hub.settings import Settings
from hub.store import Store
from hub.store.outbound import HandOff, NewOutbound, Queued, queue_outbound_group
from hub.store.outbox import (
    Accepted,
    OutboxJob,
    outbox_upkeep,
    record_and_claim,
    record_failed,
    record_retry,
    release_claims,
    renew_claim,
)

__all__ = ["Outbox", "binding_from_json", "binding_to_json", "facts_for", "send_plan"]

logger = logging.getLogger(__name__)


def binding_to_json(binding: TemplateBinding | None) -> dict[str, Any] | None:
    if binding is None:
        return None
    return {
        "content_sid": binding.content_sid,
        "content_variables": [list(pair) for pair in binding.content_variables],
        "name": binding.name,
        "language": binding.language,
        "parameters": list(binding.parameters),
    }


def binding_from_json(data: Mapping[str, Any] | None) -> TemplateBinding | None:
    if not data:
        return None
    return TemplateBinding(
        content_sid=data.get("content_sid"),
        content_variables=tuple((str(k), str(v)) for k, v in data.get("content_variables") or ()),
        name=data.get("name"),
        language=data.get("language"),
        parameters=tuple(str(p) for p in data.get("parameters") or ()),
    )


def send_plan(
    decision: Allowed,
    *,
    template: str | None = None,
    version: int | None = None,
    binding: TemplateBinding | None = None,
) -> dict[str, Any]:
    """What is stored beside a queued message: the policy's decision and the template it came from."""
    return {
        "decision": decision.to_json(),
        "template": {"name": template, "version": version} if template else None,
        "binding": binding_to_json(binding),
    }


def facts_for(identity: Any, provider: str) -> IdentityFacts:
    """The policy's view of a stored identity (``provider`` from its channel account), with the media rules the
    provider's adapter declares."""
    facts = IdentityFacts(
        channel=identity.channel,
        provider=provider,
        first_inbound_at=identity.first_inbound_at,
        last_inbound_at=identity.last_inbound_at,
        subscription=identity.subscription,
        welcome_sent=identity.welcome_sent,
    )
    declared = provider_facts().get(facts.provider_name)
    return facts if declared is None or declared.media is None else replace(facts, media=declared.media)


_MAX_GROUP = 256  # accepted sends in one transaction at most
# On PostgreSQL the writer's statements wait for the server, not the event loop's thread, so a larger group
# stalls nothing; it matters at the end of a burst, when acceptances queued behind one slow transaction (each
# round trip waits a turn of a loop serving a hundred sends) are stored in one transaction instead of four
# (bench/README, Outbound). On SQLite they run on the loop's thread (ADR 0016): a group stays small.
_MAX_ACCEPTED_POSTGRESQL = 1024
_RUN = 8  # rows of one conversation a worker claims together and sends one after another (ADR 0015)
_HEALTH_EVERY = timedelta(seconds=1)  # account_health.last_send_at is stamped about this often
_LONG_AGO = datetime.min.replace(tzinfo=UTC)


class _wait_retry_after_or(wait_base):
    """The provider's Retry-After when it gave one, never less than the backoff schedule."""

    def __init__(self, backoff: wait_base) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self.backoff(retry_state)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(exc, ProviderUnavailable) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return float(delay)


@dataclass(slots=True)
class _Attempted:
    """How one attempt ended, as far as the rest of its conversation's run cares."""

    stored: asyncio.Future[None] | None = None  # the provider accepted it: completes once that is stored
    retrying: bool = False  # a transient failure: the row waits for its next attempt, and so do the rows behind it
    lost: bool = False  # its lease ran out while it waited and another claim has it: so may the rows behind it


def _runs(jobs: Sequence[OutboxJob]) -> list[list[OutboxJob]]:
    """Claimed rows (ordered by id) grouped per conversation, in the order of each run's first row."""
    runs: dict[int, list[OutboxJob]] = {}
    for job in jobs:
        runs.setdefault(job.conversation_id, []).append(job)
    return sorted(runs.values(), key=lambda run: run[0].id)


class _Lane:
    """One delivery worker's runs: those waiting to start (claimed by the worker, or handed to it by the queueing
    transaction) and those in flight, at most ``batch`` at once. ``changed`` is set whenever a run is done."""

    def __init__(
        self,
        worker: str,
        batch: int,
        send: Callable[[list[OutboxJob], float], Coroutine[Any, Any, int]],
        stopping: Callable[[], bool],
        done: Callable[[_Lane, list[OutboxJob]], None],
    ) -> None:
        self.worker = worker
        self.ready: deque[tuple[list[OutboxJob], float]] = deque()
        self.in_flight: dict[asyncio.Task[Any], list[OutboxJob]] = {}
        self.changed = asyncio.Event()
        self.closed = False  # the worker stopped taking runs
        self._batch = batch
        self._send = send
        self._stopping = stopping
        self._done = done

    @property
    def held(self) -> int:
        return len(self.ready) + len(self.in_flight)

    @property
    def room(self) -> int:
        """How many more runs the lane holds: two batches' worth in all (one in flight, one ready)."""
        return max(0, 2 * self._batch - self.held)

    def take(self, runs: Iterable[list[OutboxJob]], deadline: float) -> None:
        """Queue ``runs`` (claimed by this worker or handed to it) and start what the lane has room for."""
        self.ready.extend((run, deadline) for run in runs)
        self.launch()

    def launch(self) -> None:
        while self.ready and len(self.in_flight) < self._batch and not self._stopping():
            run, deadline = self.ready.popleft()
            task = asyncio.create_task(self._send(run, deadline))
            self.in_flight[task] = run
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        run = self.in_flight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("outbox worker %s: storing an outcome failed", self.worker, exc_info=task.exception())
        self.launch()
        self.changed.set()
        if run is not None:
            self._done(self, run)

    def conversations(self) -> set[int]:
        """The conversations of the runs this lane holds."""
        return {run[0].conversation_id for run, _ in self.ready} | {
            run[0].conversation_id for run in self.in_flight.values()
        }


class Outbox:
    """The delivery workers of one hub process; several processes may share one database."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        adapters: Mapping[str, ChannelAdapter],
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        name: str | None = None,
    ) -> None:
        config = settings.outbox
        for key in ("workers", "max_attempts", "batch"):
            if getattr(config, key) < 1:
                raise ConfigError(f"outbox.{key}", "must be at least 1")
        for key in ("rate_limit", "lease_seconds", "poll_seconds"):
            if getattr(config, key) <= 0:
                raise ConfigError(f"outbox.{key}", "must be positive")
        self._store = store
        self._most_accepted = _MAX_ACCEPTED_POSTGRESQL if store.dialect == "postgresql" else _MAX_GROUP
        self._bus = bus
        self._adapters = adapters
        self._settings = settings
        self._clock = clock
        self.name = name or f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._lease = timedelta(seconds=config.lease_seconds)
        self._providers = {a.id: a.provider for a in settings.accounts}
        self._echoing = frozenset(a.id for a in settings.accounts if a.echoes_own_sends)
        # one bucket per account shared by every process on the database (hub/send_rate.py, docs/scaling.md)
        self._buckets = {
            a.id: SharedTokenBucket(store, a.id, settings.account_rate_limits.get(a.id, config.rate_limit))
            for a in settings.accounts
        }
        # tenacity's strategies give the schedule; the attempt count lives in the database
        self._schedule = AsyncRetrying(
            wait=_wait_retry_after_or(
                wait_exponential(multiplier=config.base_backoff, max=config.max_backoff)
                + wait_random(0, config.base_backoff)
            ),
            stop=stop_after_attempt(config.max_attempts),
            reraise=True,
        )
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lanes: list[_Lane] = []  # one per running worker: its runs claimed or handed, and in flight
        # conversations where a reply was queued behind a run a lane holds: when that run is done, its lane
        # claims at once (after the run's acceptance, in the writer), not at the next wake or poll
        self._behind: set[int] = set()
        self._follow_ups: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._accepted: list[tuple[Accepted, asyncio.Future[None]]] = []
        # (worker, runs wanted, rows wanted behind each run's first, answer)
        self._claims: list[tuple[str, int, int, asyncio.Future[list[list[OutboxJob]]]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._incoming: list[tuple[NewOutbound, datetime, asyncio.Future[Queued | BaseException]]] = []
        self._acceptor: asyncio.Task[None] | None = None
        self._health_at: dict[str, datetime] = {}
        self._upkeeping: asyncio.Task[None] | None = None
        # PostgreSQL: acceptances are stored apart from claims, one statement each (see _write)
        self._accept_apart = store.dialect == "postgresql"
        self.sent = 0  # provider calls that succeeded
        self.recorded = 0  # acceptances durably stored
        self.failed = 0
        self.retried = 0

    # ------------------------------------------------------------ accepting

    async def accept(self, send: NewOutbound, now: datetime) -> Queued:
        """Queue one accepted send durably; returns once committed. Concurrent callers share one
        transaction (group commit, each in its own savepoint), as ingest does for webhooks."""
        future: asyncio.Future[Queued | BaseException] = asyncio.get_running_loop().create_future()
        self._incoming.append((send, now, future))
        if self._acceptor is None or self._acceptor.done():
            self._acceptor = asyncio.create_task(self._commit_incoming(), name="outbox-acceptor")
        result = await asyncio.shield(future)
        if isinstance(result, BaseException):
            raise result
        if result.handed is None:  # a claim must find it; one handed to a worker is on its way already
            self.wake()
        return result

    async def _commit_incoming(self) -> None:
        """Queue the sends that arrived, a group per transaction. While workers run, the group's replies that
        are heads of their conversations are claimed in that transaction and handed to the workers' lanes
        (ADR 0041): no claim has to be woken, wait for the writer and find them."""
        while self._incoming:
            batch, self._incoming = self._incoming[:_MAX_GROUP], self._incoming[_MAX_GROUP:]
            room = self._room()
            hand_off = HandOff(worker=self.name, lease=self._lease, limit=room) if room else None
            try:
                # one clock reading per group: the latest of the callers' (they arrived within one commit)
                results = await queue_outbound_group(
                    self._store, [send for send, _, _ in batch], max(n for _, n, _ in batch), hand_off=hand_off
                )
            except Exception as exc:  # the commit failed: none of them was accepted
                for _, _, future in batch:
                    future.set_result(exc)
                continue
            handed = [r.handed for r in results if isinstance(r, Queued) and r.handed is not None]
            if handed:
                await self._hand(handed)
            waiting = {r.message.conversation_id for r in results if isinstance(r, Queued) and r.handed is None}
            if waiting and self._lanes:
                self._behind |= waiting & {c for lane in self._lanes for c in lane.conversations()}
            for (_, _, future), result in zip(batch, results, strict=True):
                future.set_result(result)

    # ------------------------------------------------------------ lifecycle

    def wake(self) -> None:
        """A send was queued: idle workers look now instead of at their next poll."""
        self._wake.set()

    async def start(self) -> None:
        for index in range(self._settings.outbox.workers):
            self._tasks.append(asyncio.create_task(self._run(f"{self.name}/{index}"), name=f"outbox-{index}"))

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop claiming, give back the runs claimed but not started, and let the runs in hand finish for up
        to ``grace`` seconds; a send still in flight then is cancelled, and its row is resumed after the lease by
        any worker."""
        self._stopping = True
        self._wake.set()
        for lane in self._lanes:  # workers waiting for a send to finish look up now
            lane.changed.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for task in self._tasks:
                with suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        if self._follow_ups:  # their claims are given back: the lanes are closed
            await asyncio.gather(*self._follow_ups, return_exceptions=True)
        self._behind.clear()
        if self._writer is not None:
            await self._writer  # acceptances already in hand are always stored
        await self._upkept()
        self._stopping = False

    async def _run(self, worker: str) -> None:
        """Keep up to ``outbox.batch`` runs in flight and up to one batch more claimed ahead, asking
        for more as soon as there is room (one claim outstanding per worker; the writer serves every
        waiting worker with one statement, in the transaction that stores the acceptances). A run is a
        conversation's due rows, up to ``_RUN``, claimed together and sent one after another, each as
        soon as the provider accepted the one before (ADR 0015): a conversation's next message need not
        wait for the writer to store the previous one and claim it. A finished run is followed by the
        next one at once, and the claim's round trips overlap with sends. Replies claimed where they were
        queued (ADR 0041) are handed to a worker's lane and sent as its own runs."""
        poll = self._settings.outbox.poll_seconds
        batch = self._settings.outbox.batch
        lane = _Lane(worker, batch, self._send_run, lambda: self._stopping, self._run_done)
        self._lanes.append(lane)
        try:
            while not self._stopping:
                asked = lane.room
                if not asked:  # enough in hand: wait until a run is done
                    lane.changed.clear()
                    await lane.changed.wait()
                    continue
                try:
                    runs = await self._claim(worker, asked, follow=_RUN - 1)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database may be away for a moment; try again after a poll
                    logger.exception("outbox worker %s: claiming failed", worker)
                    runs = []
                lane.take(runs, self._run_deadline())
                if len(runs) == asked:  # there may be more due: ask again at once
                    continue
                if lane.in_flight:
                    # nothing more due now: claim again once a run of ours is done, in the transaction that
                    # stores its acceptances (which may free the next message of its conversation), not in
                    # a transaction of its own that finds nothing (on PostgreSQL under load such a claim held
                    # the writer, and the acceptances queued behind it, for 100 ms)
                    lane.changed.clear()
                    await lane.changed.wait()
                    continue
                if self._stopping:
                    break
                self._wake.clear()
                with suppress(TimeoutError):
                    async with asyncio.timeout(poll):  # not wait_for: see Router._loop
                        await self._wake.wait()
            lane.closed = True  # hand-offs from now on go to another lane, or back to the table
            if lane.ready:  # stopping: runs claimed but not started go back now, not when their lease runs out
                rows = [job.id for run, _ in lane.ready for job in run]
                lane.ready.clear()
                await release_claims(self._store, rows, worker=self.name)
            while lane.in_flight:  # stopping: the runs in hand are sent (stop() cancels us, and them, after its grace)
                lane.changed.clear()
                await lane.changed.wait()
        finally:
            lane.closed = True
            self._lanes.remove(lane)
            for task in lane.in_flight:
                task.cancel()

    def _room(self) -> int:
        """How many runs the running workers' lanes can take now (0 when none run or they are stopping)."""
        if self._stopping:
            return 0
        return sum(lane.room for lane in self._lanes if not lane.closed)

    async def _hand(self, jobs: list[OutboxJob]) -> None:
        """Rows claimed where they were queued: each a run of its own in the least busy lane. With no lane
        open (stopping meanwhile) they go back to the table at once, not when their lease runs out."""
        deadline = self._run_deadline()
        lanes = [lane for lane in self._lanes if not lane.closed]
        if self._stopping or not lanes:
            await release_claims(self._store, [job.id for job in jobs], worker=self.name)
            return
        for job in jobs:
            lane = min(lanes, key=lambda candidate: candidate.held)
            lane.take([[job]], deadline)

    def _run_done(self, lane: _Lane, run: list[OutboxJob]) -> None:
        """A run is done. If a reply was queued behind it meanwhile, its lane claims now: the claim reaches the
        writer after the run's acceptance and sees it, so the reply is due. (The worker may be idle, waiting for
        a wake, when the run was handed to it; or its own claim, begun before the acceptance, found nothing.)"""
        conversation = run[0].conversation_id
        if conversation not in self._behind:
            return
        self._behind.discard(conversation)
        if self._stopping or lane.closed:
            return
        task = asyncio.create_task(self._follow_up(lane), name="outbox-follow-up")
        self._follow_ups.add(task)
        task.add_done_callback(self._follow_ups.discard)

    async def _follow_up(self, lane: _Lane) -> None:
        try:
            runs = await self._claim(lane.worker, max(1, lane.room), follow=_RUN - 1)
        except Exception:  # the next claim or poll finds them
            logger.exception("outbox worker %s: claiming failed", lane.worker)
            return
        if self._stopping or lane.closed:
            await release_claims(self._store, [job.id for run in runs for job in run], worker=self.name)
            return
        lane.take(runs, self._run_deadline())

    def _run_deadline(self) -> float:
        """When a run claimed now stops sending: the rows behind a run's first are sent only while their lease
        has well over half to go (a monotonic time)."""
        return time.monotonic() + self._lease.total_seconds() / 2

    async def _send_run(self, run: list[OutboxJob], deadline: float, *, settle: bool = False) -> int:
        """A conversation's claimed rows in order, each once the provider has taken the one before. A
        transient failure gives the rest back unattempted: they must not overtake the row that waits.
        ``settle``: return only once every outcome is stored. Returns how many rows were attempted."""
        stored: list[asyncio.Future[None]] = []
        attempted = 0
        for index, job in enumerate(run):
            if index and (self._stopping or time.monotonic() > deadline):
                await release_claims(self._store, [j.id for j in run[index:]], worker=self.name)
                break
            outcome = await self._attempt(job)
            attempted += 1
            if outcome.lost:
                break  # the rows behind it are leased as it was: theirs run out, or another claim has them
            if outcome.stored is not None:
                stored.append(outcome.stored)
            if outcome.retrying:
                await release_claims(self._store, [j.id for j in run[index + 1 :]], worker=self.name)
                break
        if settle and stored:
            await asyncio.shield(asyncio.gather(*stored))
        return attempted

    async def run_once(self, worker: str | None = None) -> int:
        """Claim one batch of due rows and deliver them; returns how many were handled (every outcome
        is stored when this returns)."""
        worker = worker or self.name
        runs = await self._claim(worker, self._settings.outbox.batch)
        # runs only hold one row unless workers of this process asked for longer ones in the same transaction
        deadline = self._run_deadline()
        handled = sum(await asyncio.gather(*(self._send_run(run, deadline, settle=True) for run in runs)))
        await self._upkept()
        return handled

    async def drain(self, *, max_rounds: int = 1000) -> int:
        """Deliver until nothing is due at the clock's now (tests, the CLI, the bench)."""
        total = 0
        for _ in range(max_rounds):
            handled = await self.run_once()
            if not handled:
                return total
            total += handled
        return total

    # ------------------------------------------------------------- delivery

    def plan(self, job: OutboxJob, now: datetime) -> tuple[Allowed | Refused, OutboundMessage | None]:
        """Ask the policy again with the identity as it is now; build the provider call."""
        provider = self._providers.get(job.account_id, job.channel.value)
        binding = binding_from_json(job.binding)
        draft = Draft(
            text=job.text,
            attachments=job.attachments,
            template=job.template_name,
            binding=binding,
            tag=job.tag,
            automated=job.automated,
        )
        decision = decide(facts_for(job, provider), draft, now)
        if isinstance(decision, Refused):
            return decision, None
        use_binding = decision.use_template_binding
        kind = job.kind
        if kind is MessageKind.TEMPLATE:
            kind = MessageKind.TEMPLATE if use_binding else MessageKind.TEXT
            if job.attachments and not use_binding:
                kind = job.attachments[0].kind
        outbound = OutboundMessage(
            account_id=job.account_id,
            recipient_id=job.recipient_id,
            kind=kind,
            text=None if use_binding else job.text,
            attachments=() if use_binding else job.attachments,
            messaging_type=decision.messaging_type,
            tag=decision.tag,
            template=binding if use_binding else None,
            idempotency_key=f"channelhub-outbox-{job.id}",
            buttons=() if use_binding else job.buttons,
        )
        return decision, outbound

    async def deliver(self, job: OutboxJob) -> None:
        """One attempt for one claimed row; every outcome is stored (and published) before this returns."""
        stored = (await self._attempt(job)).stored
        if stored is not None:
            await asyncio.shield(stored)
        await self._upkept()

    async def _attempt(self, job: OutboxJob) -> _Attempted:
        """One attempt. Failures are stored before this returns; an acceptance is handed to the writer
        and ``stored`` completes once it is stored (the writer publishes its events). Its log lines carry
        one correlation id, ``send-<row>-…``."""
        with correlated(new_correlation_id(f"send-{job.id}")):
            return await self._attempt_once(job)

    async def _attempt_once(self, job: OutboxJob) -> _Attempted:
        now = self._clock()
        if job.provider_message_id:
            # accepted before a crash, recorded, but not marked done: never send it again
            return _Attempted(self._accepted_by_provider(job, job.provider_message_id, job.sent_at or now))
        decision, outbound = self.plan(job, now)
        if isinstance(decision, Refused) or outbound is None:
            assert isinstance(decision, Refused)
            logger.info("outbox %s stopped by the policy: %s", job.id, decision.rule)
            self.failed += 1
            self._announce(
                await record_failed(
                    self._store, job, code=decision.rule, reason=decision.message, now=now, provider_error=False
                )
            )
            return _Attempted()
        adapter = self._adapters.get(job.account_id)
        if adapter is None:
            return await self._retry(job, ProviderUnavailable(f"no adapter for account {job.account_id}"))
        bucket = self._buckets.get(job.account_id)
        if bucket is not None and not bucket.try_acquire():
            await bucket.acquire()
            # the wait for the shared send rate may outlast the claim's lease, and a row whose lease ran out may
            # be claimed and sent by another worker: send only with the claim renewed, never on a lost one
            renewed = await renew_claim(
                self._store, job.id, worker=self.name, attempts=job.attempts, now=self._clock(), lease=self._lease
            )
            if not renewed:
                logger.warning("outbox %s: the lease ran out while waiting for the send rate; not sent here", job.id)
                return _Attempted(lost=True)
        try:
            receipt = await adapter.send(outbound)
        except ProviderRejected as exc:
            self.failed += 1
            logger.info("outbox %s refused by the provider: %s", job.id, exc.provider_code)
            self._announce(
                await record_failed(self._store, job, code=exc.provider_code, reason=exc.reason, now=self._clock())
            )
            return _Attempted()
        except ProviderUnavailable as exc:
            return await self._retry(job, exc)
        except Exception as exc:  # an adapter bug must not lose the row: treat it as transient
            logger.exception("outbox %s: unexpected error from the adapter", job.id)
            return await self._retry(job, ProviderUnavailable(f"unexpected error: {type(exc).__name__}"))
        self.sent += 1
        logger.debug("outbox %s accepted by the provider", job.id)
        return _Attempted(self._accepted_by_provider(job, receipt.provider_message_id, receipt.accepted_at))

    # --------------------------------------------------------------- writer

    def _accepted_by_provider(
        self, job: OutboxJob, provider_message_id: str, accepted_at: datetime
    ) -> asyncio.Future[None]:
        """The first thing after the provider said yes: hand the id to the writer, which stores it in
        its next transaction (group commit: every acceptance that arrived meanwhile, and the claims
        waiting, share one commit; never a timer). The writer is its own task, so a worker cancelled
        meanwhile (shutdown) does not stop its acceptance from being stored."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._accepted.append(
            (
                Accepted(
                    job=job,
                    provider_message_id=provider_message_id,
                    accepted_at=accepted_at,
                    echoed=job.account_id in self._echoing,
                ),
                future,
            )
        )
        self._kick_writer()
        return future

    async def _claim(self, worker: str, limit: int, *, follow: int = 0) -> list[list[OutboxJob]]:
        """Up to ``limit`` runs for ``worker`` (each a conversation's oldest due row and, with ``follow``, up
        to that many due rows behind it), claimed in the writer's next transaction (with the acceptances
        queued by then)."""
        future: asyncio.Future[list[list[OutboxJob]]] = asyncio.get_running_loop().create_future()
        self._claims.append((worker, limit, follow, future))
        self._kick_writer()
        return await future

    def _kick_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="outbox-writer")

    async def _write(self) -> None:
        claims_first = False
        while self._accepted or self._claims:
            claims, self._claims = [c for c in self._claims if not c[3].done()], []
            if claims_first and claims:  # set aside last time: they go before any later acceptances
                batch: list[tuple[Accepted, asyncio.Future[None]]] = []
            else:
                batch, self._accepted = self._accepted[: self._most_accepted], self._accepted[self._most_accepted :]
            claims_first = False
            if batch and claims and self._accept_apart:
                # PostgreSQL: acceptances alone are one statement that commits on its own, one round trip
                # instead of a transaction's three (each waits a turn of a loop busy with a hundred sends), and
                # their workers hear at once; the claims go in the next transaction (ADR 0019)
                self._claims[:0] = claims
                claims, claims_first = [], True
            follow = max((f for _, _, f, _ in claims), default=0)
            try:
                events, jobs = await self._store_and_claim(
                    [item for item, _ in batch], sum(n for _, n, _, _ in claims), follow=follow
                )
            except Exception as exc:
                if not batch:
                    for _, _, _, claimed in claims:
                        if not claimed.done():
                            claimed.set_exception(exc)
                    continue
                # one bad row must not sink the others: store them one by one, then claim again
                logger.exception("outbox: storing %d acceptances together failed; storing them one by one", len(batch))
                self._claims[:0] = claims
                for item, future in batch:
                    try:
                        events, _ = await self._store_and_claim([item], 0)
                    except Exception as one:
                        future.set_exception(one)
                    else:
                        self.recorded += 1
                        future.set_result(None)
                        self._announce(events)
                continue
            self.recorded += len(batch)
            for _, future in batch:
                future.set_result(None)
            self._announce(events)
            # one claim for every worker waiting: runs in claim order, each worker up to its limit
            runs = _runs(jobs)
            start = 0
            for worker, limit, _, claimed in claims:
                got, start = runs[start : start + limit], start + limit
                if claimed.done():  # its worker was cancelled meanwhile: the rows wait for their lease
                    rows = sum(len(run) for run in got)
                    logger.info("outbox worker %s stopped; %d claimed rows resume after the lease", worker, rows)
                else:
                    claimed.set_result(got)
            if batch:
                self._upkeep_if_due({item.job.account_id for item, _ in batch})

    async def _store_and_claim(
        self, items: list[Accepted], limit: int, *, follow: int = 0
    ) -> tuple[list[Any], list[OutboxJob]]:
        async for attempt in AsyncRetrying(stop=stop_after_attempt(5), wait=wait_fixed(0.2), reraise=True):
            with attempt:
                return await record_and_claim(
                    self._store, items, limit, worker=self.name, now=self._clock(), lease=self._lease, follow=follow
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _upkeep_if_due(self, accounts: set[str]) -> None:
        """About once a second for an account that sends: ``outbox_upkeep``, in a task of its own, so that the
        writer (and the acceptances behind it) does not wait for it."""
        now = self._clock()
        stale = sorted(a for a in accounts if now - self._health_at.get(a, _LONG_AGO) >= _HEALTH_EVERY)
        if stale and (self._upkeeping is None or self._upkeeping.done()):
            self._health_at.update(dict.fromkeys(stale, now))
            self._upkeeping = asyncio.create_task(self._upkeep(stale, now), name="outbox-upkeep")

    async def _upkept(self) -> None:
        """Callers that return once every outcome is stored (``run_once``, ``deliver``) also wait for the upkeep
        those outcomes started: nothing of theirs is left running when they return."""
        if self._upkeeping is not None:
            await asyncio.shield(self._upkeeping)

    async def _upkeep(self, accounts: list[str], now: datetime) -> None:
        try:
            events = await outbox_upkeep(self._store, accounts, now=now)
        except Exception:  # account health is a stamp, the rest waits: the next acceptances try again
            logger.exception("outbox: the upkeep of %s failed", ", ".join(accounts))
            for account in accounts:
                self._health_at.pop(account, None)
            return
        self._announce(events)

    async def _retry(self, job: OutboxJob, exc: ProviderUnavailable) -> _Attempted:
        now = self._clock()
        state = RetryCallState(self._schedule, None, (), {})
        state.attempt_number = job.attempts
        state.set_exception((type(exc), exc, None))
        code = exc.provider_code or "unavailable"
        if self._schedule.stop(state):
            self.failed += 1
            reason = f"the provider stayed unavailable after {job.attempts} attempts ({exc.reason})"
            logger.warning("outbox %s: giving up after %d attempts", job.id, job.attempts)
            self._announce(await record_failed(self._store, job, code=code, reason=reason, now=now))
            return _Attempted()
        delay = self._schedule.wait(state)
        self.retried += 1
        logger.info("outbox %s: transient failure (%s), next attempt in %.2fs", job.id, code, delay)
        await record_retry(
            self._store, job, next_attempt_at=now + timedelta(seconds=delay), error=f"{code}: {exc.reason}", now=now
        )
        return _Attempted(retrying=True)

    def _announce(self, events: list[Any]) -> None:
        """Publish what was stored. It is durable already, and a failure here must not stop the writer: the
        workers would wait for ever for the acceptances it holds. Consoles then see the new states when they next
        read the conversation."""
        try:
            self._bus.publish_all(events)
        except Exception:
            logger.exception("outbox: stored %d changes but could not publish them", len(events))
