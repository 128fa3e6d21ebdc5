"""Header values that are not UTF-8 are read as Latin-1, so every handler gets text it can encode.

aiohttp decodes each header value as UTF-8 and keeps the bytes that are not as lone surrogates
(``surrogateescape``): ``Authorization: Bearer \\xff`` arrives as ``"Bearer \\udcff"``, and the first
``.encode()`` on it — hashing a token, a constant-time compare of a signature or a CSRF token,
storing an ``Idempotency-Key`` — raised UnicodeEncodeError, a 500. HTTP has always allowed any
octet in a field value and read it as ISO-8859-1, so such a value is read that way here, once,
before anything looks at it: each byte becomes one character, nothing is lost, and a wrong token
or signature is refused by the check that reads it, as any other wrong one is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

__all__ = ["latin1_headers_middleware", "readable"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def readable(value: str) -> str:
    """``value`` as it was sent, when it was UTF-8; else its bytes read as Latin-1."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        sent = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte: keep its UTF-8 form
        sent = value.encode("utf-8", "surrogatepass")
    return sent.decode("latin-1")


@web.middleware
async def latin1_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hand on the request with every header value ``readable`` (the same request when all already are)."""
    if all(readable(value) is value for value in request.headers.values()):
        return await handler(request)
    headers = CIMultiDict((name, readable(value)) for name, value in request.headers.items())
    return await handler(request.clone(headers=headers))
