"""Background loops stop when asked, whatever they were doing at that moment.

On Python 3.11, ``asyncio.wait_for`` swallows a cancellation that arrives just as the awaited event is set:
the routing loop then carried on, and the server's shutdown (and a CI run) waited for it forever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web

from hub.api.keys import BUS, SETTINGS
from hub.api.routing import Router
from hub.bus import EventBus
from hub.settings import Settings


@pytest.mark.parametrize("turns", range(6))  # how many turns of the loop pass between the wake-up and stop()
async def test_the_router_stops_even_when_woken_just_before(make_settings: Callable[..., Settings], turns: int) -> None:
    app = web.Application()
    app[SETTINGS] = make_settings()
    app[BUS] = EventBus()
    router = Router(app)
    sweeps: list[None] = []

    async def sweep(now: object = None) -> None:
        sweeps.append(None)

    router.sweep = sweep  # type: ignore[assignment,method-assign]  (no database: the loop is what is tested)
    await router.start()
    await asyncio.sleep(0.01)
    router.kick()
    for _ in range(turns):
        await asyncio.sleep(0)

    stopping = asyncio.create_task(router.stop())
    done, _ = await asyncio.wait([stopping], timeout=3)  # a bound on a hang, not a measure of speed (tick: 1 s)
    assert stopping in done, "the routing loop did not stop"
