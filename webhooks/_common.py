"""Route plumbing shared by every provider's webhook routes.

A webhook handler is thin: ``read_body`` -> find the account(s) -> adapter
``verify`` -> adapter ``parse`` -> ``ingest`` -> ``acknowledge``. Adapter errors
become our JSON error body through ``adapter_error_response`` (or by raising
them inside ``adapter_errors()``). This module knows no provider.

Public API:

* ``read_body(request) -> bytes`` -- the raw body, refused with 413 ``body_too_large``
  over ``settings.server.max_body_bytes``;
* ``adapter_error_response(exc) -> web.Response`` -- 403 ``signature_invalid``,
  400 ``<PayloadMalformed.code>``, 404 ``unknown_account`` (logged), 502 otherwise;
* ``adapter_errors()`` -- a context manager turning an ``AdapterError`` into that response
  (raised as ``ApiError``, so the error middleware answers);
* ``ingest(request, events) -> IngestResult`` -- store durably; ``ingest_failed`` when
  the store refuses (503 when the database is away or full, else 500; the provider retries both);
  ignored event kinds are counted by the ingestor (``Ingestor.ignored_counts``) and logged here at DEBUG;
* ``acknowledge(result) -> web.Response`` -- the 200 JSON answer;
* ``adapters_for(app, adapter_name)`` -- the configured adapters of one provider;
* ``verified_adapters(adapters, request, body)`` -- those whose signature check passes
  (SignatureInvalid when none does), for providers whose body names the account;
* ``run_after_response(app, coro)`` -- enrichment work that must never delay an acknowledgement
  (tracked, awaited briefly then cancelled on shutdown; install with ``install(app)``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from aiohttp import web

from hub.api.errors import ApiError, error_response
from hub.api.keys import ADAPTERS, INGESTOR, SETTINGS
from hub.errors import AdapterError, PayloadMalformed, SignatureInvalid, UnknownAccount
from hub.ingest import IngestResult
from hub.model import InboundEvent
from hub.ports import ChannelAdapter
from hub.store import database_unavailable

__all__ = [
    "acknowledge",
    "adapter_error_response",
    "adapter_errors",
    "adapters_for",
    "ingest",
    "install",
    "read_body",
    "run_after_response",
    "verified_adapters",
]

logger = logging.getLogger(__name__)

AdapterT = TypeVar("AdapterT", bound=ChannelAdapter)

BACKGROUND: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("webhooks.background")
_SHUTDOWN_GRACE = 2.0  # seconds background enrichment may take to finish at shutdown


async def read_body(request: web.Request) -> bytes:
    """The exact bytes received (signatures are computed over them), size-limited.

    aiohttp already enforces ``client_max_size``; we check the declared length first
    so an oversized body is refused without reading it, and answer with our error shape.
    """
    limit = request.app[SETTINGS].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    if len(body) > limit:
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the body is larger than {limit} bytes")


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
        raise ApiError(response.status, _code_of(exc), str(exc) or response.reason or "") from None


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
        result = await request.app[INGESTOR].submit(events)
    except Exception as exc:
        logger.exception("webhook delivery not stored on %s; the provider will retry", request.path)
        raise ApiError(
            503 if database_unavailable(exc) else 500,
            "ingest_failed",
            "the delivery could not be stored; nothing was acknowledged",
        ) from None
    if result.ignored:
        logger.debug("acknowledged without handling: %s", ", ".join(result.ignored))
    return result


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
    return [a for a in app[ADAPTERS].values() if a.account.adapter_name == adapter_name]


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


def install(app: web.Application) -> None:
    """Once per app (idempotent): track background enrichment and stop it on shutdown."""
    if BACKGROUND in app:
        return
    app[BACKGROUND] = set()
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
    install(app)
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
