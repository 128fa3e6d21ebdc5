"""The composition root: the one place that builds the hub's parts and wires them by hand.

``build_hub(settings)`` gives a ``hub.app.Hub`` that nobody has started; the
HTTP server (hub/api/server.py), the tests and the benchmarks start it. What a
caller passes in (a store shared by a test, a fake clock, an HTTP session, fake
adapters) is used as it is and left for the caller to close; what is built here
the hub closes. Each part receives what it needs through its constructor: the
ingest and the router get the notifier's journal, so that their events are
numbered for the consoles in the transaction that made the change.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from hub.app import Hub
from hub.bots.runner import BotRunner
from hub.bus import EventBus
from hub.errors import ConfigError
from hub.ingest import Ingestor
from hub.media import BlobStore, LocalBlobStore, open_blob_store
from hub.media_fetch import MediaFetcher
from hub.media_send import file_opener, give_files
from hub.metrics import HubMetrics
from hub.notifier import Notifier
from hub.outbox import Outbox
from hub.ports import ChannelAdapter
from hub.registry import build_adapter
from hub.router import Router
from hub.settings import Settings
from hub.store import Store
from hub.usecases import Parts
from hub.webhooks_out import WebhookDispatcher

__all__ = ["build_hub", "build_store", "command_parts", "utc_now"]

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The hub's clock unless a test brings its own."""
    return datetime.now(UTC)


def build_store(settings: Settings) -> Store:
    """The configured database (not migrated yet): for the hub, and for commands that need nothing else."""
    return Store(settings.database_url, pool_size=settings.database_pool_size)


@asynccontextmanager
async def command_parts(settings: Settings, bus: EventBus | None = None) -> AsyncIterator[Parts]:
    """The parts a command runs use cases with: the database (migrated, closed on the way out) and a bus of its
    own; no router and no outbox, as a command runs outside the hub's process."""
    store = build_store(settings)
    try:
        await store.migrate()
        yield Parts(settings=settings, store=store, bus=bus or EventBus(), clock=utc_now)
    finally:
        await store.close()


def _blob_store(settings: Settings) -> BlobStore:
    """The configured blob store; a PostgreSQL hub that names none keeps media in ``./media`` (one process
    only: several must share a directory or a bucket, so the hub says so in its log)."""
    try:
        return open_blob_store(settings)
    except ConfigError:
        logger.warning(
            "[media] path or url is not set: attachments are kept in ./media; "
            "set one that every hub process shares when running several"
        )
        return LocalBlobStore(Path("media"))


def build_hub(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Callable[[], datetime] | None = None,
    http: aiohttp.ClientSession | None = None,
    adapters: Mapping[str, ChannelAdapter] | None = None,
    blobs: BlobStore | None = None,
) -> Hub:
    """Every part of one hub process, wired; start it with ``await hub.start()`` (or ``async with hub``).

    Without ``adapters``, one is built per configured account when the hub starts, on ``http`` or on an
    HTTP session the hub opens then (it needs a running event loop, which building does not).
    """
    owns_store = store is None
    store = store if store is not None else build_store(settings)
    clock = clock or utc_now
    bus = EventBus()
    built: dict[str, ChannelAdapter] = dict(adapters) if adapters is not None else {}
    if adapters is None and http is not None:
        built.update({account.id: build_adapter(account, http) for account in settings.accounts})
    notifier = Notifier(store, bus, settings, clock=clock)
    ingestor = Ingestor(store, bus, settings.accounts, clock=clock, journal=notifier.journal)
    router = Router(store, bus, settings, clock=clock, journal=notifier.journal)
    outbox = Outbox(store, bus, built, settings, clock=clock)
    metrics = HubMetrics()  # counts what the bus carries and what the ingest and outbox report
    bus.listen(metrics.on_event)
    ingestor.on_group = metrics.observe_ingest_group
    metrics.watch_outbox(outbox)
    metrics.watch_ingestor(ingestor)
    blobs = blobs if blobs is not None else _blob_store(settings)
    media = MediaFetcher(store, bus, built, blobs, settings, clock=clock)
    bots = BotRunner(settings.bots, tick_seconds=settings.routing.tick_seconds)
    hub = Hub(
        settings=settings,
        store=store,
        clock=clock,
        http=http,
        adapters=built,
        bus=bus,
        notifier=notifier,
        router=router,
        ingestor=ingestor,
        outbox=outbox,
        blobs=blobs,
        media=media,
        owns_store=owns_store,
        build_adapters=adapters is None and http is None,
        metrics=metrics,
        bots=bots,
        webhooks_out=WebhookDispatcher(store, bus, settings, clock=clock),
    )
    # adapters that upload an agent's file to their provider read it from the blob store (hub/media_send.py)
    hub.configure_adapters(give_files(file_opener(store, blobs, clock)))
    return hub
