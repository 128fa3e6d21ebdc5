"""Bots and integrations: one function per measure, and a ``main`` that runs them all (or those named).

    python bench/bots.py [--only outgoing] [--engine sqlite|postgres] [--deliveries 2000] [--conversations 200]
                         [--receiver process|inline]

**outgoing** — outgoing webhook deliveries per second: the hub's dispatcher (lease a batch of due deliveries,
sign each with the Standard Webhooks scheme, POST them concurrently, record every attempt) against direct POSTs
of the same bodies, with the same concurrency, to the same loopback receiver, in the same run. The deliveries
are spread over ``--conversations`` conversations (each conversation's are sent one after another, in order).
The receiver runs in a process of its own (``--receiver inline``: on the event loop of the hub and the direct
senders, as the first measurements did). Target: the hub at least 70% of the direct rate. Besides the rates it
prints the CPU per delivery, the least of the rounds, of this process, of the receiver's process and (PostgreSQL
on this machine) of the database server's backends for the bench database: where a delivery's cost goes on the
shared cores. The dispatcher runs in ``channelhub serve``, so the cycle collector is settled as ``serve`` settles it
once the dispatcher has started (the direct POSTs share the process and the setting).

**bot-replies** — the time the hub adds to a bot's reply (``bench/bot_replies.py``'s ``run``), listed when that
file is in the tree. Further measures go beside these, each a function returning its figures, and a line in
``MEASURES``.

The code measured is the tree the script is run from (the current directory comes first on the path).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd()))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from _databases import database
from _loop import add_loop_argument
from _loop import run as run_on_loop
from aiohttp import web
from sqlalchemy import func, select, text

from hub.api.server import settle_garbage_collector
from hub.bus import EventBus
from hub.settings import Settings
from hub.store.tables import webhook_deliveries
from hub.store.webhooks_out import insert_deliveries
from hub.webhooks_out import WebhookDispatcher, signed_headers
from hub.webhooks_out_config import WebhookOut, WebhooksDelivery

SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secret-123456").decode()


# ------------------------------------------------------------------ a loopback receiver


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receiver:
    """A bare aiohttp handler that reads the body and answers 204: what both sides send to."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.received = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _receive(self, request: web.Request) -> web.Response:
        await request.read()
        self.received += 1
        return web.Response(status=204)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def count(self) -> int:
        return self.received

    @property
    def pid(self) -> int | None:
        """The receiver's own process, when it has one (its CPU is read apart)."""
        return None


def _serve(port: int, ready: Any) -> None:
    """A receiver process: answers 204 to ``POST /hook`` and the number received to ``GET /count``."""

    async def run() -> None:
        received = 0

        async def receive(request: web.Request) -> web.Response:
            nonlocal received
            await request.read()
            received += 1
            return web.Response(status=204)

        async def count(_: web.Request) -> web.Response:
            return web.Response(text=str(received))

        app = web.Application()
        app.router.add_post("/hook", receive)
        app.router.add_get("/count", count)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()  # until terminated

    asyncio.run(run())


class ReceiverProcess(Receiver):
    """The same receiver in a process of its own, so that it does not share the event loop (and its share of a
    core) with the senders being measured."""

    def __init__(self) -> None:
        super().__init__()
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._process = context.Process(target=_serve, args=(self.port, self._ready), daemon=True)

    async def __aenter__(self) -> Receiver:
        self._process.start()
        if not await asyncio.to_thread(self._ready.wait, 30):
            raise RuntimeError("the receiver process did not start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._process.terminate()
        await asyncio.to_thread(self._process.join, 10)

    async def count(self) -> int:
        async with aiohttp.ClientSession() as session, session.get(self.url.replace("/hook", "/count")) as answer:
            return int(await answer.text())

    @property
    def pid(self) -> int | None:
        return self._process.pid


def _cpu_seconds(pid: int) -> float | None:
    """User and system time of a process, all its threads (Linux's /proc; None elsewhere, or for a process of
    another machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backends(store: Any) -> list[int]:
    """PostgreSQL: the server processes of the bench database's connections (none on SQLite)."""
    if store.dialect != "postgresql":
        return []
    async with store.read() as connection:
        query = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [int(pid) for pid in (await connection.execute(query)).scalars()]


class _Spent:
    """CPU seconds the receiver and the database server (PostgreSQL on this machine: its backends for the bench
    database) spend from ``start`` to ``stop``; a backend that appears meanwhile counts from zero, one that
    exits meanwhile is missed. None when a process cannot be read."""

    def __init__(self, store: Any, receiver: Receiver) -> None:
        self._store = store
        self._receiver = receiver
        self._before: dict[str, dict[int, float]] = {}

    async def _read(self) -> dict[str, dict[int, float]]:
        receiver = [] if self._receiver.pid is None else [self._receiver.pid]
        read: dict[str, dict[int, float]] = {}
        for name, pids in (("receiver", receiver), ("server", await _backends(self._store))):
            seconds = {pid: _cpu_seconds(pid) for pid in pids}
            read[name] = {pid: spent for pid, spent in seconds.items() if spent is not None}
        return read

    async def start(self) -> None:
        self._before = await self._read()

    async def stop(self) -> dict[str, float | None]:
        after = await self._read()
        return {
            name: sum(seconds - self._before[name].get(pid, 0.0) for pid, seconds in pids.items()) if pids else None
            for name, pids in after.items()
        }


def payload(n: int, conversation: int, now: datetime) -> dict[str, Any]:
    """A body the size of a real ``message.created`` (a conversation view and a message)."""
    return {
        "type": "message.created",
        "timestamp": now.isoformat(),
        "data": {
            "conversation": {
                "id": conversation,
                "state": "waiting",
                "queue": "support",
                "queue_name": "Support",
                "channel": "whatsapp",
                "account": "wa-main",
                "identity": {"id": conversation, "external_id": f"+4206{conversation:08d}", "display_name": "Jana"},
                "opened_at": now.isoformat(),
                "last_message_at": now.isoformat(),
                "participants": [],
            },
            "message": {
                "id": n,
                "conversation_id": conversation,
                "direction": "in",
                "author": "customer",
                "kind": "text",
                "text": f"Hello, this is message {n}; where is my parcel?",
                "attachments": [],
                "created_at": now.isoformat(),
                "delivery_state": "received",
            },
        },
    }


# ------------------------------------------------------------------ measures


async def _direct(url: str, bodies: list[tuple[int, bytes]], concurrency: int) -> float:
    """Seconds for ``concurrency`` workers to POST every body, signed the same way, one session."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                n, body = queue.get_nowait()
                headers = signed_headers(SECRET, n, body, datetime.now(UTC))
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    assert answer.status == 204

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def _delivered(store: Any) -> int:
    async with store.read() as connection:
        query = select(func.count()).where(webhook_deliveries.c.status == "delivered")
        return int((await connection.execute(query)).scalar_one())


async def measure_outgoing(
    engine: str, deliveries: int, conversations: int, concurrency: int, rounds: int = 3, receiver_in: str = "process"
) -> dict[str, float]:
    """Outgoing webhook deliveries/s through the dispatcher, and direct POSTs/s, to one loopback receiver.

    The two alternate ``rounds`` times (direct, hub, direct, hub, ...) and the best round of each counts: on a
    shared machine a round's rate is what the load around it left, and alternating exposes both to the same.
    """
    direct_best = hub_best = 0.0
    direct_cpu = hub_cpu = float("inf")  # the bench process's CPU seconds per delivery, the least of the rounds
    # the receiver's and the database server's, the least of the rounds (None: not readable here)
    others: dict[str, float] = {}
    async with ReceiverProcess() if receiver_in == "process" else Receiver() as receiver, database(engine) as store:
        hook = WebhookOut(id="bench", url=receiver.url, secret=SECRET, events=("message.created",))
        tuning = WebhooksDelivery(concurrency=concurrency, poll_seconds=0.05)
        settings = Settings(webhooks_out=(hook,), webhooks_delivery=tuning)
        dispatcher = WebhookDispatcher(store, EventBus(), settings, clock=lambda: datetime.now(UTC))
        await dispatcher.start()
        settle_garbage_collector()  # as `channelhub serve` does once started: the dispatcher runs there
        spent = _Spent(store, receiver)
        try:
            for round_ in range(rounds):
                now = datetime.now(UTC)
                first = round_ * deliveries
                rows = [_row(n, n % conversations, now) for n in range(first, first + deliveries)]
                # the bytes the hub sends: the payload as the store serialises it (json.dumps' defaults)
                bodies = [(n, json.dumps(r["payload"]).encode()) for n, r in enumerate(rows)]
                await spent.start()
                cpu = time.process_time()
                direct_best = max(direct_best, deliveries / await _direct(receiver.url, bodies, concurrency))
                direct_cpu = min(direct_cpu, (time.process_time() - cpu) / deliveries)
                _least(others, "direct", await spent.stop(), deliveries)
                async with store.write() as connection:
                    await insert_deliveries(connection, rows)
                await spent.start()
                started, cpu = time.perf_counter(), time.process_time()
                dispatcher.kick()
                while dispatcher.delivered < first + deliveries:  # noqa: ASYNC110 - polling a counter is the point
                    await asyncio.sleep(0.002)
                hub_best = max(hub_best, deliveries / (time.perf_counter() - started))
                hub_cpu = min(hub_cpu, (time.process_time() - cpu) / deliveries)
                _least(others, "hub", await spent.stop(), deliveries)
        finally:
            await dispatcher.stop()
        assert await _delivered(store) == rounds * deliveries
        assert await receiver.count() == 2 * rounds * deliveries
    return {
        "direct_per_s": direct_best,
        "hub_per_s": hub_best,
        "ratio": hub_best / direct_best,
        "direct_cpu_us": direct_cpu * 1e6,
        "hub_cpu_us": hub_cpu * 1e6,
        **{f"{name}_us": seconds * 1e6 for name, seconds in others.items()},
    }


def _least(figures: dict[str, float], side: str, spent: dict[str, float | None], deliveries: int) -> None:
    """Keep the least CPU seconds per delivery of each process read so far, as ``{side}_{process}_cpu``."""
    for process, seconds in spent.items():
        if seconds is not None:
            key = f"{side}_{process}_cpu"
            figures[key] = min(figures.get(key, float("inf")), seconds / deliveries)


def _row(n: int, conversation: int, now: datetime) -> dict[str, Any]:
    """A pending delivery as the store records it: what the dispatcher finds due."""
    return {
        "subscription_id": "bench",
        "event_type": "message.created",
        "order_key": f"conversation:{conversation}",
        "conversation_id": conversation,
        "payload": payload(n, conversation, now),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _outgoing(args: argparse.Namespace) -> Awaitable[None]:
    async def run() -> None:
        figures = await measure_outgoing(
            args.engine, args.deliveries, args.conversations, args.concurrency, args.rounds, args.receiver
        )
        print(
            f"outgoing webhooks ({args.engine}, {args.deliveries} deliveries over {args.conversations} conversations, "
            f"concurrency {args.concurrency}, receiver {args.receiver}, best of {args.rounds} rounds): "
            f"hub {figures['hub_per_s']:,.0f}/s, "
            f"direct {figures['direct_per_s']:,.0f}/s, ratio {figures['ratio']:.0%} (target >= 70%); "
            f"this process's CPU per delivery: hub {figures['hub_cpu_us']:.0f} us, "
            f"direct {figures['direct_cpu_us']:.0f} us"
            + "".join(
                f"; {process}'s: hub {figures[f'hub_{process}_cpu_us']:.0f} us, "
                f"direct {figures[f'direct_{process}_cpu_us']:.0f} us"
                for process in ("receiver", "server")
                if f"hub_{process}_cpu_us" in figures and f"direct_{process}_cpu_us" in figures
            )
        )

    return run()


MEASURES: dict[str, Callable[[argparse.Namespace], Awaitable[None]]] = {
    "outgoing": _outgoing,
}
try:  # the bots' reply latency (bench/bot_replies.py, issue 18's bots work), when it is in the tree
    import bot_replies

    MEASURES["bot-replies"] = bot_replies.run
except ImportError:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(MEASURES), action="append", help="run only these measures")
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="direct and hub alternate; the best of each counts")
    parser.add_argument(
        "--receiver", choices=["process", "inline"], default="process", help="outgoing: where the receiver runs"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="bot-replies: new conversations per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="bot-replies: how long")
    add_loop_argument(parser)
    args = parser.parse_args()

    async def run_all() -> None:
        for name in args.only or list(MEASURES):
            await MEASURES[name](args)

    run_on_loop(run_all(), args.loop)


if __name__ == "__main__":
    main()
