"""Outbound throughput: policy + outbox + delivery workers to the emulator, as a ratio against direct
adapter sends to the same emulator measured in the same run.

    python bench/outbound.py [--messages 1000] [--rounds 7] [--warmup 1] [--workers 4] [--batch 16]
                             [--engines sqlite,postgres]

For each engine, with one WhatsApp (Twilio) account served by the Twilio emulator on loopback and the real adapter:

1. direct: ``concurrency`` concurrent callers of ``adapter.send`` for ``messages`` texts (no database at all);
2. accept: ``concurrency`` concurrent callers doing what ``POST /conversations/{id}/messages`` does after
   authentication: load the identity, ask the policy, write message + outbox row durably (``Outbox.accept``:
   concurrent requests share one transaction, each in its own savepoint);
3. deliver: the outbox's workers (``outbox.workers`` x ``outbox.batch`` rows in flight) drain those rows:
   claim with a lease, ask the policy again, send through the same adapter, store the provider id durably;
4. end to end: accept and deliver at the same time, from the first accept to the last stored provider id.

The ratio that the target (>= 70 %) is about is deliver / direct: the delivery path against the bare provider
calls it wraps. Figures are machine-dependent; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.emulators.core import EmulatorState, build_emulator_app
from adapters.twilio_whatsapp import TwilioWhatsAppAdapter
from bench._databases import database
from hub.api.server import settle_garbage_collector
from hub.bus import BusEvent, EventBus
from hub.model import Channel, InboundMessage, MessageKind, OutboundMessage, Role
from hub.outbox import Outbox, facts_for, send_plan
from hub.policy import Allowed, Draft, decide
from hub.settings import Settings, load_settings
from hub.store import Store, store_group
from hub.store.agents import create_agent
from hub.store.messages import load_identity, open_conversation_of
from hub.store.outbound import NewOutbound
from hub.store.outbox import outbox_counts

CONFIG = """
[[statuses]]
id = "resolved"
name = "Resolved"

[[queues]]
id = "support"
name = "Support"

[outbox]
workers = {workers}
batch = {batch}
rate_limit = 1000000.0

[[accounts]]
id = "wa"
channel = "whatsapp"
provider = "twilio"
queue = "support"
account_sid = "ACbench"
auth_token = "bench-token"
from_number = "+15550001111"
"""


@asynccontextmanager
async def emulator(settings: Settings) -> AsyncIterator[tuple[EmulatorState, str]]:
    state = EmulatorState(settings, "http://127.0.0.1:9")
    runner = web.AppRunner(build_emulator_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield state, f"http://127.0.0.1:{port}/twilio"
    finally:
        await state.close()
        await runner.cleanup()


def numbers(customers: int) -> list[str]:
    return [f"+4207{n:08d}" for n in range(customers)]


async def seed(store: Store, settings: Settings, state: EmulatorState, customers: int) -> tuple[list[int], int]:
    """Customers who wrote an hour ago (hub and emulator agree), and one agent."""
    now = datetime.now(UTC)
    accounts = {a.id: a for a in settings.accounts}
    events = [
        [
            InboundMessage(
                channel=Channel.WHATSAPP,
                account_id="wa",
                sender_id=number,
                provider_message_id=f"in-{number}",
                sent_at=now - timedelta(hours=1),
                text="hello",
            )
        ]
        for number in numbers(customers)
    ]
    await store_group(store, events, accounts, now)
    for number in numbers(customers):
        state.record_inbound("wa", number, now - timedelta(hours=1))
    agent = await create_agent(
        store, login=f"bench-{uuid.uuid4().hex[:6]}", password="bench-pass", role=Role.AGENT, now=now
    )
    from sqlalchemy import select

    from hub.store.tables import identities

    async with store.read() as connection:
        ids = [int(i) for i in (await connection.execute(select(identities.c.id).order_by(identities.c.id))).scalars()]
    return ids, agent.id


async def direct(adapter: TwilioWhatsAppAdapter, count: int, customers: int, concurrency: int) -> float:
    targets = numbers(customers)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def caller() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            await adapter.send(
                OutboundMessage(
                    account_id="wa", recipient_id=targets[n % customers], kind=MessageKind.TEXT, text=f"m{n}"
                )
            )

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def accept(
    outbox: Outbox, store: Store, settings: Settings, ids: list[int], agent_id: int, count: int, concurrency: int
) -> float:
    """What the reply route does after authentication: identity, policy, a durable write (group-committed)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    provider = settings.account("wa").provider
    conversations = {}
    for identity_id in ids:
        found = await open_conversation_of(store, identity_id)
        assert found is not None
        conversations[identity_id] = found[0].id

    async def caller() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            identity_id = ids[n % len(ids)]
            identity = await load_identity(store, identity_id)
            assert identity is not None
            decision = decide(facts_for(identity, provider), Draft(text=f"m{n}"), datetime.now(UTC))
            assert isinstance(decision, Allowed)
            await outbox.accept(
                NewOutbound(
                    account_id="wa",
                    identity_id=identity_id,
                    agent_id=agent_id,
                    kind=MessageKind.TEXT,
                    send_plan=send_plan(decision),
                    conversation_id=conversations[identity_id],
                    text=f"m{n}",
                ),
                datetime.now(UTC),
            )

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


class SentCounter(asyncio.Queue[BusEvent]):
    """A bus subscriber that only counts the "sent" changes (each published once its acceptance is stored) and
    says when ``target`` were: the end of a round to the event, not to a poll's next tick."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self.sent = 0
        self.reached = asyncio.Event()

    def put_nowait(self, item: BusEvent) -> None:
        if item.kind == "message.delivery" and item.data.get("state") == "sent":
            self.sent += 1
            if self.sent >= self.target:
                self.reached.set()


async def stored(bus: EventBus, count: int, work: Awaitable[object]) -> float:
    """Seconds from the start of ``work`` until ``count`` acceptances are stored (``work`` may go on)."""
    async with bus.subscribe(SentCounter(count)) as counter:
        assert isinstance(counter, SentCounter)
        started = time.perf_counter()
        await work
        await counter.reached.wait()
        return time.perf_counter() - started


async def deliver(outbox: Outbox, bus: EventBus, store: Store, count: int) -> float:
    async def begin() -> None:
        await outbox.start()
        outbox.wake()

    elapsed = await stored(bus, count, begin())
    await outbox.stop()
    unfinished = {k: v for k, v in (await outbox_counts(store)).items() if k in ("pending", "sending")}
    assert not unfinished, unfinished
    return count / elapsed


async def run(
    engine: str,
    count: int,
    customers: int,
    concurrency: int,
    workers: int,
    batch: int,
    rounds: int,
    warmup: int = 1,
) -> dict[str, object]:
    """``warmup`` unmeasured rounds of each phase (statements compiled, connections open on both sides), then
    ``rounds`` rounds of accept / deliver, each deliver round between two direct rounds and compared with their
    mean (the machine's load moves), then one end-to-end round; medians (and the ratios' quartiles) are reported."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.toml"
        path.write_text(CONFIG.format(workers=workers, batch=batch), encoding="utf-8")
        settings = load_settings(path, {})
    directs, accepts, delivers, ratios = [], [], [], []
    async with emulator(settings) as (state, api_base), aiohttp.ClientSession() as session:
        account = replace(settings.account("wa"), api_base=api_base)
        adapter = TwilioWhatsAppAdapter(account, session)
        async with database(engine) as store:
            ids, agent_id = await seed(store, settings, state, customers)
            for _ in range(warmup):
                await direct(adapter, count, customers, concurrency)
                outbox = Outbox(store, bus := EventBus(), {"wa": adapter}, settings, clock=lambda: datetime.now(UTC))
                await accept(outbox, store, settings, ids, agent_id, count, concurrency)
                await deliver(outbox, bus, store, count)
            # each deliver round between two direct rounds, against their mean: the machine's load drifts
            directs.append(await direct(adapter, count, customers, concurrency))
            for _ in range(rounds):
                outbox = Outbox(store, bus := EventBus(), {"wa": adapter}, settings, clock=lambda: datetime.now(UTC))
                accepts.append(await accept(outbox, store, settings, ids, agent_id, count, concurrency))
                delivers.append(await deliver(outbox, bus, store, count))
                directs.append(await direct(adapter, count, customers, concurrency))
                ratios.append(delivers[-1] / statistics.mean(directs[-2:]))
            # end to end: accepting and delivering at once, against the direct round just before
            end_direct = directs[-1]
            outbox = Outbox(store, bus := EventBus(), {"wa": adapter}, settings, clock=lambda: datetime.now(UTC))

            async def accept_while_delivering() -> None:
                await outbox.start()
                await accept(outbox, store, settings, ids, agent_id, count, concurrency)

            end_to_end = count / await stored(bus, count, accept_while_delivering())
            await outbox.stop()
            sent = len(state.sent)
            counts = await outbox_counts(store)
    return {
        "engine": engine,
        "messages_per_round": count,
        "rounds": rounds,
        "warmup_rounds": warmup,
        "workers": workers,
        "batch": batch,
        "direct_per_second": round(statistics.median(directs), 1),
        "accept_per_second": round(statistics.median(accepts), 1),
        "deliver_per_second": round(statistics.median(delivers), 1),
        "deliver_ratio": round(statistics.median(ratios), 3),
        "deliver_ratio_quartiles": [round(q, 3) for q in statistics.quantiles(ratios, n=4)] if rounds > 1 else [],
        "deliver_ratios": [round(r, 3) for r in ratios],
        "end_to_end_per_second": round(end_to_end, 1),
        "end_to_end_ratio": round(end_to_end / end_direct, 3),
        "provider_received": sent,
        "expected_received": (2 * rounds + 2 + 2 * warmup) * count,
        "outbox_rows": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (0: the first round is cold)")
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    settle_garbage_collector()  # as `channelhub serve` does after start-up; both phases run with it
    for engine in args.engines.split(","):
        result = asyncio.run(
            run(
                engine,
                args.messages,
                args.customers,
                args.concurrency,
                args.workers,
                args.batch,
                args.rounds,
                args.warmup,
            )
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
