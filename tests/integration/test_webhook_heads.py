"""The head of each delivery line (``webhook_heads``) on both engines: a claim leases only heads, a line moves
on when its head is delivered or given up (not when it is retried), a replayed delivery takes its place back,
a paused subscription's heads wait, and concurrent writers and claimers never leave a line with two heads or
none. The retention sweep deletes only what was delivered before it, with its attempts.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.store import Store
from hub.store.tables import webhook_attempts, webhook_deliveries, webhook_heads
from hub.store.webhooks_out import (
    get_subscription,
    insert_deliveries,
    replay_delivery,
    resume_subscription,
    seed_subscriptions,
)
from hub.store.webhooks_out_dispatch import (
    AttemptResult,
    DueDelivery,
    any_due,
    claim_due,
    prune_delivered,
    record_and_claim,
    record_attempts,
    release_claims,
)
from hub.store.webhooks_out_dispatch import _statements as dispatch_statements
from hub.webhooks_out_config import WebhookOut, WebhooksDelivery

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TUNING = WebhooksDelivery(first_retry_seconds=5.0, max_retry_seconds=60.0)


async def subscribe(store: Store, *, pause_after: int = 20) -> None:
    hook = WebhookOut(
        id="crm", url="http://127.0.0.1:9/hook", secret=SECRET, events=("message.created",), pause_after=pause_after
    )
    await seed_subscriptions(store, [hook], now=T0)


def row(line: str, n: int, at: datetime = T0) -> dict[str, Any]:
    return {
        "subscription_id": "crm",
        "event_type": "message.created",
        "order_key": line,
        "conversation_id": None,
        "payload": {"type": "message.created", "timestamp": at.isoformat(), "data": {"n": n, "line": line}},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }


async def add(store: Store, *rows: dict[str, Any]) -> None:
    async with store.write() as connection:
        await insert_deliveries(connection, list(rows))


async def claim(store: Store, at: datetime = T0, *, owner: str = "one") -> list[DueDelivery]:
    return await claim_due(store, owner=owner, now=at, lease=30, limit=100)


def numbers(due: list[DueDelivery]) -> list[tuple[str, int]]:
    """(line, number) of each leased delivery, from the body it is sent with."""
    bodies = [json.loads(d.body)["data"] for d in due]
    return [(b["line"], b["n"]) for b in bodies]


def answered(due: list[DueDelivery], code: int | None, *, error: str | None = None) -> list[AttemptResult]:
    return [
        AttemptResult(
            delivery_id=d.id,
            subscription_id=d.subscription_id,
            created_at=d.created_at,
            status_code=code,
            error=error,
            duration_ms=1,
        )
        for d in due
    ]


async def heads(store: Store) -> dict[str, int]:
    async with store.read() as connection:
        rows = await connection.execute(select(webhook_heads.c.order_key, webhook_heads.c.delivery_id))
        return {str(line): int(i) for line, i in rows}


async def first_pending(store: Store) -> dict[str, int]:
    """What the heads must be: the earliest pending delivery of each line."""
    d = webhook_deliveries.c
    async with store.read() as connection:
        rows = await connection.execute(select(d.order_key, d.id).where(d.status == "pending").order_by(d.id.desc()))
        return {str(line): int(i) for line, i in rows}


async def test_a_claim_leases_only_the_head_of_each_line_and_a_delivered_head_moves_its_line_on(store: Store) -> None:
    await subscribe(store)
    await add(store, row("a", 1), row("b", 1), row("a", 2), row("b", 2), row("a", 3))
    due = await claim(store)
    assert numbers(due) == [("a", 1), ("b", 1)]
    assert await claim(store, owner="two") == []  # leased: nobody else's, and the rest of each line waits
    await record_attempts(store, answered(due, 204), owner="one", now=T0, tuning=TUNING)
    assert await heads(store) == await first_pending(store)
    due = await claim(store)
    assert numbers(due) == [("a", 2), ("b", 2)]
    await record_attempts(store, answered(due, 200), owner="one", now=T0, tuning=TUNING)
    due = await claim(store)
    assert numbers(due) == [("a", 3)]
    await record_attempts(store, answered(due, 204), owner="one", now=T0, tuning=TUNING)
    assert await heads(store) == {} == await first_pending(store)  # every line delivered: no head left


async def test_a_failed_head_holds_its_line_back_across_retries_until_it_is_delivered_or_given_up(
    store: Store,
) -> None:
    await subscribe(store)
    await add(store, row("a", 1), row("a", 2), row("a", 3))
    due = await claim(store)
    await record_attempts(store, answered(due, 500, error="HTTP 500"), owner="one", now=T0, tuning=TUNING)
    assert await claim(store, T0 + timedelta(seconds=1)) == []  # backing off: the later ones wait too
    retried = await claim(store, T0 + timedelta(seconds=6))
    assert numbers(retried) == [("a", 1)]  # the same head again, not the next one
    await record_attempts(store, answered(retried, 204), owner="one", now=T0, tuning=TUNING)
    second = await claim(store, T0 + timedelta(seconds=6))
    assert numbers(second) == [("a", 2)]
    late = T0 + timedelta(hours=TUNING.give_up_after_hours, seconds=1)
    await record_attempts(store, answered(second, None, error="refused"), owner="one", now=late, tuning=TUNING)
    assert numbers(await claim(store, late)) == [("a", 3)]  # given up: the line moves on
    assert await heads(store) == await first_pending(store)


async def test_a_replayed_delivery_goes_back_to_the_head_of_its_line(store: Store) -> None:
    await subscribe(store)
    await add(store, row("a", 1))
    first = await claim(store)
    await record_attempts(store, answered(first, 204), owner="one", now=T0, tuning=TUNING)
    assert await heads(store) == {}
    await add(store, row("a", 2))
    replayed = await replay_delivery(store, "crm", first[0].id, now=T0)
    assert replayed is not None
    assert replayed.status == "pending"
    assert await heads(store) == {"a": first[0].id}  # earlier than the waiting one: it goes first again
    due = await claim(store)
    assert numbers(due) == [("a", 1)]
    assert due[0].body == first[0].body  # the same bytes as the first time
    await record_attempts(store, answered(due, 204), owner="one", now=T0, tuning=TUNING)
    assert numbers(await claim(store)) == [("a", 2)]
    assert await heads(store) == await first_pending(store)


async def test_a_paused_subscription_keeps_its_heads_and_sends_them_once_resumed(store: Store) -> None:
    await subscribe(store, pause_after=1)
    await add(store, row("a", 1), row("a", 2), row("b", 1))
    due = await claim(store)
    await record_attempts(store, answered(due[:1], 503, error="HTTP 503"), owner="one", now=T0, tuning=TUNING)
    subscription = await get_subscription(store, "crm")
    assert subscription is not None
    assert subscription.paused_at is not None
    await record_attempts(store, answered(due[1:], 204), owner="one", now=T0, tuning=TUNING)
    assert not await any_due(store, now=T0 + timedelta(minutes=5))  # the dispatcher's look agrees with its claim
    assert await claim(store, T0 + timedelta(minutes=5)) == []  # paused: nothing goes out, heads stay
    assert await heads(store) == await first_pending(store)
    await resume_subscription(store, "crm", now=T0 + timedelta(minutes=5))
    assert await any_due(store, now=T0 + timedelta(minutes=5))
    assert numbers(await claim(store, T0 + timedelta(minutes=5))) == [("a", 1)]


async def test_two_claimers_at_once_never_lease_the_same_delivery_or_two_of_one_line(store: Store) -> None:
    await subscribe(store)
    await add(store, *[row(f"line-{n % 20}", n) for n in range(200)])
    seen: set[int] = set()
    lines: list[str] = []
    for _ in range(10):
        one, two = await asyncio.gather(claim(store, owner="one"), claim(store, owner="two"))
        assert not {d.id for d in one} & {d.id for d in two}
        batch = numbers(one) + numbers(two)
        assert len({line for line, _ in batch}) == len(batch)  # at most one per line at a time
        lines += [line for line, _ in batch]
        seen |= {d.id for d in one + two}
        await asyncio.gather(
            record_attempts(store, answered(one, 204), owner="one", now=T0, tuning=TUNING),
            record_attempts(store, answered(two, 204), owner="two", now=T0, tuning=TUNING),
        )
    assert len(seen) == 200
    assert await heads(store) == {} == await first_pending(store)


@pytest.mark.parametrize("and_claim", [False, True], ids=["record", "record-and-claim"])
async def test_a_writer_adding_to_a_line_while_its_head_is_recorded_leaves_the_line_a_head(
    store: Store, and_claim: bool
) -> None:
    """The writer's transaction is open (its delivery not yet visible) while the dispatcher records the head
    delivered (and, in a round, leases what is due): once both committed, the writer's delivery is the line's
    head, in whichever order they ran."""
    await subscribe(store)
    await add(store, row("a", 1), row("b", 1), row("b", 2))
    head = [d for d in await claim(store) if numbers([d]) == [("a", 1)]]
    written = asyncio.Event()
    leased: list[DueDelivery] = []

    async def writer() -> None:
        async with store.write() as connection:
            await insert_deliveries(connection, [row("a", 2)])
            written.set()
            await asyncio.sleep(0.2)  # still open while the head is recorded

    async def dispatcher() -> None:
        await written.wait()
        if and_claim:
            leased.extend(
                await record_and_claim(
                    store, answered(head, 204), owner="one", now=T0, lease=30, limit=100, tuning=TUNING
                )
            )
        else:
            await record_attempts(store, answered(head, 204), owner="one", now=T0, tuning=TUNING)

    await asyncio.gather(writer(), dispatcher())
    assert numbers(leased + await claim(store)) == [("a", 2)]  # b1 is still leased: b2 waits
    assert await heads(store) == await first_pending(store)


async def test_writers_adding_to_one_line_at_once_leave_it_one_head(store: Store) -> None:
    await subscribe(store)

    async def writer(n: int) -> None:
        async with store.write() as connection:
            await insert_deliveries(connection, [row("a", n), row("b", n)])
            await asyncio.sleep(0.05)

    await asyncio.gather(*(writer(n) for n in range(4)))
    assert sorted(await heads(store)) == ["a", "b"]
    due = await claim(store)
    assert len(due) == 2  # one per line
    assert {line for line, _ in numbers(due)} == {"a", "b"}


async def attempts_of(store: Store) -> dict[int, int]:
    a = webhook_attempts.c
    async with store.read() as connection:
        rows = await connection.execute(select(a.delivery_id, func.count()).group_by(a.delivery_id))
        return {int(i): int(n) for i, n in rows}


async def test_the_retention_sweep_deletes_only_deliveries_delivered_before_it_with_their_attempts(
    store: Store,
) -> None:
    await subscribe(store)
    await add(store, row("a", 1), row("b", 1), row("a", 2), row("f", 1))
    first = await claim(store)  # a1, b1, f1
    by_line = {line: d for (line, _), d in zip(numbers(first), first, strict=True)}
    delivered = [by_line["a"], by_line["b"]]
    await record_attempts(store, answered(delivered, 204), owner="one", now=T0, tuning=TUNING)
    a2 = await claim(store)  # the next of line a: fails and waits (pending) with its attempt
    await record_attempts(store, answered(a2, 503, error="HTTP 503"), owner="one", now=T0, tuning=TUNING)
    late = T0 + timedelta(hours=25)  # f1 is given up (failed), and stays to be replayed
    await record_attempts(store, answered([by_line["f"]], None, error="refused"), owner="one", now=late, tuning=TUNING)
    replayed_at = T0 + timedelta(days=35)  # b1, created long ago, delivered again within the retention: kept
    await replay_delivery(store, "crm", by_line["b"].id, now=replayed_at)
    again = await claim(store, replayed_at)
    assert sorted(d.id for d in again) == sorted([by_line["b"].id, a2[0].id])  # a2's retry is due too
    redelivered = [d for d in again if d.id == by_line["b"].id]
    await record_attempts(store, answered(redelivered, 204), owner="one", now=replayed_at, tuning=TUNING)
    await release_claims(store, [a2[0].id], owner="one")
    await add(store, row("c", 1, T0 + timedelta(days=40)))  # newer than the retention
    cutoff = T0 + timedelta(days=30)

    assert await prune_delivered(store, before=cutoff, batch=2) == 1  # batches of 2: the walk goes past kept ones

    d = webhook_deliveries.c
    async with store.read() as connection:
        left = {int(i): str(s) for i, s in await connection.execute(select(d.id, d.status))}
    assert by_line["a"].id not in left
    assert left[by_line["b"].id] == "delivered"
    assert left[by_line["f"].id] == "failed"
    assert left[a2[0].id] == "pending"
    assert len(left) == 4  # and c1
    remaining = await attempts_of(store)
    assert by_line["a"].id not in remaining
    assert remaining[by_line["b"].id] == 2
    assert remaining[by_line["f"].id] == 1
    assert remaining[a2[0].id] == 1
    assert await heads(store) == await first_pending(store)
    assert await prune_delivered(store, before=cutoff) == 0  # nothing more to do
    assert await replay_delivery(store, "crm", by_line["a"].id, now=cutoff) is None  # gone for good


async def test_on_sqlite_finding_due_heads_walks_the_heads_not_every_delivery(store: Store) -> None:
    """Delivered deliveries stay ``keep_days``: the due heads must be found from the heads (one per line), each
    delivery looked up by id, never by walking the deliveries in id order (which visits every delivered one)."""
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL plans from its statistics; the shape checked here is SQLite's")
    await subscribe(store)
    await add(store, *(row(f"conversation:{n % 5}", n) for n in range(50)))
    query = dispatch_statements("sqlite").due_heads
    async with store.read() as connection:
        compiled = query.compile(dialect=connection.dialect)
        unbound = tuple(None for _ in compiled.positiontup or ())  # a plan does not depend on the values
        plan = [str(r[-1]) for r in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", unbound)]
        found = [int(r.id) for r in await connection.execute(query, {"b_now": T0, "b_limit": 10})]

    assert plan[0].startswith("SCAN webhook_heads USING INDEX ix_webhook_heads_delivery"), plan
    assert not any(step.startswith("SCAN webhook_deliveries") for step in plan), plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
    assert found == sorted((await first_pending(store)).values())


async def test_on_postgresql_a_round_looks_up_each_moved_lines_next_delivery_by_its_id(store: Store) -> None:
    """The lease that follows a record finds the next delivery of each line it moved on by that delivery's id,
    never by walking the subscription's pending deliveries (a cost that grew with the backlog)."""
    if store.dialect != "postgresql":
        pytest.skip("the statement checked here is PostgreSQL's (SQLite moves lines on in statements of its own)")
    await subscribe(store)
    await add(store, *(row(f"conversation:{n % 20}", n) for n in range(2000)))
    leased = await claim(store)
    statement = dispatch_statements("postgresql").moved_and_leased
    parameters = {
        "b_now": T0,
        "b_limit": 16,
        "b_until": T0 + timedelta(seconds=30),
        "b_owner": "one",
        "b_finished": [d.id for d in leased],
    }
    async with store.write() as connection:
        compiled = statement.compile(dialect=connection.dialect)
        values = compiled.construct_params(parameters)
        arguments = tuple(values[name] for name in compiled.positiontup or ())
        explained = await connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) {compiled}", arguments)
        plan = "\n".join(str(r[0]) for r in explained)

    assert "Index Cond: (id = moved.delivery_id)" in plan, plan
