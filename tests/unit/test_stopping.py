"""Background loops stop when asked, whatever they were doing at that moment.

On Python 3.11, ``asyncio.wait_for`` swallows a cancellation that arrives just as the awaited event is set:
the routing loop then carried on, and the server's shutdown (and a CI run) waited for it forever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from hub.bus import EventBus
from hub.router import Router
from hub.settings import Settings
from hub.store import Store


@pytest.mark.parametrize("turns", range(6))  # how many turns of the loop pass between the wake-up and stop()
async def test_the_router_stops_even_when_woken_just_before(
    make_settings: Callable[..., Settings], sqlite_url: str, turns: int
) -> None:
    settings = make_settings()
    store = Store(sqlite_url)  # never connected to: the loop is what is tested
    router = Router(store, EventBus(), settings, clock=lambda: datetime.now(UTC))
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
    await store.close()
