"""Routing as the HTTP server's tests drive it: one sweep of an app's hub at a chosen time.

The router itself is hub/router.py, started and stopped by the hub.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from hub.api.keys import HUB, ROUTER
from hub.router import SweepResult

__all__ = ["ROUTER", "sweep_app"]


async def sweep_app(app: web.Application, *, now: datetime | None = None) -> SweepResult:
    """One routing pass for ``app``'s hub at ``now`` (tests call this with their clock)."""
    return await app[HUB].router.sweep(now)
