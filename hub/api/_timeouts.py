"""A request body must keep arriving: a client that stops sending mid-body is answered 408 and cut off.

aiohttp closes idle keep-alive connections and, with them, requests whose headers never
finish, but it waits for a body as long as the client likes: one that sends its headers
and half its body, then nothing, holds a connection and a handler forever. This
middleware watches the body while the handler runs. If no byte of it arrives for
``read_timeout`` seconds while the handler waits for it (nothing is buffered), the
pending read fails, the client gets a 408 and the connection is closed. Slow but
steady clients are not cut off; neither is a handler that takes its time before
reading (the bytes then wait in the buffer, which is the server's turn, not the client's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress

from aiohttp import web
from aiohttp.typedefs import Middleware

from hub.api.errors import error_response

__all__ = ["BodyStalled", "read_timeout_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyStalled(Exception):
    """The client stopped sending the request body."""


async def _watch(request: web.Request, seconds: float) -> None:
    content = request.content
    seen = -1
    while not content.is_eof():
        waiting_for_client = not getattr(content, "_size", 0)  # nothing buffered for the handler to read
        if content.total_bytes == seen and waiting_for_client:
            content.set_exception(BodyStalled())
            return
        seen = content.total_bytes
        await asyncio.sleep(seconds)


def read_timeout_middleware(seconds: float) -> Middleware:
    """Answer 408 and close the connection when a request body stalls for ``seconds``."""

    @web.middleware
    async def read_timeout(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        watchdog = asyncio.create_task(_watch(request, seconds))
        try:
            return await handler(request)
        except BodyStalled:
            # sent here and now, then the connection is dropped: the rest of the body is never waited for
            response = error_response(408, "request_timeout", f"the request body stopped arriving for {seconds:g} s")
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()
            return response
        finally:
            watchdog.cancel()
            with suppress(asyncio.CancelledError):
                await watchdog

    return read_timeout
