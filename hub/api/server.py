"""The HTTP server: one aiohttp app for webhooks, API and console, around one hub.

The hub (hub/app.py, built by hub/bootstrap.py) starts and stops in one cleanup
context; in the offline demo the provider emulators start before it and stop
after it. Webhook routes are given the hub when they are set up; the API
reaches it as ``request.app[HUB]``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import aiohttp
from aiohttp import web

from hub.api import observe
from hub.api._headers import latin1_headers_middleware
from hub.api._protocol_log import quiet_client_protocol_errors
from hub.api._timeouts import read_timeout_middleware
from hub.api.errors import error_middleware
from hub.api.extensions import EXTENSIONS
from hub.api.keys import ADAPTERS, BUS, CLOCK, HTTP, HUB, INGESTOR, NOTIFIER, OUTBOX, ROUTER, SETTINGS, STORE
from hub.api.observe import observe_middleware
from hub.api.proxies import parse_networks, trusted_proxies_middleware
from hub.app import Hub
from hub.bootstrap import build_hub
from hub.event_loop import new_event_loop
from hub.registry import emulator_contexts, webhook_setups
from hub.settings import Settings
from hub.store import Store

__all__ = ["create_app", "run_server"]

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Callable[[], datetime] | None = None,
    http: aiohttp.ClientSession | None = None,
    hub: Hub | None = None,
) -> web.Application:
    """The server around ``hub``, or around a hub built here from the other arguments (see ``build_hub``)."""
    if hub is None:
        hub = build_hub(settings, store=store, clock=clock, http=http)
    quiet_client_protocol_errors()
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[
            observe_middleware,
            latin1_headers_middleware,  # before anything reads a header
            # before anything reads request.remote: the client's address behind [server] trusted_proxies
            trusted_proxies_middleware(parse_networks(settings.server.trusted_proxies)),
            error_middleware,
            read_timeout_middleware(settings.server.read_timeout),
        ],
    )
    app[HUB] = hub
    # views of the hub's parts, for the handlers and tests that use them
    app[SETTINGS] = hub.settings
    app[STORE] = hub.store
    app[BUS] = hub.bus
    app[CLOCK] = hub.clock
    app[ADAPTERS] = hub.adapters
    app[INGESTOR] = hub.ingestor
    app[NOTIFIER] = hub.notifier
    app[ROUTER] = hub.router
    app[OUTBOX] = hub.outbox
    if settings.demo.emulators:
        # the offline demo: provider emulators start first and stop last
        for name, emulators in sorted(emulator_contexts().items()):
            logger.debug("emulators: %s", name)
            app.cleanup_ctx.append(_emulators(emulators, settings))
    app.cleanup_ctx.append(_running_hub)
    observe.setup(app)  # X-Request-Id and /metrics (its own listener starts after the hub)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for name, setup in sorted(webhook_setups().items()):
        logger.debug("webhook routes: %s", name)
        setup(app, hub)
    for extend in EXTENSIONS:
        extend(app)
    return app


def _emulators(
    context: Callable[[Settings], AsyncIterator[None]], settings: Settings
) -> Callable[[web.Application], AsyncIterator[None]]:
    def cleanup_context(app: web.Application) -> AsyncIterator[None]:
        return context(settings)

    return cleanup_context


async def _running_hub(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    await hub.start()
    if hub.http is not None:
        app[HTTP] = hub.http
    try:
        yield
    finally:
        await hub.stop()


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
        loop=new_event_loop(settings.server.event_loop),
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
    # the loop that really runs, named by its package ("uvloop" or "asyncio"): what [server] event_loop chose
    running = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    logger.info("channelhub started", extra={"event_loop": running})


def _safe_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
