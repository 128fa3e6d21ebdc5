"""What the HTTP server tells its operators: ``X-Request-Id`` on every answer, latency per route, ``/metrics``.

``observe_middleware`` runs outermost: it takes the client's ``X-Request-Id`` when it is a sane id (else makes
one), runs the request under it (every log line the request causes carries it: hub/logs.py), and records the
latency under the route's declared path (``/api/v1/conversations/{id}``, never the raw URL). The header is
added as the answer is prepared, so error answers and WebSocket upgrades carry it too.

``/metrics`` (the hub's registry, hub/metrics.py) is guarded by ``[metrics] token`` (a bearer token), or
served on a listener of its own when ``[metrics] port`` is set (with the token too, if both are set); with
neither it answers loopback clients only, and never a request that came through a proxy.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from hub.api._headers import latin1_headers_middleware
from hub.api.errors import error_response
from hub.api.keys import HUB
from hub.api.proxies import ip_of
from hub.logs import correlated, new_correlation_id, sane_correlation_id
from hub.metrics import CONTENT_TYPE

__all__ = ["METRICS_LISTENER", "REQUEST_ID", "MetricsListener", "observe_middleware", "setup"]

logger = logging.getLogger(__name__)

HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("observe.request_id", str)


@dataclass
class MetricsListener:
    """The separate ``/metrics`` listener, when ``[metrics] port`` is set: ``port`` once it listens."""

    port: int | None = None


METRICS_LISTENER = web.AppKey("observe.metrics_listener", MetricsListener)


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Correlation id and latency for every request (see the module docstring)."""
    request_id = sane_correlation_id(request.headers.get(HEADER)) or new_correlation_id()
    request[REQUEST_ID] = request_id
    began = time.perf_counter()
    status = 500
    session = False
    try:
        with correlated(request_id):
            response = await handler(request)
        status = response.status
        session = isinstance(response, web.WebSocketResponse)
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers[HEADER] = request_id
        raise
    finally:
        # a WebSocket's handler returns when the session ends: counted, but its length is no request latency
        seconds = None if session else time.perf_counter() - began
        request.app[HUB].metrics.observe_http(_route_of(request), request.method, status, seconds)


async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID)
    if request_id is not None and HEADER not in response.headers:
        response.headers[HEADER] = request_id


# ------------------------------------------------------------------ /metrics


def _loopback(request: web.Request) -> bool:
    if "Forwarded" in request.headers or "X-Forwarded-For" in request.headers:
        return False  # came through a proxy: the proxy's address says nothing of the client
    address = ip_of(request.remote or "")  # a dual-stack listener's IPv4 loopback peer is ::ffff:127.0.0.1
    return address is not None and address.is_loopback


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text exposition of this process's metrics."""
    hub = request.app[HUB]
    token = hub.settings.metrics.token
    if token is not None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return error_response(401, "metrics_token_required", "send the metrics token as a bearer token")
    elif hub.settings.metrics.port is None and not _loopback(request):
        return error_response(
            403, "metrics_loopback_only", "without [metrics] token or port, /metrics answers loopback clients only"
        )
    body = await hub.metrics.scrape(hub.store, hub.clock())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _metrics_listener(app: web.Application) -> AsyncIterator[None]:
    """Serve ``/metrics`` on ``[metrics] host``:``port`` while the server runs (after the hub has started)."""
    settings = app[HUB].settings.metrics
    # a request id and a latency here too, and headers read as on the main listener
    side = web.Application(middlewares=[observe_middleware, latin1_headers_middleware])
    side[HUB] = app[HUB]
    side.on_response_prepare.append(_stamp_request_id)
    side.router.add_get("/metrics", metrics)
    runner = web.AppRunner(side, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port or 0)
    await site.start()
    app[METRICS_LISTENER].port = int(runner.addresses[0][1])
    logger.info("metrics listening", extra={"host": settings.host, "port": app[METRICS_LISTENER].port})
    try:
        yield
    finally:
        await runner.cleanup()


def setup(app: web.Application) -> None:
    """``/metrics`` (here or on its own listener) and the ``X-Request-Id`` of every answer."""
    app.on_response_prepare.append(_stamp_request_id)
    app[METRICS_LISTENER] = MetricsListener()
    if app[HUB].settings.metrics.port is None:
        app.router.add_get("/metrics", metrics)
    else:
        app.cleanup_ctx.append(_metrics_listener)
