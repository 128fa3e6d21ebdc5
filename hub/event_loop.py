"""The event loop ``serve`` runs on (``[server] event_loop``): asyncio's own by default, or uvloop.

uvloop runs the same asyncio loop on libuv, and aiohttp, asyncpg and aiosqlite run on it unchanged. Measured on
the hub (ADR 0047), it shortens the queue of a busy hub's bot turns, but it has no ``loop.sendfile``: media kept
on local disk are then copied through Python instead of sent by the kernel, at about two thirds of the rate.
So it is a choice, not the default: worth it for a hub whose media live in S3 (relayed in chunks on either loop)
and whose load is many short messages. It is an optional dependency (``pip install "channelhub[uvloop]"``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Final

__all__ = ["EVENT_LOOPS", "check_event_loop", "new_event_loop"]

EVENT_LOOPS: Final = ("asyncio", "uvloop")


def check_event_loop(name: str) -> str | None:
    """Why ``name`` cannot be used here, or None when it can (read once, when the settings are loaded)."""
    if name not in EVENT_LOOPS:
        return f"must be one of {', '.join(repr(loop) for loop in EVENT_LOOPS)}, not {name!r}"
    if name == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return 'uvloop is not installed: install it (pip install "channelhub[uvloop]"; not on Windows) or use "asyncio"'
    return None


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new loop of the kind ``[server] event_loop`` names (checked beforehand by ``check_event_loop``)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
