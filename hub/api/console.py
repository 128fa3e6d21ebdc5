"""The agent and admin console: static files served by the hub at ``/``.

The console is plain HTML, CSS and ES modules committed under ``hub/api/static``;
there is no build step and nothing is fetched from outside the hub. It talks to
the hub only through the public REST and WebSocket API, so this module only
serves files and sets the headers that keep the page to itself.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub.api.keys import SETTINGS
from hub.settings import Settings

__all__ = ["STATIC_DIR", "setup"]

STATIC_DIR = Path(__file__).parent / "static"

#: the page may load its own files and talk to its own hub; attachments may be images from anywhere
_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: http: https:",
        "media-src 'self' blob: http: https:",
        "connect-src 'self' ws: wss:",
        "frame-src {frames}",  # the hub's own co-browsing room, and the queues' pages in an iframe (iframe_hosts)
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP.format(frames="'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_HEADERS = web.AppKey("console_security_headers", dict[str, str])
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


def frame_sources(settings: Settings) -> str:
    """The CSP ``frame-src`` list: the hub itself (the co-browsing room the widget shows, served under /rooms/)
    and every queue's allowed iframe hosts (any port, http or https); a queue's page is never the hub's own host
    (hub/settings.py refuses it)."""
    hosts = sorted({host for queue in settings.queues for host in queue.iframe_hosts})
    return " ".join(["'self'", *(f"http://{host}:* https://{host}:* http://{host} https://{host}" for host in hosts)])


def setup(app: web.Application) -> None:
    """Mount the console at ``/`` and its assets under ``/console/``."""
    app[_HEADERS] = {**_SECURITY_HEADERS, "Content-Security-Policy": _CSP.format(frames=frame_sources(app[SETTINGS]))}
    app.router.add_get("/", index, name="console_index")
    app.router.add_get("/console/{path:.+}", asset, name="console_asset")


async def index(request: web.Request) -> web.StreamResponse:
    """The single page; login happens inside it, against ``/api/v1/auth/login``."""
    return _file(STATIC_DIR / "index.html", request.app[_HEADERS])


async def asset(request: web.Request) -> web.StreamResponse:
    """One committed asset; never a path outside the static folder."""
    relative = request.match_info["path"]
    try:
        target = (STATIC_DIR / relative).resolve()
        found = target.is_relative_to(STATIC_DIR.resolve()) and target.is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long for the file system
        found = False
    if not found:
        raise web.HTTPNotFound(reason="no such console file")
    return _file(target, request.app[_HEADERS])


def _file(path: Path, security: dict[str, str]) -> web.StreamResponse:
    # assets change with the hub's version and are small: always revalidate
    headers = {
        **security,
        "Cache-Control": "no-cache",
        "Content-Type": _CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
    }
    return web.FileResponse(path, headers=headers)
