"""The event loop a benchmark runs the hub on: the one ``channelhub serve`` runs on ([server] event_loop).

Every in-process benchmark of issues 18 and 19 takes ``--loop asyncio|uvloop`` (default: serve's default), so
that a figure is taken on the loop production runs and the two loops can be compared in one tree (ADR 0047). A
measure's baseline in the same process (direct POSTs, plain writes) runs on the same loop as the hub it is
compared with.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from hub.event_loop import EVENT_LOOPS, new_event_loop
from hub.settings import ServerSettings

__all__ = ["add_loop_argument", "run"]

T = TypeVar("T")


def add_loop_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loop", choices=EVENT_LOOPS, default=ServerSettings().event_loop, help="the event loop (default: serve's)"
    )


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """``asyncio.run`` on the named loop."""
    with asyncio.Runner(loop_factory=lambda: new_event_loop(loop)) as runner:
        return runner.run(main)
