"""Webhook -> offer on an agent's WebSocket, against the webhook's own acknowledgement, in the same run.

    python bench/handoff.py [--rate 200] [--seconds 10] [--agents 200] [--database-url postgresql://...]
                            [--processes 2]

The hub runs as a real `channelhub serve` process (SQLite file by default). Before it starts, this script
creates the agents (all in queue `support`, capacity high enough never to fill), then logs each in over HTTP,
sets them ready and opens their WebSockets. It then sends signed Messenger webhooks, each from a new customer
(so each opens a new conversation), at a fixed rate. For every webhook it records when the 200 came back
(acknowledgement latency) and when the offer for that customer's conversation arrived on one of the sockets
(hand-off latency, from the same start). Reported: p50/p99 of both, the p50/p99 of the difference
("added over the acknowledgement") and the ratio handoff/ack.

``--processes 2`` (PostgreSQL only) starts two hub processes on the one database: the webhooks go to the first,
the agents log in and listen on the second, so every offer crosses from one process to the other (LISTEN/NOTIFY,
docs/scaling.md). Run it beside a one-process run for the figure it adds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.model import Role
from hub.store import Store
from hub.store.agents import create_agent

PAGE_ID = "100200300"
SECRET = "bench-messenger-secret"
PASSWORD = "bench-agent-password"
CONFIG = """
log_level = "WARNING"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[database]
url = "{database_url}"
[routing]
tick_seconds = 1.0
[[statuses]]
id = "resolved"
[[queues]]
id = "support"
offer_timeout = 600
[[accounts]]
id = "fb"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9/graph"
page_id = "{page_id}"
app_secret = "{secret}"
verify_token = "v"
page_access_token = "t"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook(run: str, n: int) -> tuple[str, bytes, dict[str, str]]:
    now = int(time.time() * 1000)
    psid = f"psid{run}{n}"
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": psid},
                            "recipient": {"id": PAGE_ID},
                            "timestamp": now,
                            "message": {"mid": f"m_{run}_{n}", "text": f"hello {n}"},
                        }
                    ],
                }
            ],
        }
    ).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return psid, body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def create_agents(database_url: str, count: int) -> list[str]:
    store = Store(database_url)
    try:
        await store.migrate()
        now = datetime.now(UTC)
        logins = [f"bench{n:03d}" for n in range(count)]
        for start in range(0, count, 16):
            await asyncio.gather(
                *(
                    create_agent(
                        store,
                        login=login,
                        password=PASSWORD,
                        role=Role.AGENT,
                        now=now,
                        capacity=100_000,
                        queues=["support"],
                    )
                    for login in logins[start : start + 16]
                )
            )
        return logins
    finally:
        await store.close()


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the hub did not become ready")


async def run(
    base: str, logins: list[str], rate: float, seconds: float, webhook_base: str | None = None
) -> dict[str, list[float]]:
    """Agents on ``base``; webhooks to ``webhook_base`` (another process on the same database) or ``base``."""
    hook = webhook_base or base
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await wait_ready(session, base)
        await wait_ready(session, hook)
        tokens: list[str] = []
        for start in range(0, len(logins), 16):
            batch = logins[start : start + 16]

            async def login(name: str) -> str:
                async with session.post(f"{base}/api/v1/auth/login", json={"login": name, "password": PASSWORD}) as r:
                    r.raise_for_status()
                    token = str((await r.json())["token"])
                headers = {"Authorization": f"Bearer {token}"}
                async with session.put(f"{base}/api/v1/me/presence", json={"state": "ready"}, headers=headers) as r:
                    r.raise_for_status()
                return token

            tokens += await asyncio.gather(*(login(name) for name in batch))
        offers: dict[str, float] = {}
        expected: list[int] = []
        all_offered = asyncio.Event()
        sockets = [await session.ws_connect(f"{base}/api/v1/ws?token={t}") for t in tokens]

        async def listen(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(message.data)
                if event.get("kind") == "offer":
                    external = event["data"]["conversation"]["identity"]["external_id"]
                    offers.setdefault(external, time.perf_counter())
                    if expected and len(offers) >= expected[0]:
                        all_offered.set()

        listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
        run_id = uuid.uuid4().hex[:8]
        total = int(rate * seconds)
        sent: dict[str, float] = {}
        acks: dict[str, float] = {}

        async def send(n: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            psid, body, headers = webhook(run_id, n)
            sent[psid] = time.perf_counter()
            async with session.post(f"{hook}/webhooks/messenger", data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    acks[psid] = time.perf_counter()

        start = time.perf_counter() + 0.5
        await asyncio.gather(*(send(n, start + n / rate) for n in range(total)))
        expected.append(len(acks))
        if len(offers) < len(acks):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_offered.wait(), timeout=30)
        for task in listeners:
            task.cancel()
        for ws in sockets:
            await ws.close()
        ack_ms = [(acks[p] - sent[p]) * 1000 for p in acks]
        offer_ms = [(offers[p] - sent[p]) * 1000 for p in acks if p in offers]
        added_ms = [(offers[p] - acks[p]) * 1000 for p in acks if p in offers]
        return {"ack": ack_ms, "offer": offer_ms, "added": added_ms, "missing": [float(len(acks) - len(offer_ms))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="webhooks (new conversations) per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--hub-log", type=Path, help="write the hub's log here (default: discard it)")
    parser.add_argument(
        "--processes", type=int, choices=(1, 2), default=1, help="2: webhooks on one, agents on another"
    )
    args = parser.parse_args()
    if args.processes == 2 and not (args.database_url or "").startswith("postgres"):
        parser.error("--processes 2 needs --database-url postgresql://... (processes share the database)")
    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite:///{folder}/bench.db"
        logins = asyncio.run(create_agents(database_url, args.agents))
        ports = [free_port() for _ in range(args.processes)]
        hubs = []
        for index, port in enumerate(ports):
            config = Path(folder) / f"bench-{index}.toml"
            config.write_text(
                CONFIG.format(port=port, database_url=database_url, page_id=PAGE_ID, secret=SECRET), encoding="utf-8"
            )
            log = args.hub_log.open("ab") if args.hub_log else subprocess.DEVNULL
            hubs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hub.cli", "serve", "--config", str(config)],
                    env={**os.environ},
                    stdout=log,
                    stderr=log,
                )
            )
        try:
            agents_on = f"http://127.0.0.1:{ports[-1]}"
            webhooks_to = f"http://127.0.0.1:{ports[0]}"
            results = asyncio.run(run(agents_on, logins, args.rate, args.seconds, webhooks_to))
        finally:
            for hub in hubs:
                hub.send_signal(signal.SIGTERM)
            for hub in hubs:
                try:
                    hub.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    hub.kill()
    engine = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    ack, offer, added = results["ack"], results["offer"], results["added"]
    where = "webhooks on process A, agents on process B" if args.processes == 2 else "one process"
    print(
        f"engine {engine}; {where}; {args.agents} agents on WebSockets; "
        f"{args.rate:.0f} webhooks/s for {args.seconds:.0f} s"
    )
    print(f"webhooks acknowledged: {len(ack)}; offers received: {len(offer)}; missing: {int(results['missing'][0])}")
    print(f"ack      p50 {percentile(ack, 50):7.1f} ms   p99 {percentile(ack, 99):7.1f} ms")
    print(f"offer    p50 {percentile(offer, 50):7.1f} ms   p99 {percentile(offer, 99):7.1f} ms")
    print(f"added    p50 {percentile(added, 50):7.1f} ms   p99 {percentile(added, 99):7.1f} ms")
    if ack and offer:
        print(
            f"ratio offer/ack  p50 {percentile(offer, 50) / percentile(ack, 50):.2f}x   "
            f"p99 {percentile(offer, 99) / percentile(ack, 99):.2f}x   (mean ack {statistics.mean(ack):.1f} ms)"
        )


if __name__ == "__main__":
    main()
