"""What the server mounts beside the webhooks, in start-up order.

Each entry is ``setup(app) -> None``: it adds routes (and middlewares). What
runs in the background is the hub's (hub/app.py), started before any route serves.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hub.api import (
    admin,
    articles,
    audit,
    bots,
    calendar,
    console,
    contacts,
    handoff,
    iframe,
    media,
    openapi,
    outbound,
    rejected,
    reports,
    rooms,
    templates,
    tickets,
)
from hub.api import layout as desk_layout
from hub.api import webhooks_out as webhooks_out_api

__all__ = ["EXTENSIONS"]

EXTENSIONS: list[Callable[[web.Application], None]] = [
    openapi.setup,
    handoff.setup,
    contacts.setup,
    tickets.setup,
    admin.setup,
    rejected.setup,
    audit.setup,
    templates.setup,
    webhooks_out_api.setup,
    outbound.setup,
    bots.setup,
    desk_layout.setup,
    articles.setup,
    iframe.setup,
    media.setup,
    reports.setup,
    console.setup,
    calendar.setup,  # calendar and its feed (issue 20)
    rooms.setup,  # co-browsing rooms (issue 20)
]
