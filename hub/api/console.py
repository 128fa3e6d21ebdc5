"""The agent and admin console: static files served by the hub at ``/``.

The console is plain HTML, CSS and ES modules committed under ``hub/api/static``;
there is no build step and nothing is fetched from outside the hub. It talks to
the hub only through the public REST and WebSocket API, so this module only
serves files and sets the headers that keep the page to itself.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

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
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


def setup(app: web.Application) -> None:
    """Mount the console at ``/`` and its assets under ``/console/``."""
    app.router.add_get("/", index, name="console_index")
    app.router.add_get("/console/{path:.+}", asset, name="console_asset")


async def index(request: web.Request) -> web.StreamResponse:
    """The single page; login happens inside it, against ``/api/v1/auth/login``."""
    return _file(STATIC_DIR / "index.html")


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
    return _file(target)


def _file(path: Path) -> web.StreamResponse:
    # assets change with the hub's version and are small: always revalidate
    headers = {
        **_SECURITY_HEADERS,
        "Cache-Control": "no-cache",
        "Content-Type": _CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
    }
    return web.FileResponse(path, headers=headers)
