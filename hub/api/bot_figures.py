"""What the supervisor overview adds for bots and business hours: per queue, the conversations its bot is
answering (``figures.bot``) and whether it is open now (``hours``: ``open``, ``opens_at``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api.keys import CLOCK, SETTINGS, STORE
from hub.hours import is_open, next_opening
from hub.store.bots import count_with_bots

__all__ = ["add_bot_figures"]


async def add_bot_figures(request: web.Request, queues: list[dict[str, Any]]) -> None:
    """Complete each queue's JSON (from the queue list) in place."""
    with_bots = await count_with_bots(request.app[STORE])
    settings, now = request.app[SETTINGS], request.app[CLOCK]()
    for queue in queues:
        queue["figures"]["bot"] = with_bots.get(queue["id"], 0)
        hours = settings.queue_hours.get(queue["id"])
        if hours is None:
            queue["hours"] = None
            continue
        opening = next_opening(hours, now)
        queue["hours"] = {
            "open": is_open(hours, now),
            "opens_at": opening.isoformat() if opening is not None else None,
            "time_zone": hours.time_zone,
        }
