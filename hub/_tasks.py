"""Stopping a part's background tasks: cancel them all, then wait for each to end."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel every task first (so none waits on another that is still running), then await each."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError):
            await task
