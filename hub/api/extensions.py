"""What the server mounts beside the webhooks, in start-up order.

Each entry is ``setup(app) -> None``: it adds routes (and middlewares). What
runs in the background is the hub's (hub/app.py), started before any route serves.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hub.api import admin, console, contacts, handoff, openapi, outbound, rejected, reports, templates, tickets

__all__ = ["EXTENSIONS"]

EXTENSIONS: list[Callable[[web.Application], None]] = [
    openapi.setup,
    handoff.setup,
    contacts.setup,
    tickets.setup,
    admin.setup,
    rejected.setup,
    templates.setup,
    outbound.setup,
    reports.setup,
    console.setup,
]
