"""The media fetcher: brings the bytes of customers' attachments into the blob store, after the webhook was
acknowledged, durably.

Each attachment row is written ``pending`` with its message (hub/store/ingest.py). The fetcher claims due
rows with a lease (hub/store/media.py ``claim_fetches``), asks the account's adapter where the bytes are now
(``hub.ports.MediaSource.locate_media``: WhatsApp Cloud's two-step lookup with the token, Twilio's basic auth,
Messenger's and Viber's CDN links), streams them into the blob store (identical bytes are kept once, under
their SHA-256), sniffs their real type, and for images keeps the dimensions and a thumbnail. A transient
failure (5xx, 429, a timeout, a refused connection, a blob store that cannot be used now) is tried again later,
with exponential back-off; a
permanent one (404, 410, a provider's refusal, a file past ``[media] max_bytes``) marks the row ``failed``
with the reason. A file whose bytes are not of the image, audio or video family the provider named is kept as
what the bytes are (``hub.media.kind_of_bytes``: a PDF sent as an image is a ``file``). A fetch cut short by a
stop or a crash is taken up again when its lease runs out. Every change is published as ``AttachmentChanged``
so consoles update live.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import aiohttp

from hub._tasks import cancel_and_wait
from hub.bus import EventBus
from hub.errors import ProviderRejected, ProviderUnavailable
from hub.events import AttachmentChanged, MessageCreated, unwrapped
from hub.media import (
    BlobStore,
    BlobTooLarge,
    ImageRefused,
    StoreUnavailable,
    describe_stored_image,
    kind_of_bytes,
    refined_mime,
)
from hub.media.sniff import UNKNOWN
from hub.ports import ChannelAdapter, MediaLocation, MediaReference, MediaSource
from hub.settings import Settings
from hub.store import Store
from hub.store.media import (
    FetchJob,
    FetchOutcome,
    ImageFacts,
    StoredFile,
    any_fetch_due,
    claim_fetches,
    record_and_claim_fetches,
)

__all__ = ["FetchPolicy", "MediaFetcher"]

logger = logging.getLogger(__name__)

_TIMEOUT = aiohttp.ClientTimeout(total=300, connect=10, sock_read=60)


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchPolicy:
    """How hard the fetcher tries: ``max_attempts`` claims per row, back-off doubling from ``base_backoff``
    seconds up to ``max_backoff``; ``lease`` seconds before another worker may take a claimed row over;
    ``batch`` downloads in flight at once; the retention sweep every ``sweep_seconds``, and the walk for orphan
    blobs at start and then every ``orphan_walk_seconds``."""

    max_attempts: int = 10
    base_backoff: float = 2.0
    max_backoff: float = 600.0
    lease: float = 300.0
    poll_seconds: float = 2.0
    batch: int = 8
    sweep_seconds: float = 3600.0
    orphan_walk_seconds: float = 86400.0


class _Transient(Exception):
    """Try again later."""


class _Permanent(Exception):
    """Trying again will not help: the row fails with this reason."""


class MediaFetcher:
    """One hub process's fetch worker. ``start`` opens its HTTP session if the hub brings none."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        adapters: Mapping[str, ChannelAdapter],
        blobs: BlobStore,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        policy: FetchPolicy | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.adapters = adapters
        self.blobs = blobs
        self.settings = settings
        self.clock = clock
        self.policy = policy or FetchPolicy()
        self._http: aiohttp.ClientSession | None = None
        self._owns_http = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._locates: dict[type, bool] = {}  # adapter class: whether it is a MediaSource

    async def start(self, http: aiohttp.ClientSession | None) -> None:
        """Begin fetching (on ``http``, or a session of its own), woken by every customer's message with
        attachments."""
        if http is None:
            self._http = aiohttp.ClientSession(timeout=_TIMEOUT)
            self._owns_http = True
        else:
            self._http = http
        self._tasks = [
            asyncio.create_task(self._run(), name="media-fetch"),
            asyncio.create_task(self._listen(), name="media-fetch-wake"),
            asyncio.create_task(self._retention(), name="media-retention"),
        ]

    async def stop(self) -> None:
        """Stop at once: a fetch cut short stays leased and is taken up again when its lease runs out."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._owns_http and self._http is not None:
            await self._http.close()
        self._http = None
        self._owns_http = False

    def kick(self) -> None:
        """Look for due rows now (a new message, an admin's retry)."""
        self._wake.set()

    async def _listen(self) -> None:
        async with self.bus.subscribe() as queue:
            while True:
                event = unwrapped(await queue.get())
                if isinstance(event, MessageCreated) and event.with_attachments:
                    self._wake.set()

    async def _retention(self) -> None:
        """The retention sweep (``[media] keep_days``, unsent uploads) at start and then every ``sweep_seconds``;
        the orphan walk (``drop_orphan_blobs``) with the first sweep and then every ``orphan_walk_seconds`` (a
        day: the store may hold millions of blobs), or at the next sweep when the store cut a walk short."""
        from hub.usecases import Parts
        from hub.usecases.media import drop_orphan_blobs, sweep_media

        parts = Parts(settings=self.settings, store=self.store, bus=self.bus, clock=self.clock)
        next_walk = time.monotonic()
        while True:
            try:
                removed = await sweep_media(parts, self.blobs)
                if removed:
                    logger.info("media retention removed %s blobs", removed)
            except Exception:
                logger.exception("media retention sweep failed")
            if time.monotonic() >= next_walk:
                try:
                    orphans = await drop_orphan_blobs(parts, self.blobs)
                except Exception:
                    logger.exception("media orphan walk failed")
                    orphans = None
                if orphans is not None:
                    next_walk = time.monotonic() + self.policy.orphan_walk_seconds
                    if orphans:
                        logger.info("media orphan walk removed %s blobs no row names", orphans)
            await asyncio.sleep(self.policy.sweep_seconds)

    async def _run(self) -> None:
        while True:
            try:
                done = await self.drain()
            except Exception:
                logger.exception("media fetch pass failed")
                done = 0
            if done:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.policy.poll_seconds)
            self._wake.clear()

    async def drain(self) -> int:
        """Fetch while rows are due; how many were fetched. See ``_Pipeline``."""
        return await _Pipeline(self).run()

    def _announce(self, jobs: list[FetchJob], changed: Mapping[int, dict[str, Any]]) -> None:
        """``AttachmentChanged`` for each of ``jobs`` whose row changed state (its JSON in ``changed``)."""
        for job in jobs:
            if job.id in changed:
                self.bus.publish(
                    AttachmentChanged(
                        conversation_id=job.conversation_id, message_id=job.message_id, attachment=changed[job.id]
                    )
                )

    async def fetch(self, job: FetchJob) -> FetchOutcome:
        """Fetch one claimed row: what to record (stored, to retry, failed); never raises for the provider's
        failures."""
        try:
            return await self._fetch(job)
        except _Permanent as exc:
            return self._failed(job, str(exc))
        except (_Transient, ProviderUnavailable, StoreUnavailable, aiohttp.ClientError, TimeoutError) as exc:
            reason = _reason(exc)
            if job.attempts >= self.policy.max_attempts:
                return self._failed(job, f"gave up after {job.attempts} attempts: {reason}")
            delay = min(self.policy.max_backoff, self.policy.base_backoff * 2 ** (job.attempts - 1))
            delay *= random.uniform(0.8, 1.2)
            logger.info("media fetch %s failed (attempt %s), retrying: %s", job.id, job.attempts, reason)
            return FetchOutcome(job.id, retry_at=self.clock() + timedelta(seconds=delay), error=reason)
        except ProviderRejected as exc:
            return self._failed(job, exc.reason)

    async def _fetch(self, job: FetchJob) -> FetchOutcome:
        source = self._source(job.account_id)
        reference = MediaReference(media_id=job.provider_media_id, url=job.provider_url, mime=job.mime)
        if source is not None:
            location = await source.locate_media(reference)
        elif job.provider_url:
            location = MediaLocation(url=job.provider_url)
        else:
            raise _Transient(f"no adapter for account {job.account_id} can fetch this media")
        stored = await self._download(location)
        declared = location.mime or job.mime
        mime = refined_mime(stored.mime, declared=declared, file_name=job.file_name)  # a vCard is more than text
        if mime == UNKNOWN and declared:
            mime = declared.split(";", 1)[0].strip()
        image = await self._describe(stored.key) if mime.startswith("image/") else None
        stored_file = StoredFile(
            key=stored.key,
            size=stored.size,
            mime=mime,
            kind=kind_of_bytes(job.kind, mime),
            file_name=job.file_name,
            image=image,
        )
        return FetchOutcome(job.id, stored=stored_file)

    def _source(self, account_id: str) -> MediaSource | None:
        """The account's adapter if it locates media itself. The check against the runtime protocol is made once
        per adapter class: it costs more than the rest of a fetch's bookkeeping."""
        adapter = self.adapters.get(account_id)
        if adapter is None:
            return None
        kind = type(adapter)
        locates = self._locates.get(kind)
        if locates is None:
            locates = self._locates[kind] = isinstance(adapter, MediaSource)
        return cast(MediaSource, adapter) if locates else None

    async def _download(self, location: MediaLocation) -> _Stored:
        assert self._http is not None, "the fetcher is not started"
        async with self._http.get(location.url, headers=dict(location.headers), timeout=_TIMEOUT) as response:
            if response.status >= 500 or response.status in (408, 425, 429):
                raise _Transient(f"the provider answered HTTP {response.status}")
            if response.status >= 400:
                raise _Permanent(_gone(response.status))
            try:
                # the chunks as they arrive, not joined or cut to a size: no copy on the way
                blob = await self.blobs.put(
                    response.content.iter_any(), max_bytes=self.settings.media.max_bytes, sync=False
                )
            except BlobTooLarge as exc:
                raise _Permanent(f"the file is larger than the hub keeps ([media] max_bytes = {exc.limit})") from None
        return _Stored(key=blob.key, size=blob.size, mime=blob.mime)

    async def _describe(self, key: str) -> ImageFacts | None:
        """Dimensions and a thumbnail (itself a blob); None when the image cannot be decoded (still stored)."""
        try:
            facts = await describe_stored_image(self.blobs, key)
        except ImageRefused as exc:
            logger.info("image %s not described: %s", key, exc.reason)
            return None
        thumbnail = await self.blobs.put(_one(facts.thumbnail), sync=False)
        return ImageFacts(width=facts.width, height=facts.height, thumbnail_key=thumbnail.key)

    def _failed(self, job: FetchJob, reason: str) -> FetchOutcome:
        logger.warning("media fetch %s failed for good: %s", job.id, reason)
        return FetchOutcome(job.id, error=reason, failed=True)


@dataclass(frozen=True, slots=True)
class _Stored:
    key: str
    size: int
    mime: str


class _Pipeline:
    """One drain: a batch of downloads in flight all along, and up to two batches of claimed rows in reserve.

    A finished fetch hands its place to the next reserved row at once (a callback, no database trip between). One
    database round at a time records every outcome that has finished and claims rows to refill the reserve, in one
    transaction; the blob store first syncs the round's files (``BlobStore.sync``: their folders once for the
    round), so no row says ``stored`` before its file would survive a crash. A round starts once a batch has
    finished, or the reserve runs low, or nothing is left running, so a busy fetcher pays about one commit per batch
    and never waits for one before starting the next download. A reserved row not started within a tenth of its
    lease (slow downloads ahead of it) is given back in the next round rather than fetched late. When the drain
    stops (cancelled, or a round fails), fetches still running are cancelled, and in one last transaction what
    finished is recorded and the rest given back (``_cancel``); only if that fails do the rows stay leased until the
    lease runs out."""

    def __init__(self, fetcher: MediaFetcher) -> None:
        self.fetcher = fetcher
        self.width = fetcher.policy.batch
        self.lease = timedelta(seconds=fetcher.policy.lease)
        self.running: dict[asyncio.Task[FetchOutcome], FetchJob] = {}
        self.reserve: collections.deque[tuple[FetchJob, float]] = collections.deque()  # (job, start by: monotonic)
        self.stale: list[FetchJob] = []  # reserved too long: given back in the next round
        self.finished: list[tuple[FetchJob, asyncio.Task[FetchOutcome]]] = []
        self.wake = asyncio.Event()

    async def run(self) -> int:
        fetcher = self.fetcher
        done = 0
        if not await any_fetch_due(fetcher.store, now=fetcher.clock()):
            return done
        try:
            self._take(await claim_fetches(fetcher.store, now=fetcher.clock(), lease=self.lease, limit=self._room()))
            while self.running or self.finished or self.stale:
                while not self._round_due():
                    self.wake.clear()
                    await self.wake.wait()
                finished, self.finished = self.finished, []
                stale, self.stale = self.stale, []
                outcomes = [task.result() for _job, task in finished]
                done += len(outcomes)
                await fetcher.blobs.sync(_kept(outcomes))
                changed, jobs = await record_and_claim_fetches(
                    fetcher.store, outcomes, now=fetcher.clock(), lease=self.lease, limit=self._room(), release=stale
                )
                fetcher._announce([job for job, _task in finished], changed)
                self._take(jobs)
            return done
        finally:
            await self._cancel()

    def _room(self) -> int:
        """How many rows to claim: enough for every place and two batches in reserve."""
        return 3 * self.width - len(self.running) - len(self.reserve)

    def _round_due(self) -> bool:
        if not self.finished and not self.stale:
            return False
        return len(self.finished) >= self.width or len(self.reserve) < self.width or not self.running

    def _take(self, jobs: list[FetchJob]) -> None:
        """Reserve claimed jobs and start as many as there are free places."""
        start_by = time.monotonic() + self.lease.total_seconds() / 10
        self.reserve.extend((job, start_by) for job in jobs)
        while len(self.running) < self.width and self._start_next():
            pass

    def _start_next(self) -> bool:
        """Start the next reserved job still fresh enough; False when the reserve is empty."""
        while self.reserve:
            job, start_by = self.reserve.popleft()
            if time.monotonic() > start_by:
                self.stale.append(job)
                continue
            task = asyncio.create_task(self.fetcher.fetch(job), name=f"media-fetch-{job.id}")
            self.running[task] = job
            task.add_done_callback(self._finish)
            return True
        return False

    def _finish(self, task: asyncio.Task[FetchOutcome]) -> None:
        job = self.running.pop(task)
        if task.cancelled():
            return
        self.finished.append((job, task))
        self._start_next()
        self.wake.set()

    async def _cancel(self) -> None:
        """Stopped (or done): what finished is recorded and what was not fetched is given back, due at once with
        no attempt spent, rather than left leased until the lease runs out (minutes) after a restart."""
        give_back = [job for job, _start_by in self.reserve] + self.stale
        self.reserve.clear()
        self.stale = []
        running = dict(self.running)
        for task in running:
            task.cancel()
        for task, job in running.items():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
            if task.cancelled():
                give_back.append(job)
        finished, self.finished = self.finished, []
        outcomes = [task.result() for _job, task in finished if not task.cancelled() and task.exception() is None]
        if not give_back and not outcomes:
            return
        fetcher = self.fetcher
        try:
            changed, _ = await asyncio.shield(self._record_last(outcomes, give_back))
        except Exception:  # the disk or the database is away: the leases run out and the rows are fetched again then
            logger.warning("media fetcher stopping: %d rows left to their lease", len(give_back), exc_info=True)
            return
        fetcher._announce([job for job, _task in finished], changed)

    async def _record_last(
        self, outcomes: list[FetchOutcome], give_back: list[FetchJob]
    ) -> tuple[dict[int, dict[str, Any]], list[FetchJob]]:
        fetcher = self.fetcher
        await fetcher.blobs.sync(_kept(outcomes))
        return await record_and_claim_fetches(
            fetcher.store, outcomes, now=fetcher.clock(), lease=self.lease, limit=0, release=give_back
        )


def _kept(outcomes: list[FetchOutcome]) -> list[str]:
    """The blob keys that ``outcomes`` record as stored (files and thumbnails): synced before they are."""
    keys = []
    for outcome in outcomes:
        if outcome.stored is not None:
            keys.append(outcome.stored.key)
            if outcome.stored.image is not None and outcome.stored.image.thumbnail_key is not None:
                keys.append(outcome.stored.image.thumbnail_key)
    return keys


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _gone(status: int) -> str:
    if status in (404, 410):
        return f"the provider no longer has this file (HTTP {status})"
    if status in (401, 403):
        return f"the provider refused to hand over this file (HTTP {status})"
    return f"the provider refused the download (HTTP {status})"


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, _Transient) else f"{type(exc).__name__}: {text}"
