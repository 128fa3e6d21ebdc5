"""Bots: the time the hub adds between a customer's message and the bot's reply reaching the provider.

    python bench/bot_replies.py [--engine sqlite|postgres] [--rate 100] [--seconds 5] [--together] [--warmup 0]
                                [--processes 1]

**reply** — customer message → bot webhook → bot reply → provider, at ``--rate`` new conversations per second for
``--seconds``. Each customer writes once (the ingest's submit, as the webhook route calls it after checking the
signature); the hub's bot runner POSTs the signed message to a loopback webhook bot that answers at once in its
response body; the reply goes through the policy and the outbox to a loopback receiver that answers as Twilio's
Messages API does. Per conversation: the time from the customer's message to the reply's arrival at the provider,
minus the bot's own time (its handler, measured in the bot). Target: p99 under 50 ms added.

The hub runs as ``channelhub serve`` runs it: once it has started, what start-up created is frozen out of the cycle
collector's view and the collector's thresholds are raised (``settle_garbage_collector``). Without it, a full
collection pass over the start-up's ~150,000 objects stalls the event loop for 50-70 ms once every few seconds,
and at 100 conversations/s that one pause is the p99.

``--warmup N``: N conversations first, at the same rate and without a pause before the measured ones, not
measured. The first turns after the hub starts open its connections (the database's, the bot's, the provider's)
and build its statements, tens of milliseconds that a hub running at that rate paid long ago; and a hub warmed one
conversation at a time has not yet done what many at once ask of it (more connections, larger groups): in two of
three PostgreSQL runs warmed that way, the first fifth of a second at the full rate was the slowest of the run.

The bot and the provider are external systems: by default they run in a process of their own (serving on
loopback), so the hub's event loop is the hub's alone, as in production. Both processes stamp times with the same
system-wide monotonic clock. ``--together`` runs them in the hub's process instead, competing for its event loop
(the structure of the first measurements, kept so that figures taken either way can be compared).

``--processes N`` (PostgreSQL only): N hub processes on one database, as docs/scaling.md says to run the hub
when one process's event loop has no time to spare. Each is a hub of its own (``build_hub``, its own bot runner and
outbox) that receives every N-th conversation, as a proxy spreading webhooks over the processes would hand them
out; together they keep the one schedule of ``--rate`` conversations a second. The CPU figure is then the sum of
the hub processes' CPU per conversation.

This is a measure of the bots work (issue 18); bench/bots.py (outgoing webhooks) lists it among its measures when
both are in the tree. The code measured is the tree the script is run from.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd()))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _databases import database
from _loop import add_loop_argument
from _loop import run as run_on_loop
from aiohttp import web

from hub.api.server import settle_garbage_collector
from hub.bootstrap import build_hub
from hub.model import Channel, InboundMessage
from hub.settings import load_settings
from hub.store import Store

__all__ = ["measure_bot_reply"]

SECRET = "whsec_" + base64.b64encode(b"bench-bot-secret-bench-bot-1234").decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Timings:
    """What the bot spent on each conversation's message and when its reply reached the provider (stamped with
    ``time.monotonic``, one clock for every process of the machine); the hub's side stamps when it was sent."""

    def __init__(self, expected: int) -> None:
        self.bot_own: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = expected

    async def bot(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        event = json.loads(await request.read())
        token = str(event["message"]["text"])
        answer = web.json_response({"actions": [{"type": "message", "text": f"re {token}"}]})
        self.bot_own[token] = time.monotonic() - started
        return answer

    async def provider(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("Body", "")).removeprefix("re ")
        self.arrived[token] = time.monotonic()
        if len(self.arrived) >= self.expected:
            self.done.set()
        return web.json_response({"sid": f"SM{token}", "status": "queued"}, status=201)

    async def serve(self) -> tuple[list[web.AppRunner], int, int]:
        """The bot and the provider on loopback: their runners and ports."""
        bot_port, provider_port = _free_port(), _free_port()
        bot_app, provider_app = web.Application(), web.Application()
        bot_app.router.add_post("/bot", self.bot)
        provider_app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.provider)
        return [await _serve(bot_app, bot_port), await _serve(provider_app, provider_port)], bot_port, provider_port


def _outside(expected: int, pipe: Connection) -> None:
    """The bot and the provider in a process of their own: sends their ports, then, once every reply arrived
    (or the hub's side says stop), what was timed."""

    async def serve() -> None:
        timings = Timings(expected)
        runners, bot_port, provider_port = await timings.serve()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(pipe.fileno(), stop.set)
        pipe.send((bot_port, provider_port))
        try:
            done = asyncio.create_task(timings.done.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([done, stopped], return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
            stopped.cancel()
        finally:
            for runner in runners:
                await runner.cleanup()
        pipe.send((timings.bot_own, timings.arrived))

    asyncio.run(serve())


class _Outside:
    """The hub's handle on the other process."""

    def __init__(self, expected: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=_outside, args=(expected, theirs), daemon=True)

    async def start(self) -> tuple[int, int]:
        self._process.start()
        bot_port, provider_port = await asyncio.to_thread(self._pipe.recv)
        return int(bot_port), int(provider_port)

    async def results(self, wait: float) -> tuple[dict[str, float], dict[str, float]]:
        if not await asyncio.to_thread(self._pipe.poll, wait):
            self._pipe.send("stop")
        bot_own, arrived = await asyncio.to_thread(self._pipe.recv)
        await asyncio.to_thread(self._process.join, 10)
        return bot_own, arrived


def _hub_process(config: str, url: str, schedule: tuple[float, int, int, int, int], pipe: Connection) -> None:
    """One hub process of ``--processes N``: starts a hub on the shared database, says so, waits for the start
    time, sends its share of the conversations (``schedule``: rate, warm-up, measured, processes, its index),
    then sends back when each was sent; once told to stop (every reply has arrived), its CPU from the first
    measured conversation on, and it stops its hub."""
    rate, warmup, count, processes, index = schedule

    async def serve() -> None:
        settings = load_settings(Path(config), {})
        store = Store(url)
        try:
            hub = build_hub(settings, store=store)
            async with hub:
                settle_garbage_collector()
                pipe.send("ready")
                start = await asyncio.to_thread(pipe.recv)
                sent, cpu = await _send_share(hub, start, rate, range(index, warmup + count, processes), warmup)
                pipe.send(sent)
                await asyncio.to_thread(pipe.recv)  # stop
                pipe.send(time.process_time() - cpu)
        finally:
            await store.close()

    asyncio.run(serve())


async def _send_share(
    hub: Any, start: float, rate: float, indices: range, warmup: int
) -> tuple[dict[str, float], float]:
    """The conversations numbered ``indices``, each at ``start + i / rate``, the first ``warmup`` numbers not
    measured: when each measured one was sent, and this process's CPU time (``time.process_time``) as the first
    measured one was due."""
    sent: dict[str, float] = {}
    tasks, cpu = [], time.process_time()
    measuring = False
    for i in indices:
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if i >= warmup and not measuring:
            measuring, cpu = True, time.process_time()
        if i < warmup:
            tasks.append(asyncio.create_task(_customer_writes(hub, {}, i, prefix="w")))
        else:
            tasks.append(asyncio.create_task(_customer_writes(hub, sent, i - warmup)))
    await asyncio.gather(*tasks)
    return sent, cpu


class _HubProcesses:
    """The parent's handle on the hub processes of ``--processes N``."""

    def __init__(self, config: Path, url: str, rate: float, warmup: int, count: int, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes, self._processes = [], []
        for index in range(processes):
            ours, theirs = context.Pipe()
            schedule = (rate, warmup, count, processes, index)
            self._pipes.append(ours)
            self._processes.append(
                context.Process(target=_hub_process, args=(str(config), url, schedule, theirs), daemon=True)
            )

    async def run(self) -> dict[str, float]:
        """Start every hub, then the schedule at one start time: when each conversation was sent."""
        for process in self._processes:
            process.start()
        for pipe in self._pipes:
            if await asyncio.to_thread(pipe.recv) != "ready":
                raise RuntimeError("a hub process did not start")
        start = time.monotonic() + 0.5
        for pipe in self._pipes:
            pipe.send(start)
        sent: dict[str, float] = {}
        for pipe in self._pipes:
            sent.update(await asyncio.to_thread(pipe.recv))
        return sent

    async def stop(self) -> float:
        """Stop every hub: the CPU they spent since their first measured conversation, summed."""
        cpu = 0.0
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            if process.is_alive():
                pipe.send("stop")
                if await asyncio.to_thread(pipe.poll, 30):
                    cpu += float(pipe.recv())
            await asyncio.to_thread(process.join, 30)
        return cpu


def _config(folder: Path, bot_port: int, provider_port: int) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        f"""
log_level = "WARNING"

[outbox]
workers = 4

[[statuses]]
id = "resolved"
name = "Resolved"

[[queues]]
id = "support"
name = "Support"

[[accounts]]
id = "wa"
channel = "whatsapp"
provider = "twilio"
queue = "support"
api_base = "http://127.0.0.1:{provider_port}"
account_sid = "ACbench"
auth_token = "bench-auth-token"
from_number = "+15550001111"
rate_limit = 100000

[[bots]]
id = "echo"
kind = "webhook"
queues = ["support"]
url = "http://127.0.0.1:{bot_port}/bot"
secret = "{SECRET}"
handoff_keywords = []
""",
        encoding="utf-8",
    )
    return path


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def measure_bot_reply(
    engine: str, rate: float, seconds: float, *, together: bool = False, warmup: int = 0, processes: int = 1
) -> dict[str, Any]:
    """p50 / p99 / max of the time the hub adds (ms), and how many conversations were measured. ``together``:
    the bot and the provider share the hub's process and event loop; ``warmup``: conversations first, at
    the same rate, not measured; ``processes``: hub processes on one PostgreSQL database."""
    if processes > 1 and (engine != "postgres" or together):
        raise ValueError("several hub processes share a PostgreSQL database, with the bot in its own process")
    count = int(rate * seconds)
    timings, outside = Timings(count + warmup), None
    runners: list[web.AppRunner] = []
    if together:
        runners, bot_port, provider_port = await timings.serve()
    else:
        outside = _Outside(count + warmup)
        bot_port, provider_port = await outside.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = _config(Path(folder), bot_port, provider_port)
            store: Store
            async with database(engine) as store:
                if processes > 1:
                    hubs = _HubProcesses(config, store.url, rate, warmup, count, processes)
                    try:
                        sent = await hubs.run()
                        assert outside is not None
                        bot_own, arrived = await outside.results(60)
                    finally:
                        cpu = await hubs.stop()
                else:
                    hub = build_hub(load_settings(config, {}), store=store)
                    async with hub:
                        settle_garbage_collector()  # as `channelhub serve` does once the hub has started
                        sent, cpu = await _send_share(hub, time.monotonic(), rate, range(warmup + count), warmup)
                        if outside is not None:
                            bot_own, arrived = await outside.results(60)
                        else:
                            await asyncio.wait_for(timings.done.wait(), timeout=60)
                            bot_own, arrived = timings.bot_own, timings.arrived
                        cpu = time.process_time() - cpu
    finally:
        for runner in runners:
            await runner.cleanup()
    measured = [token for token in arrived if token in sent]  # not the warm-up's
    added = sorted((arrived[token] - sent[token] - bot_own.get(token, 0.0)) * 1000 for token in measured)
    return {
        "conversations": len(added),
        "p50_ms": statistics.median(added),
        "p99_ms": added[min(len(added) - 1, int(len(added) * 0.99))],
        "max_ms": added[-1],
        "cpu_ms": cpu * 1000 / count,
    }


async def _customer_writes(hub: Any, sent: dict[str, float], i: int, *, prefix: str = "c") -> None:
    token = f"{prefix}{i}"
    message = InboundMessage(
        channel=Channel.WHATSAPP,
        account_id="wa",
        sender_id=f"+420{6 if prefix == 'c' else 7}{i:08d}",
        provider_message_id=f"SMin{token}",
        sent_at=hub.clock(),
        text=token,
    )
    sent[token] = time.monotonic()
    await hub.ingestor.submit([message])


async def run(args: argparse.Namespace) -> None:
    """The measure as bench/bots.py's ``MEASURES`` calls it."""
    together = bool(getattr(args, "together", False))
    warmup = int(getattr(args, "warmup", 0))
    processes = int(getattr(args, "processes", 1))
    figures = await measure_bot_reply(
        args.engine, args.rate, args.seconds, together=together, warmup=warmup, processes=processes
    )
    where = "bot and provider in the hub's process" if together else "bot and provider in their own process"
    if processes > 1:
        where = f"{processes} hub processes, {where}"
    if warmup:
        where += f", {warmup} conversations first not measured"
    print(
        f"bot replies ({args.engine}, {args.rate:g} conversations/s for {args.seconds:g} s, {where}): "
        f"{figures['conversations']} measured, time added by the hub p50 {figures['p50_ms']:.1f} ms, "
        f"p99 {figures['p99_ms']:.1f} ms, max {figures['max_ms']:.1f} ms (target p99 < 50 ms); the hub's "
        f"{'processes' if processes > 1 else 'process'} CPU {figures['cpu_ms']:.1f} ms per conversation"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rate", type=float, default=100.0, help="new conversations per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--together", action="store_true", help="run the bot and the provider in the hub's process (the old structure)"
    )
    parser.add_argument("--warmup", type=int, default=0, help="conversations first, at the same rate, not measured")
    parser.add_argument(
        "--processes", type=int, default=1, help="hub processes on one PostgreSQL database (--engine postgres)"
    )
    add_loop_argument(parser)
    args = parser.parse_args()
    run_on_loop(run(args), args.loop)


if __name__ == "__main__":
    main()
