"""The composition root of the HTTP server: one aiohttp app for webhooks, API and console.

Each long-lived part (database, HTTP client and adapters, ingest, workers) is one
``cleanup_ctx`` entry that starts and stops it side by side.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from hub.api._timeouts import read_timeout_middleware
from hub.api.errors import error_middleware
from hub.api.extensions import EXTENSIONS
from hub.api.keys import ADAPTERS, BUS, CLOCK, HTTP, INGESTOR, SETTINGS, STORE
from hub.bus import EventBus
from hub.ingest import Ingestor
from hub.registry import build_adapter, emulator_contexts, webhook_setups
from hub.settings import Settings
from hub.store import Store

__all__ = ["create_app", "run_server"]

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Callable[[], datetime] | None = None,
    http: aiohttp.ClientSession | None = None,
) -> web.Application:
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[error_middleware, read_timeout_middleware(settings.server.read_timeout)],
    )
    app[SETTINGS] = settings
    app[BUS] = EventBus()
    app[CLOCK] = clock or _utc_now
    if store is not None:
        app[STORE] = store
    if http is not None:
        app[HTTP] = http
    if settings.demo.emulators:
        # the offline demo: provider emulators start first and stop last
        for name, emulators in sorted(emulator_contexts().items()):
            logger.debug("emulators: %s", name)
            app.cleanup_ctx.append(emulators)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_http_and_adapters)
    app.cleanup_ctx.append(_ingest)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for name, setup in sorted(webhook_setups().items()):
        logger.debug("webhook routes: %s", name)
        setup(app)
    for extend in EXTENSIONS:
        extend(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    owned = STORE not in app
    if owned:
        app[STORE] = Store(app[SETTINGS].database_url, pool_size=app[SETTINGS].database_pool_size)
    await app[STORE].migrate()
    yield
    if owned:
        await app[STORE].close()


async def _http_and_adapters(app: web.Application) -> AsyncIterator[None]:
    owned = HTTP not in app
    if owned:
        timeout = aiohttp.ClientTimeout(total=15, connect=5)
        app[HTTP] = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
    app[ADAPTERS] = {account.id: build_adapter(account, app[HTTP]) for account in app[SETTINGS].accounts}
    yield
    if owned:
        await app[HTTP].close()


async def _ingest(app: web.Application) -> AsyncIterator[None]:
    ingestor = Ingestor(app[STORE], app[BUS], app[SETTINGS].accounts, clock=app[CLOCK])
    app[INGESTOR] = ingestor
    await ingestor.start()
    yield
    await ingestor.stop()


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The database is reachable and migrations are current."""
    ready, detail = await request.app[STORE].is_ready()
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "detail": detail}, status=200 if ready else 503
    )


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish before the workers stop."""
    app = create_app(settings)
    app.on_startup.append(_settle_after_start_up)  # after every cleanup context has started
    logger.info(
        "channelhub listening",
        extra={
            "host": settings.server.host,
            "port": settings.server.port,
            "database": _safe_url(settings.database_url),
        },
    )
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_timeout,
        keepalive_timeout=settings.server.read_timeout,  # also ends connections whose headers never finish
        print=None,
        access_log=None,
        handle_signals=True,
    )


def settle_garbage_collector() -> None:
    """Keep the cycle collector's full passes short and rare in a long-running server.

    With hundreds of agents connected, a full pass over every live object took 50-70 ms, during which
    nothing else ran: the slowest offers in bench/handoff.py were exactly those passes. What exists once the
    hub has started (modules, settings, compiled statements) lives as long as the process, so it is frozen
    out of the collector's view, and the collector runs less often. Reference counting still frees almost
    everything at once; only reference cycles wait longer. (bench/outbound.py, which runs the outbox in its
    own process, calls this too, so that it measures what ``serve`` runs.)
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


async def _settle_after_start_up(app: web.Application) -> None:
    settle_garbage_collector()


def _safe_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
