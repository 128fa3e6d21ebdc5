"""The event loop ``serve`` runs on: uvloop by default, asyncio's own on request (``[server] event_loop``).

The hub is one event loop doing many small things per customer message (a few HTTP calls, tens of database
round trips): the loop's own work between them (polling sockets, scheduling callbacks, writing to transports) is
a large share of a turn. uvloop does that work in libuv instead of Python and is a drop-in loop for aiohttp,
asyncpg and aiosqlite (ADR 0047). ``"asyncio"`` keeps the standard library's loop, for a platform without uvloop
or for asyncio's debug mode.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Final

__all__ = ["EVENT_LOOPS", "check_event_loop", "new_event_loop"]

EVENT_LOOPS: Final = ("uvloop", "asyncio")


def check_event_loop(name: str) -> str | None:
    """Why ``name`` cannot be used here, or None when it can (read once, when the settings are loaded)."""
    if name not in EVENT_LOOPS:
        return f"must be one of {', '.join(repr(loop) for loop in EVENT_LOOPS)}, not {name!r}"
    if name == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return 'uvloop is not installed on this platform; set it to "asyncio"'
    return None


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new loop of the kind ``[server] event_loop`` names (checked beforehand by ``check_event_loop``)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
