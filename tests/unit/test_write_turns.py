"""SQLite's write turn within a process: first come, first served, and a background write gives way for a
moment at most (ADR 0051)."""

from __future__ import annotations

import asyncio

import pytest

from hub.store._write_turns import WriteTurns


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def queued(turns: WriteTurns, count: int) -> None:
    """Until ``count`` writers wait for the turn (each asks as soon as its task first runs)."""
    for _ in range(10):
        if turns.waiting >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{turns.waiting} writers wait for the turn, not {count}")


async def served_in_order(
    turns: WriteTurns, writers: list[tuple[str, bool]], *, clock: Clock | None = None
) -> list[str]:
    """Who got the turn, in order, when ``writers`` (name, background) ask one after another while it is held."""
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn():
            await release.wait()

    async def writer(name: str, background: bool) -> None:
        async with turns.turn(background=background):
            order.append(name)
            await asyncio.sleep(0)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    tasks = []
    for count, (name, background) in enumerate(writers, start=1):
        tasks.append(asyncio.create_task(writer(name, background)))
        await queued(turns, count)
        if clock is not None:
            clock.now += 0.01
    release.set()
    await asyncio.gather(held, *tasks)
    return order


async def test_writers_are_served_in_the_order_they_asked() -> None:
    turns = WriteTurns()
    assert await served_in_order(turns, [(f"w{n}", False) for n in range(5)]) == ["w0", "w1", "w2", "w3", "w4"]
    assert turns.waiting == 0


async def test_a_background_write_gives_way_to_writers_that_asked_after_it() -> None:
    turns = WriteTurns(patience=60)
    order = await served_in_order(turns, [("log", True), ("ingest", False), ("log 2", True), ("outbox", False)])
    assert order == ["ingest", "outbox", "log", "log 2"]


async def test_a_background_write_that_waited_its_patience_goes_first() -> None:
    clock = Clock()
    turns = WriteTurns(patience=0.025, clock=clock)
    # asked at 0.00, then writers at 0.01, 0.02 and 0.03: by the first hand-over it has waited 0.04
    order = await served_in_order(
        turns, [("log", True), ("ingest", False), ("outbox", False), ("router", False)], clock=clock
    )
    assert order == ["log", "ingest", "outbox", "router"]


async def test_a_free_turn_is_taken_at_once_by_either_kind() -> None:
    turns = WriteTurns()
    async with turns.turn(background=True):
        assert turns.waiting == 0
    async with turns.turn():
        pass
    async with turns.turn(background=True):
        pass


async def test_a_writer_cancelled_while_waiting_leaves_no_trace() -> None:
    turns = WriteTurns()
    release = asyncio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with turns.turn():
            await release.wait()

    async def writer(name: str, background: bool = False) -> None:
        async with turns.turn(background=background):
            order.append(name)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    gone = asyncio.create_task(writer("gone"))
    gone_too = asyncio.create_task(writer("gone too", background=True))
    await queued(turns, 2)
    stays = asyncio.create_task(writer("stays"))
    await queued(turns, 3)
    gone.cancel()
    gone_too.cancel()
    await asyncio.sleep(0)
    assert turns.waiting == 1
    release.set()
    await asyncio.gather(held, stays)
    for task in (gone, gone_too):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert order == ["stays"]
    async with turns.turn():  # free again
        pass


async def test_a_writer_cancelled_as_it_is_given_the_turn_passes_it_on() -> None:
    turns = WriteTurns()
    release = asyncio.Event()
    order: list[str] = []
    waiters: list[asyncio.Task[None]] = []

    async def holder() -> None:
        async with turns.turn():
            await release.wait()
        waiters[0].cancel()  # it has just been given the turn and has not run since

    async def writer(name: str) -> None:
        async with turns.turn():
            order.append(name)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(writer("unlucky")))
    next_one = asyncio.create_task(writer("next"))
    await queued(turns, 2)
    release.set()
    await held
    with pytest.raises(asyncio.CancelledError):
        await waiters[0]
    await asyncio.wait_for(next_one, 5)  # had the turn been lost with the cancelled writer, nobody would get it
    assert order == ["next"]
    assert turns.waiting == 0
    async with turns.turn():  # free again
        pass
