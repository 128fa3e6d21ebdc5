"""The running hub: its parts, and the one order in which they start and stop.

``hub.bootstrap.build_hub`` wires a ``Hub``; whoever runs it (the HTTP server,
a test, a benchmark) calls ``start()`` and ``stop()``, or uses it as an async
context manager. Nothing here imports aiohttp's server: the HTTP session the
adapters send through is the only aiohttp object, opened here when the caller
brought none.

Start-up order (stop is the reverse):

1. the database: migrations, then the configured queues and statuses and the demo agents;
2. the HTTP session and the adapters (unless given), then whoever asked to configure them;
3. the notifier, so that it numbers and sends everything that follows; then the outgoing webhooks'
   dispatcher, which seeds the configured integrations before any change is recorded for them;
4. the ingest and the router, which record their events through the notifier's journal;
5. the media fetcher (customers' attachments into the blob store), on the adapters' HTTP session; a blob store
   that cannot be used (an S3 bucket missing or unreachable) is said once in the log, and the hub starts anyway;
6. the bot runner (hub/bots/runner.py), which answers through the same use cases as agents, and the
   out-of-hours answer of queues without a bot (hub/out_of_hours.py);
7. the outbox's delivery workers: nothing is sent before everything that reports on it runs;
8. the audit log's retention sweep (hub/audit.py), last.

On the way down the audit sweep and then the outbox stop first, the bots and the media fetcher stop before the
router, and the ingest drains what was submitted before the dispatcher and the notifier stop and the database
closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType

import aiohttp

from hub.audit import AuditKeeper
from hub.bots.runner import BotRunner
from hub.bus import EventBus
from hub.ingest import Ingestor
from hub.media import BlobStore, StoreUnavailable
from hub.media_fetch import MediaFetcher
from hub.metrics import HubMetrics
from hub.model import Role
from hub.notifier import Notifier
from hub.out_of_hours import OutOfHours
from hub.outbox import Outbox
from hub.ports import ChannelAdapter
from hub.registry import build_adapter
from hub.router import Router
from hub.settings import Settings
from hub.store import Store
from hub.store.agents import AgentExists, count_agents, create_agent, find_agent_by_login
from hub.store.catalogue import seed_catalogue
from hub.webhooks_out import WebhookDispatcher

__all__ = ["Hub"]

logger = logging.getLogger(__name__)

_HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
#: how long start-up waits for the blob store to say whether it can be used
_STORE_CHECK_SECONDS = 5.0


class Hub:
    """One hub process's application core: what the HTTP server, the CLI and the tests are given.

    Build it with ``hub.bootstrap.build_hub``. ``adapters`` is filled when the hub starts, if it opens its
    own HTTP session (an ``aiohttp.ClientSession`` needs a running event loop); it is the same mapping
    before and after, so whoever holds it sees the adapters once they exist.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        clock: Callable[[], datetime],
        http: aiohttp.ClientSession | None,
        adapters: dict[str, ChannelAdapter],
        bus: EventBus,
        notifier: Notifier,
        router: Router,
        ingestor: Ingestor,
        outbox: Outbox,
        blobs: BlobStore,
        media: MediaFetcher,
        owns_store: bool,
        build_adapters: bool,
        metrics: HubMetrics | None = None,
        bots: BotRunner | None = None,
        webhooks_out: WebhookDispatcher | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.adapters: Mapping[str, ChannelAdapter] = adapters
        self.bus = bus
        self.notifier = notifier
        self.router = router
        self.ingestor = ingestor
        self.outbox = outbox
        self.metrics = metrics if metrics is not None else HubMetrics()  # this hub's own registry (hub/metrics.py)
        self.audit = AuditKeeper(store, settings.audit, clock=clock)  # the audit log's retention (hub/audit.py)
        self.blobs = blobs
        self.media = media
        self.bots = bots if bots is not None else BotRunner(settings.bots)
        self.out_of_hours = OutOfHours(settings)  # a closed queue without a bot answers (hub/out_of_hours.py)
        self.webhooks_out = (
            webhooks_out if webhooks_out is not None else WebhookDispatcher(store, bus, settings, clock=clock)
        )
        self.metrics.watch_webhooks_out(self.webhooks_out)  # its attempts, read when /metrics is scraped
        self._http = http
        self._adapters = adapters
        self._owns_store = owns_store
        self._owns_http = http is None
        self._build_adapters = build_adapters
        self._configure: list[Callable[[Mapping[str, ChannelAdapter]], None]] = []
        self._adapters_ready = not build_adapters
        self.started = False

    @property
    def http(self) -> aiohttp.ClientSession | None:
        """The HTTP session the adapters send through: the caller's, or the hub's own once it has started
        (None before that, and when the caller brought the adapters)."""
        return self._http

    def configure_adapters(self, configure: Callable[[Mapping[str, ChannelAdapter]], None]) -> None:
        """Run ``configure`` on the adapters once they exist, before any delivery worker sends.

        For webhook routes that tell an adapter where its provider's callbacks go.
        """
        if self._adapters_ready:
            configure(self.adapters)
        else:
            self._configure.append(configure)

    async def start(self) -> None:
        """Start every part, in the order the module docstring gives; if one fails, stop what started."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        await self.store.migrate()
        await self._seed()
        if self._build_adapters:
            if self._http is None:
                self._http = aiohttp.ClientSession(timeout=_HTTP_TIMEOUT, raise_for_status=False)
            self._adapters.update({a.id: build_adapter(a, self._http) for a in self.settings.accounts})
            self._adapters_ready = True
        for configure in self._configure:
            configure(self.adapters)
        self._configure.clear()
        await self.notifier.start()
        await self.webhooks_out.start()
        await self.ingestor.start()
        await self.router.start()
        await self._check_blobs()
        await self.media.start(self._http)
        await self.bots.start(self, self._http)
        await self.out_of_hours.start(self)
        await self.outbox.start()
        await self.audit.start()
        self.started = True
        logger.debug("hub started", extra={"workers": self.settings.outbox.workers})

    async def _check_blobs(self) -> None:
        """One warning, naming ``[media] url``, when the configured store cannot be used now. Not a refusal to
        start: the bucket or its server may come up later, and until then uploads and media reads answer 503."""
        where = f"[media] url = {self.settings.media.url!r}" if self.settings.media.url else "[media] path"
        try:
            async with asyncio.timeout(_STORE_CHECK_SECONDS):
                await self.blobs.check()
        except StoreUnavailable as exc:
            reason = exc.reason
        except TimeoutError:
            reason = f"no answer within {_STORE_CHECK_SECONDS:g} seconds"
        else:
            return
        logger.warning(
            "%s: the media store cannot be used: %s; the hub starts anyway, and uploads and media reads answer "
            "503 media_store_unavailable until it can",
            where,
            reason,
        )

    async def stop(self) -> None:
        """Stop every part in the reverse order; the ingest drains before the database closes."""
        self.started = False
        await self.audit.stop()
        await self.outbox.stop()
        await self.out_of_hours.stop()
        await self.bots.stop()
        await self.media.stop()
        await self.router.stop()
        await self.ingestor.stop()
        await self.webhooks_out.stop()
        await self.notifier.stop()
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None
        if self._owns_store:
            await self.store.close()
        await self.blobs.close()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()

    async def _seed(self) -> None:
        """The configured queues and statuses, and the demo agents the configuration names."""
        settings, store = self.settings, self.store
        await seed_catalogue(store, settings.queues, settings.statuses)
        demo = settings.demo
        wanted: list[tuple[str, str, Role]] = []
        if demo.admin_login and demo.admin_password:
            wanted.append((demo.admin_login, demo.admin_password, Role.ADMIN))
        wanted += [(login, password, Role(role)) for login, password, role in demo.agents]
        all_queues = [q.id for q in settings.queues]
        for login, password, role in wanted:
            if await find_agent_by_login(store, login) is not None:
                continue
            try:
                now = self.clock()
                await create_agent(store, login=login, password=password, role=role, now=now, queues=all_queues)
                logger.info("created demo agent %s (%s)", login, role.value, extra={"login": login, "role": role.value})
            except AgentExists:
                pass  # another process created it a moment ago
        if await count_agents(store, role=Role.ADMIN) == 0:
            logger.warning(
                "no admin exists yet; create the first one with: "
                "channelhub agents create LOGIN --role admin (the password is read from standard input)"
            )
