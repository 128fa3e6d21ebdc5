"""Bots: the time the hub adds between a customer's message and the bot's reply reaching the provider.

    python bench/bot_replies.py [--engine sqlite|postgres] [--rate 100] [--seconds 5]

**reply** — customer message → bot webhook → bot reply → provider, at ``--rate`` new conversations per second for
``--seconds``. Each customer writes once (the ingest's submit, as the webhook route calls it after checking the
signature); the hub's bot runner POSTs the signed message to a loopback webhook bot that answers at once in its
response body; the reply goes through the policy and the outbox to a loopback receiver that answers as Twilio's
Messages API does. Per conversation: the time from the customer's message to the reply's arrival at the provider,
minus the bot's own time (its handler, measured in the bot). Target: p99 under 50 ms added.

This is a measure of the bots work (issue 18); bench/bots.py (outgoing webhooks) lists it among its measures when
both are in the tree. The code measured is the tree the script is run from.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd()))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _databases import database
from aiohttp import web

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
    """When each conversation's message left the customer, what the bot spent, when the reply reached the provider."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.bot_own: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = 0

    async def bot(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        event = json.loads(await request.read())
        token = str(event["message"]["text"])
        answer = web.json_response({"actions": [{"type": "message", "text": f"re {token}"}]})
        self.bot_own[token] = time.perf_counter() - started
        return answer

    async def provider(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("Body", "")).removeprefix("re ")
        self.arrived[token] = time.perf_counter()
        if len(self.arrived) >= self.expected:
            self.done.set()
        return web.json_response({"sid": f"SM{token}", "status": "queued"}, status=201)


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


async def measure_bot_reply(engine: str, rate: float, seconds: float) -> dict[str, Any]:
    """p50 / p99 / max of the time the hub adds (ms), and how many conversations were measured."""
    timings = Timings()
    bot_port, provider_port = _free_port(), _free_port()
    bot_app, provider_app = web.Application(), web.Application()
    bot_app.router.add_post("/bot", timings.bot)
    provider_app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", timings.provider)
    runners = [await _serve(bot_app, bot_port), await _serve(provider_app, provider_port)]
    count = int(rate * seconds)
    timings.expected = count
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = load_settings(_config(Path(folder), bot_port, provider_port), {})
            store: Store
            async with database(engine) as store:
                hub = build_hub(settings, store=store)
                async with hub:
                    start = time.perf_counter()
                    tasks = []
                    for i in range(count):
                        delay = start + i / rate - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        tasks.append(asyncio.create_task(_customer_writes(hub, timings, i)))
                    await asyncio.gather(*tasks)
                    await asyncio.wait_for(timings.done.wait(), timeout=60)
    finally:
        for runner in runners:
            await runner.cleanup()
    added = sorted(
        (timings.arrived[token] - timings.sent[token] - timings.bot_own.get(token, 0.0)) * 1000
        for token in timings.arrived
    )
    return {
        "conversations": len(added),
        "p50_ms": statistics.median(added),
        "p99_ms": added[min(len(added) - 1, int(len(added) * 0.99))],
        "max_ms": added[-1],
    }


async def _customer_writes(hub: Any, timings: Timings, i: int) -> None:
    token = f"c{i}"
    message = InboundMessage(
        channel=Channel.WHATSAPP,
        account_id="wa",
        sender_id=f"+4206{i:08d}",
        provider_message_id=f"SMin{i}",
        sent_at=hub.clock(),
        text=token,
    )
    timings.sent[token] = time.perf_counter()
    await hub.ingestor.submit([message])


async def run(args: argparse.Namespace) -> None:
    """The measure as bench/bots.py's ``MEASURES`` calls it."""
    figures = await measure_bot_reply(args.engine, args.rate, args.seconds)
    print(
        f"bot replies ({args.engine}, {args.rate:g} conversations/s for {args.seconds:g} s): "
        f"{figures['conversations']} measured, time added by the hub p50 {figures['p50_ms']:.1f} ms, "
        f"p99 {figures['p99_ms']:.1f} ms, max {figures['max_ms']:.1f} ms (target p99 < 50 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rate", type=float, default=100.0, help="new conversations per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
