"""Whose page is asking: the ``Origin`` check for requests a browser sends with its cookie by itself.

A browser opens a WebSocket to any site with that site's cookies, whatever page asks,
and the WebSocket handshake is not subject to CORS; SameSite=Strict cookies are the only
other guard. So a cookie session's WebSocket is refused unless its ``Origin`` is the
hub's own: the origin of ``server.public_url``, or the host the request was sent to (the
console served under another name, e.g. behind a proxy that keeps the ``Host`` header;
a page on another site cannot have the hub's cookie for that host). Clients that send no
``Origin`` are not browsers and are let through; bearer tokens are never sent by
themselves and are not checked.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["origin_allowed"]


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def origin_allowed(origin: str | None, *, public_url: str, host: str | None) -> bool:
    """True when ``origin`` (the request's ``Origin`` header) is the hub's own, or absent."""
    if origin is None:
        return True
    if origin.strip().lower() == "null":  # sandboxed frames, file: pages
        return False
    if _origin(origin) == _origin(public_url):
        return True
    return bool(host) and urlsplit(origin.strip()).netloc.lower() == (host or "").lower()
