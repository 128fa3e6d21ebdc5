"""Ingest throughput and latency, as a ratio against a bare insert loop measured in the same run.

    python bench/ingest.py [--messages 5000] [--concurrency 64] [--engines sqlite,postgres]

For each engine: (1) the baseline, a bare loop that inserts the same rows (identity, conversation, message) with
plain INSERTs, one durable transaction per message, no checks; (2) the hub's ``Ingestor`` fed by ``concurrency``
concurrent submitters (as concurrent webhook requests are), each message acknowledged only once durable.
Figures are machine-dependent; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._databases import database
from hub.bus import EventBus
from hub.ingest import Ingestor
from hub.model import Channel, ChannelAccount, InboundMessage
from hub.store import Store
from hub.store.tables import conversations, identities, messages

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ACCOUNT = ChannelAccount(id="wa", channel=Channel.WHATSAPP, provider="cloud", queue="support", api_base="http://x")


def events(count: int, customers: int) -> list[InboundMessage]:
    return [
        InboundMessage(
            channel=Channel.WHATSAPP,
            account_id="wa",
            sender_id=f"4206{n % customers:08d}",
            provider_message_id=f"wamid.{n}",
            sent_at=T0 + timedelta(milliseconds=n),
            text=f"message number {n}",
            sender_name="Bench",
        )
        for n in range(count)
    ]


async def bare_loop(store: Store, batch: list[InboundMessage]) -> dict[str, float]:
    """The same rows, plain INSERTs, one durable transaction each: the floor of what storing costs."""
    latencies = []
    identity_ids: dict[str, tuple[int, int]] = {}
    started = time.perf_counter()
    now = datetime.now(UTC)
    for event in batch:
        t = time.perf_counter()
        async with store.write() as connection:
            ids = identity_ids.get(event.sender_id)
            if ids is None:
                identity_id = (
                    await connection.execute(
                        identities.insert()
                        .values(
                            account_id="wa",
                            channel="whatsapp",
                            external_id=event.sender_id,
                            last_inbound_at=event.sent_at,
                            created_at=now,
                        )
                        .returning(identities.c.id)
                    )
                ).scalar_one()
                conversation_id = (
                    await connection.execute(
                        conversations.insert()
                        .values(
                            account_id="wa",
                            channel="whatsapp",
                            identity_id=identity_id,
                            queue_id="support",
                            state="waiting",
                            opened_at=now,
                            waiting_since=now,
                        )
                        .returning(conversations.c.id)
                    )
                ).scalar_one()
                ids = identity_ids[event.sender_id] = (identity_id, conversation_id)
            await connection.execute(
                messages.insert().values(
                    conversation_id=ids[1],
                    identity_id=ids[0],
                    account_id="wa",
                    direction="in",
                    author="customer",
                    kind="text",
                    text=event.text,
                    provider_message_id=event.provider_message_id,
                    sent_at=event.sent_at,
                    created_at=now,
                    delivery_state="received",
                )
            )
        latencies.append(time.perf_counter() - t)
    return summarise(latencies, time.perf_counter() - started)


async def hub_ingest(store: Store, batch: list[InboundMessage], concurrency: int) -> dict[str, float]:
    ingestor = Ingestor(store, EventBus(), [ACCOUNT])
    await ingestor.start()
    queue: asyncio.Queue[InboundMessage] = asyncio.Queue()
    for event in batch:
        queue.put_nowait(event)
    latencies: list[float] = []

    async def submitter() -> None:
        while not queue.empty():
            event = queue.get_nowait()
            t = time.perf_counter()
            await ingestor.submit([event])
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    groups = ingestor.groups
    await ingestor.stop()
    result = summarise(latencies, elapsed)
    result["messages_per_commit"] = len(batch) / max(groups, 1)
    return result


def summarise(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "messages": len(ordered),
        "per_second": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }


async def run(engine: str, count: int, concurrency: int) -> dict[str, object]:
    batch = events(count, customers=max(count // 5, 1))
    async with database(engine) as store:
        baseline = await bare_loop(store, batch)
    async with database(engine) as store:
        hub = await hub_ingest(store, batch, concurrency)
    return {
        "engine": engine,
        "baseline": baseline,
        "hub": hub,
        "throughput_ratio": hub["per_second"] / baseline["per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    results = [asyncio.run(run(engine, args.messages, args.concurrency)) for engine in args.engines.split(",")]
    for result in results:
        hub, base = result["hub"], result["baseline"]
        assert isinstance(hub, dict)
        assert isinstance(base, dict)
        print(
            f"{result['engine']:9} hub {hub['per_second']:8.0f} msg/s p50 {hub['p50_ms']:6.1f} ms "
            f"p99 {hub['p99_ms']:6.1f} ms ({hub['messages_per_commit']:.0f} msg/commit) | "
            f"bare loop {base['per_second']:7.0f} msg/s p50 {base['p50_ms']:5.2f} ms p99 {base['p99_ms']:5.2f} ms | "
            f"ratio {result['throughput_ratio']:.2f}x"
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
