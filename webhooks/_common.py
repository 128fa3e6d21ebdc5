"""Route plumbing shared by every provider's webhook routes.

A webhook handler is thin: ``read_body`` -> find the account(s) -> adapter
``verify`` -> adapter ``parse`` -> ``ingest`` -> ``acknowledge``. Adapter errors
become our JSON error body through ``adapter_error_response`` (or by raising
them inside ``adapter_errors()``). This module knows no provider, and nothing
of the agent API: each route module's ``setup(app, hub)`` is given the hub
(hub/app.py) and keeps it under this package's own key.

Public API:

* ``install(app, hub)`` -- once per app: the hub, the error answers, the background work;
* ``hub_of(app)`` -- the hub the routes serve;
* ``WebhookError(status, code, message)`` -- raise it for our JSON error body
  (``{"error": {"code", "message"}}``, the agent API's shape);

* ``read_body(request, limit=None) -> bytes`` -- the raw body, refused with 413 ``body_too_large``
  over ``settings.server.max_body_bytes`` (or the route's smaller ``limit``), never read past it;
* ``keep_unusable(request, ...)`` -- a correctly signed delivery the hub can never use
  (``PayloadMalformed`` after the signature check) is kept as a dead letter; the route then
  answers 200, since a provider retries anything else (ADR 0024). ``ingest_failed`` (503 or 500,
  as for ``ingest``) if it cannot be stored; ``rejected()`` is that 200;
* ``adapter_error_response(exc) -> web.Response`` -- 403 ``signature_invalid``,
  400 ``<PayloadMalformed.code>``, 404 ``unknown_account`` (logged), 502 otherwise;
* ``adapter_errors()`` -- a context manager turning an ``AdapterError`` into that response
  (raised as ``WebhookError``);
* ``ingest(request, events) -> IngestResult`` -- store durably; ``ingest_failed`` when
  the store refuses (503 when the database is away or full, else 500; the provider retries both);
  ignored event kinds are counted by the ingestor (``Ingestor.ignored_counts``) and logged here at DEBUG;
* ``acknowledge(result) -> web.Response`` -- the 200 JSON answer;
* ``adapters_for(app, adapter_name)`` -- the configured adapters of one provider;
* ``verified_adapters(adapters, request, body)`` -- those whose signature check passes
  (SignatureInvalid when none does), for providers whose body names the account;
* ``run_after_response(app, coro)`` -- enrichment work that must never delay an acknowledgement
  (tracked, awaited briefly then cancelled on shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from aiohttp import web

from hub.app import Hub
from hub.errors import AdapterError, PayloadMalformed, SignatureInvalid, UnknownAccount
from hub.ingest import IngestResult
from hub.model import Channel, InboundEvent
from hub.ports import ChannelAdapter
from hub.store import database_unavailable
from hub.store.dead_letters import keep_dead_letter

__all__ = [
    "WebhookError",
    "acknowledge",
    "adapter_error_response",
    "adapter_errors",
    "adapters_for",
    "hub_of",
    "ingest",
    "install",
    "keep_unusable",
    "read_body",
    "rejected",
    "run_after_response",
    "verified_adapters",
]

logger = logging.getLogger(__name__)

AdapterT = TypeVar("AdapterT", bound=ChannelAdapter)

HUB = web.AppKey("webhooks.hub", Hub)
BACKGROUND: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("webhooks.background")
_SHUTDOWN_GRACE = 2.0  # seconds background enrichment may take to finish at shutdown
_READ_CHUNK = 64 * 1024


class WebhookError(Exception):
    """A refusal of a provider's request; answered with our JSON error body and ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    """``{"error": {"code", "message"}}``: the same body the agent API answers with."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


_OUTCOME: web.RequestKey[tuple[str, str | None]] = web.RequestKey("webhooks.outcome", tuple)
"""What ``ingest`` or ``keep_unusable`` made of a delivery: ("duplicate" | "stored" | "refused", code)."""


@web.middleware
async def _answer_refusals(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except WebhookError as exc:
        _count(request, exc.code)
        return error_response(exc.status, exc.code, exc.message)
    _count(request, None)
    return response


def _count(request: web.Request, refused: str | None) -> None:
    """Count a provider's POST to a webhook route on the hub's metrics, labelled by the route's first segment
    after ``/webhooks/`` (its endpoint: messenger, whatsapp, twilio, viber)."""
    route = request.match_info.route.resource
    path = route.canonical if route is not None else ""
    if request.method != "POST" or not path.startswith("/webhooks/"):
        return
    channel = path.split("/")[2]
    metrics = request.app[HUB].metrics
    outcome, code = request.get(_OUTCOME, ("stored", None))
    if refused is not None or outcome == "refused":
        metrics.webhook_refused(channel, refused or code or "refused")
    else:
        metrics.webhook_received(channel, duplicate=outcome == "duplicate")


def hub_of(app: web.Application) -> Hub:
    return app[HUB]


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The exact bytes received (signatures are computed over them), size-limited.

    ``limit`` is a route's own bound (Twilio's forms are small), never above
    ``server.max_body_bytes``. The declared length is checked first, so an oversized
    body is refused without reading it; a body without one (chunked) is read only up
    to the limit. Nothing is parsed here: this is what an unauthenticated request costs.
    """
    configured = request.app[HUB].settings.server.max_body_bytes
    limit = configured if limit is None else min(limit, configured)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.content.iter_chunked(_READ_CHUNK):
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    return bytes(body)


def _too_large(limit: int) -> WebhookError:
    return WebhookError(413, "body_too_large", f"the body is larger than {limit} bytes")


def adapter_error_response(exc: AdapterError) -> web.Response:
    """Our JSON error for an adapter's refusal of an inbound delivery."""
    if isinstance(exc, SignatureInvalid):
        return error_response(403, "signature_invalid", str(exc) or "the request signature is missing or wrong")
    if isinstance(exc, PayloadMalformed):
        return error_response(400, exc.code, str(exc))
    if isinstance(exc, UnknownAccount):
        logger.warning("webhook for an account that is not configured: %s", exc)
        return error_response(404, "unknown_account", str(exc))
    logger.warning("webhook refused by the adapter: %s", exc)
    return error_response(502, exc.code, str(exc))


@contextmanager
def adapter_errors() -> Iterator[None]:
    """``with adapter_errors(): adapter.verify(...)`` -- an AdapterError becomes the HTTP error."""
    try:
        yield
    except AdapterError as exc:
        response = adapter_error_response(exc)
        raise WebhookError(response.status, _code_of(exc), str(exc) or response.reason or "") from None


def _code_of(exc: AdapterError) -> str:
    if isinstance(exc, SignatureInvalid):
        return "signature_invalid"
    if isinstance(exc, UnknownAccount):
        return "unknown_account"
    return exc.code


async def ingest(request: web.Request, events: Sequence[InboundEvent]) -> IngestResult:
    """Store one delivery; returns only when it is durable (then, and only then, acknowledge).

    A failure answers ``ingest_failed``: nothing of the delivery is kept and the provider delivers it
    again. 503 when the database is away or its disk full (a retry cures that, and a 503 says so to the
    provider and to whoever reads the logs), 500 for any other failure.
    """
    try:
        result = await request.app[HUB].ingestor.submit(events)
    except Exception as exc:
        logger.exception("webhook delivery not stored on %s; the provider will retry", request.path)
        raise WebhookError(
            503 if database_unavailable(exc) else 500,
            "ingest_failed",
            "the delivery could not be stored; nothing was acknowledged",
        ) from None
    if result.ignored:
        logger.debug("acknowledged without handling: %s", ", ".join(result.ignored))
    request[_OUTCOME] = ("duplicate" if result.duplicate_only else "stored", None)
    return result


async def keep_unusable(
    request: web.Request, *, channel: Channel, account_id: str | None, error: PayloadMalformed, body: bytes
) -> None:
    """Keep a signed delivery the hub can never use as a dead letter; the caller then answers 200.

    Only after the signature check: an unsigned request is refused (403) and stores nothing.
    When the dead letter cannot be stored the answer is 500 ``ingest_failed`` (a retry may succeed).
    """
    try:
        await keep_dead_letter(
            request.app[HUB].store,
            channel=channel.value,
            account_id=account_id,
            received_at=request.app[HUB].clock(),
            reason_code=error.code,
            reason=str(error) or error.code,
            body=body,
        )
    except Exception as exc:
        logger.exception("unusable webhook delivery not stored on %s; the provider will retry", request.path)
        raise WebhookError(
            503 if database_unavailable(exc) else 500,
            "ingest_failed",
            "the delivery could not be stored; nothing was acknowledged",
        ) from None
    logger.warning(
        "signed webhook delivery kept as a dead letter (%s): %s", error.code, error, extra={"account": account_id}
    )
    request[_OUTCOME] = ("refused", error.code)


def rejected() -> web.Response:
    """The 200 for a delivery kept as a dead letter: the provider must not deliver it again."""
    return web.json_response({"stored": 0, "duplicates": 0, "updated": 0, "ignored": 0, "rejected": 1})


def acknowledge(result: IngestResult) -> web.Response:
    """The 200 a provider waits for, with what the delivery changed (useful when debugging)."""
    return web.json_response(
        {
            "stored": result.stored,
            "duplicates": result.duplicates,
            "updated": result.updated,
            "ignored": len(result.ignored),
        }
    )


def adapters_for(app: web.Application, adapter_name: str) -> list[ChannelAdapter]:
    """The running adapters of one provider (``messenger``, ``whatsapp.cloud``, ...), in config order."""
    return [a for a in app[HUB].adapters.values() if a.account.adapter_name == adapter_name]


def verified_adapters(adapters: Sequence[AdapterT], request: web.Request, body: bytes) -> list[AdapterT]:
    """The adapters whose ``verify`` accepts this request; SignatureInvalid when none does.

    Used before the body is interpreted at all: nothing unauthenticated is parsed.
    With no adapter configured the delivery is for an unknown account.
    """
    if not adapters:
        raise UnknownAccount("no account of this provider is configured")
    url = str(request.url)
    trusted: list[AdapterT] = []
    failure: SignatureInvalid | None = None
    for adapter in adapters:
        try:
            adapter.verify(url, request.headers, body)
        except SignatureInvalid as exc:
            failure = exc
        else:
            trusted.append(adapter)
    if not trusted:
        raise failure or SignatureInvalid("the request signature is missing or wrong")
    return trusted


def install(app: web.Application, hub: Hub) -> None:
    """Once per app (idempotent): keep the hub, answer refusals, track background enrichment and stop it
    on shutdown (before the hub stops: it may still write)."""
    if HUB in app:
        return
    app[HUB] = hub
    app[BACKGROUND] = set()
    app.middlewares.append(_answer_refusals)
    app.cleanup_ctx.append(_background_tasks)


async def _background_tasks(app: web.Application) -> AsyncIterator[None]:
    yield
    tasks = app[BACKGROUND].copy()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE)
    for task in pending:
        task.cancel()
    for task in pending:
        with suppress(asyncio.CancelledError):
            await task


def run_after_response(app: web.Application, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` in the background; its failure is logged, never raised to the provider.

    Call it just before returning the acknowledgement: the task first runs once the
    handler has yielded, so it cannot delay the 200.
    """
    task = asyncio.get_running_loop().create_task(_logged(coro))
    tasks = app[BACKGROUND]
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _logged(coro: Coroutine[Any, Any, None]) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.warning("background enrichment failed", exc_info=True)
