"""The console's files: served at ``/`` and ``/console/``, self-contained, locked to the hub.

The behaviour of the page itself is tested in a real browser (tests/browser).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hub.api import console
from hub.api.keys import SETTINGS
from hub.settings import load_settings

_IMPORT = re.compile(r"""(?:^|\n)\s*import\s+(?:[^'";]+?\s+from\s+)?["']([^"']+)["']""")
_DYNAMIC_IMPORT = re.compile(r"""import\(\s*["']([^"']+)["']\s*\)""")


def _app() -> web.Application:
    app = web.Application()
    app[SETTINGS] = load_settings(None, {})  # the CSP's frame-src comes from the queues' iframe hosts
    console.setup(app)
    return app


async def test_index_is_served_at_the_root_with_a_strict_content_security_policy(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app())
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    body = await response.text()
    assert '<script type="module" src="/console/app.js">' in body
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_assets_are_served_with_their_content_types(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app())
    for path, kind in [
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
        ("/console/js/api.js", "text/javascript"),
    ]:
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == kind, path


async def test_a_path_outside_the_static_folder_is_refused(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app())
    for path in ["/console/%2e%2e/console.py", "/console/..%2Fconsole.py", "/console/js/%2e%2e/%2e%2e/server.py"]:
        response = await client.get(path)
        assert response.status == 404, path
    assert (await client.get("/console/no-such-file.js")).status == 404


async def test_every_module_the_page_imports_is_served(aiohttp_client: Any) -> None:
    """No build step: the browser resolves these imports itself, so each one must exist."""
    client = await aiohttp_client(_app())
    pending = ["/console/app.js"]
    seen: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response = await client.get(path)
        assert response.status == 200, f"{path} is imported but not served"
        source = await response.text()
        for spec in _IMPORT.findall(source) + _DYNAMIC_IMPORT.findall(source):
            assert spec.startswith("."), f"{path} imports {spec!r}: only relative imports of committed files"
            base = path.rsplit("/", 1)[0]
            parts = [*base.split("/"), *spec.split("/")]
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part not in (".", ""):
                    resolved.append(part)
            pending.append("/" + "/".join(resolved))
    assert len(seen) >= 8


def test_the_console_loads_nothing_from_outside_the_hub() -> None:
    for file in console.STATIC_DIR.rglob("*"):  # the vendored chart library included
        if not file.is_file() or file.suffix not in (".html", ".js", ".css"):
            continue
        text = file.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']https?://""", text), file.name
        assert not re.search(r"""@import\s+url\(["']?https?://""", text), file.name
        assert not re.search(r"""fetch\(\s*["'`]https?://""", text), file.name
        assert "innerHTML" not in text, f"{file.name}: build DOM with textContent, never parse text as HTML"
