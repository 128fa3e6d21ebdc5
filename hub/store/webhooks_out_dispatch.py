"""The outgoing webhooks' dispatcher in the database: leasing due heads, recording attempts, moving lines on.

Each line of deliveries (one subscription's, one ``order_key``'s) has a head row naming the delivery that goes
next (ADR 0035; hub/store/webhooks_out.py writes deliveries and keeps the heads when a line grows or a delivery
is replayed). ``claim_due`` leases due heads with one guarded update, so several processes never send one twice
at once; ``record_attempts`` stores what each attempt got, schedules the next, counts each subscription's
failures, and moves a finished head's line on; ``record_and_claim`` does both in one transaction.
``prune_delivered`` is the retention sweep. The HTTP side is hub/webhooks_out.py.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store._db import Store, one_of
from hub.store.tables import UTCDateTime, webhook_attempts, webhook_deliveries, webhook_heads, webhook_subscriptions
from hub.store.webhooks_out import DELIVERED, FAILED, PENDING
from hub.webhooks_out_config import WebhooksDelivery

__all__ = [
    "AttemptResult",
    "DueDelivery",
    "any_due",
    "claim_due",
    "prune_delivered",
    "record_and_claim",
    "record_attempts",
    "release_claims",
    "retry_delay",
]

logger = logging.getLogger(__name__)

S, D, H = webhook_subscriptions.c, webhook_deliveries.c, webhook_heads.c


# ------------------------------------------------------------------ shapes


@dataclass(frozen=True, slots=True, kw_only=True)
class DueDelivery:
    """A delivery leased to one dispatcher: what it needs to send it. ``body`` is the payload as stored, sent
    as it is (the same bytes on every attempt and replay)."""

    id: int
    subscription_id: str
    url: str
    secret: str
    body: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptResult:
    """What one attempt got: a status code (2xx: delivered) and/or an error, and how long it took."""

    delivery_id: int
    subscription_id: str
    created_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# ------------------------------------------------------------------ leasing and recording


# the pending deliveries of the line whose head row a statement changes (the line's next one, or whether any is left)
_waiting = webhook_deliveries.alias("waiting")
_pending_in_line = and_(
    _waiting.c.subscription_id == H.subscription_id,
    _waiting.c.order_key == H.order_key,
    _waiting.c.status == PENDING,
)


def _free(now: Any) -> Any:
    return or_(D.leased_until.is_(None), D.leased_until < now)


@dataclass(frozen=True, slots=True)
class _Statements:
    """The dispatcher's statements, built once per dialect."""

    due_heads: Any  # the due heads, oldest first (SQLite: leased by ``lease``; both: ``any_due``)
    lease: Any  # SQLite: the found heads; PostgreSQL: finds and leases the due heads in one statement
    delivered: Any
    move_on: Any
    lines_done: Any
    attempts: Any = None  # SQLite: every attempt of a round, bound as one JSON array
    recorded: Any = None  # PostgreSQL: the attempts, the delivered rows, streaks over and the lines' locks
    moved_and_leased: Any = None  # PostgreSQL: the finished lines moved on or gone, and the lease


@functools.cache
def _statements(dialect: str) -> _Statements:
    now: Any = bindparam("b_now")
    due = and_(D.status == PENDING, D.next_attempt_at <= now, S.paused_at.is_(None), _free(now))
    due_heads = (  # only the heads: one row per line, however many wait behind them
        select(D.id, S.id.label("subscription_id"), S.url, S.secret)
        .select_from(
            webhook_heads.join(webhook_deliveries, D.id == H.delivery_id).join(
                webhook_subscriptions, S.id == H.subscription_id
            )
        )
        .where(due)
        .order_by(D.id)
        .limit(bindparam("b_limit"))
    )
    if dialect == "sqlite":
        due_heads = _due_heads_sqlite(now)
    body = cast(D.payload, Text).label("body")
    leased: dict[str, Any] = {"leased_until": bindparam("b_until"), "lease_owner": bindparam("b_owner")}
    # guarded: still pending and nobody else's, whatever another process did since the heads were read
    guard = and_(D.status == PENDING, _free(now))
    if dialect == "postgresql":
        # one round trip; the due heads' rows that another process is leasing are skipped, not waited for
        picked = due_heads.with_for_update(of=webhook_deliveries, skip_locked=True).cte("picked")
        lease = (
            update(webhook_deliveries)
            .where(D.id == picked.c.id, guard)
            .values(**leased)
            .returning(D.id, picked.c.subscription_id, picked.c.url, picked.c.secret, body, D.created_at)
        )
    else:
        lease = (
            update(webhook_deliveries)
            .where(one_of(D.id, "b_ids", dialect), guard)
            .values(**leased)
            .returning(D.id, D.subscription_id, body, D.created_at)
        )
    delivered = (
        update(webhook_deliveries)
        .where(one_of(D.id, "b_ids", dialect), D.status == PENDING)
        .values(
            status=DELIVERED,
            delivered_at=now,
            last_status_code=bindparam("b_code"),
            last_error=None,
            **_LEASE_ENDS,
        )
    )
    finished = one_of(H.delivery_id, "b_finished", dialect)
    following = select(func.min(_waiting.c.id)).where(_pending_in_line).scalar_subquery()
    lock_lines = (
        select(H.subscription_id, H.order_key)
        .where(finished)
        .order_by(H.subscription_id, H.order_key)
        .with_for_update()
    )
    statements = _Statements(
        due_heads=due_heads,
        lease=lease,
        delivered=delivered,
        move_on=update(webhook_heads).where(finished).values(delivery_id=func.coalesce(following, H.delivery_id)),
        lines_done=delete(webhook_heads).where(finished),  # still a finished one: nothing left in line
    )
    if dialect != "postgresql":
        return dataclasses.replace(statements, attempts=_attempts_from_json())
    return dataclasses.replace(
        statements,
        recorded=_recorded(lock_lines),
        moved_and_leased=_moved_and_leased(due_heads, finished, following, guard, leased, body),
    )


def _due_heads_sqlite(now: Any) -> Any:
    """SQLite: the due heads read from the heads, in delivery order on their ``delivery_id`` index, each one's
    delivery looked up by id: the read stops at its limit after at most one row per line. Written as a join,
    SQLite's planner walked every delivery in id order (delivered ones too, kept ``keep_days``) to find the
    few that are heads, which cost a round more with every delivery the table held."""
    due = select(D.id).where(D.id == H.delivery_id, D.status == PENDING, D.next_attempt_at <= now, _free(now)).exists()
    return (
        select(H.delivery_id.label("id"), S.id.label("subscription_id"), S.url, S.secret)
        .select_from(webhook_heads.join(webhook_subscriptions, S.id == H.subscription_id))
        .where(S.paused_at.is_(None), due)
        .order_by(H.delivery_id)
        .limit(bindparam("b_limit"))
    )


def _attempts_from_json() -> Any:
    """SQLite: insert a round's attempts from one JSON array of ``[delivery_id, status_code, error, duration_ms]``
    (``json_each``), all at ``b_now``. An ``executemany`` of one parameter set per attempt cost SQLAlchemy a
    parameter set to build and process per row, most of a round's Python."""
    rows = func.json_each(bindparam("b_attempts", type_=JSON())).table_valued("value").alias("attempt")
    field = functools.partial(func.json_extract, rows.c.value)
    return insert(webhook_attempts).from_select(
        ["delivery_id", "attempted_at", "status_code", "error", "duration_ms"],
        select(field("$[0]"), bindparam("b_now", type_=UTCDateTime()), field("$[1]"), field("$[2]"), field("$[3]")),
    )


def _recorded(lock_lines: Any) -> Any:
    """PostgreSQL: what a round records, in one statement (data-modifying CTEs), the attempts bound as arrays:
    every attempt, the delivered ones' rows, the streaks of the subscriptions whose last attempt succeeded, and
    a lock on the heads of the lines whose head is finished (``_advance``: the next statement reads their
    lines). Returns how many heads it locked."""
    now = bindparam("b_now", type_=UTCDateTime())
    rows = (
        select(
            func.unnest(
                bindparam("b_ids", type_=ARRAY(BigInteger)),
                bindparam("b_codes", type_=ARRAY(Integer)),
                bindparam("b_errors", type_=ARRAY(Text)),
                bindparam("b_durations", type_=ARRAY(Integer)),
            )
            .table_valued(
                column("delivery_id", BigInteger),
                column("status_code", Integer),
                column("error", Text),
                column("duration_ms", Integer),
            )
            .render_derived(name="result")
        )
    ).cte("results")
    attempts = (
        insert(webhook_attempts)
        .from_select(
            ["delivery_id", "attempted_at", "status_code", "error", "duration_ms"],
            select(rows.c.delivery_id, now, rows.c.status_code, rows.c.error, rows.c.duration_ms),
        )
        .cte("attempts")
    )
    delivered = (
        update(webhook_deliveries)
        .where(D.id == rows.c.delivery_id, rows.c.status_code.between(200, 299), D.status == PENDING)
        .values(
            status=DELIVERED,
            delivered_at=now,
            last_status_code=rows.c.status_code,
            last_error=None,
            **_LEASE_ENDS,
        )
        .cte("delivered")
    )
    streaks_over = (
        update(webhook_subscriptions)
        .where(S.id == any_(bindparam("b_streaks_over", type_=ARRAY(Text))), S.consecutive_failures != 0)
        .values(consecutive_failures=0)
        .cte("streaks_over")
    )
    locked = lock_lines.cte("locked")
    return select(func.count()).select_from(locked).add_cte(attempts, delivered, streaks_over)


def _moved_and_leased(
    due_heads: Any, finished: Any, following: Any, guard: Any, leased: dict[str, Any], body: Any
) -> Any:
    """PostgreSQL: after ``_recorded`` (whose locks it relies on), in one statement: each finished head's line
    points at its next pending delivery, or is gone when it has none, and due deliveries are leased, the next
    ones of the lines just moved on among them (this statement's reads do not see its own CTEs' changes:
    those come from the move's RETURNING). The oldest due first, as ``due_heads``."""
    now: Any = bindparam("b_now")
    more = select(_waiting.c.id).where(_pending_in_line).exists()
    moved = (
        update(webhook_heads).where(finished, more).values(delivery_id=following).returning(H.delivery_id).cte("moved")
    )
    gone = delete(webhook_heads).where(finished, ~more).cte("gone")
    # each moved line's next delivery looked up by its id (a lateral subquery per moved row): joined to the CTE
    # instead, the planner (which cannot tell how few rows it returns) walked every pending delivery of the
    # subscription and matched each against it, a round costing more the longer the backlog
    following_due = (
        select(D.id, D.subscription_id)
        .where(D.id == moved.c.delivery_id, D.status == PENDING, D.next_attempt_at <= now, _free(now))
        .limit(1)  # one row by its key anyway; a LIMIT also keeps the planner from flattening it into a join
        .lateral("following_due")
    )
    nexts = (
        select(following_due.c.id, S.id.label("subscription_id"), S.url, S.secret)
        .select_from(
            moved.join(following_due, true()).join(webhook_subscriptions, S.id == following_due.c.subscription_id)
        )
        .where(S.paused_at.is_(None))
    )
    others = due_heads.with_for_update(of=webhook_deliveries, skip_locked=True).cte("others")
    candidates = union_all(nexts, select(others)).subquery("candidates")
    picked = select(candidates).order_by(candidates.c.id).limit(bindparam("b_limit")).cte("picked")
    return (
        update(webhook_deliveries)
        .where(D.id == picked.c.id, guard)
        .values(**leased)
        .returning(D.id, picked.c.subscription_id, picked.c.url, picked.c.secret, body, D.created_at)
        .add_cte(gone)
    )


async def any_due(store: Store, *, now: datetime) -> bool:
    """Whether the claim would find a due head now (the claim's own query, one row): read without the write
    lock, so that a dispatcher with nothing to do, or only paused subscriptions' deliveries, never takes it."""
    async with store.read() as connection:
        due_heads = _statements(connection.dialect.name).due_heads
        return (await connection.execute(due_heads, {"b_now": now, "b_limit": 1})).first() is not None


async def claim_due(store: Store, *, owner: str, now: datetime, lease: float, limit: int) -> list[DueDelivery]:
    """Lease up to ``limit`` due deliveries, each the head of its conversation's line, to ``owner``.

    The lease is taken by one guarded update (still pending and not leased by someone else), so two
    processes that found the same rows never both send them; a crashed owner's lease simply runs out.
    """
    async with store.write() as connection:
        return await _claim(connection, owner=owner, now=now, lease=lease, limit=limit)


async def record_and_claim(
    store: Store,
    results: Sequence[AttemptResult],
    *,
    owner: str,
    now: datetime,
    lease: float,
    limit: int,
    tuning: WebhooksDelivery,
) -> list[DueDelivery]:
    """``record_attempts`` and ``claim_due`` in one transaction: one commit per round instead of two, and the
    next delivery of each conversation just delivered is already due. On PostgreSQL a round is two statements
    (``_recorded``, ``_moved_and_leased``) besides the failed attempts' own."""
    async with store.write() as connection:
        finished = await _record(connection, results, now=now, tuning=tuning)
        if connection.dialect.name == "postgresql" and (finished or limit > 0):
            return await _move_on_and_claim(
                connection, finished, owner=owner, now=now, lease=lease, limit=max(limit, 0)
            )
        await _advance(connection, finished)
        return await _claim(connection, owner=owner, now=now, lease=lease, limit=limit)


def _lease_parameters(*, owner: str, now: datetime, lease: float, limit: int) -> dict[str, Any]:
    return {"b_now": now, "b_limit": limit, "b_until": now + timedelta(seconds=lease), "b_owner": owner}


def _due(rows: Iterable[Sequence[Any]]) -> list[DueDelivery]:
    """Leased rows of (id, subscription id, url, secret, body, created_at) as what a sender needs, in id order.
    Read by position: a round builds one per delivery, and a row's attributes cost a lookup by name each."""
    return [
        DueDelivery(id=int(i), subscription_id=s, url=u, secret=k, body=b.encode(), created_at=c)
        for i, s, u, k, b, c in sorted(rows, key=_delivery_id)
    ]


def _delivery_id(row: Sequence[Any]) -> Any:
    return row[0]


async def _move_on_and_claim(
    connection: AsyncConnection, finished: Sequence[int], *, owner: str, now: datetime, lease: float, limit: int
) -> list[DueDelivery]:
    """PostgreSQL, after ``_record`` locked the finished heads: ``_advance`` and ``_claim`` in one statement."""
    parameters = {**_lease_parameters(owner=owner, now=now, lease=lease, limit=limit), "b_finished": list(finished)}
    return _due(await connection.execute(_statements("postgresql").moved_and_leased, parameters))


async def _claim(
    connection: AsyncConnection, *, owner: str, now: datetime, lease: float, limit: int
) -> list[DueDelivery]:
    if limit <= 0:
        return []
    statements = _statements(connection.dialect.name)
    parameters = _lease_parameters(owner=owner, now=now, lease=lease, limit=limit)
    if connection.dialect.name == "postgresql":
        return _due(await connection.execute(statements.lease, parameters))
    # the heads' (subscription id, url, secret) by id; the lease returns (id, subscription id, body, created_at)
    found = {int(i): (s, u, k) for i, s, u, k in await connection.execute(statements.due_heads, parameters)}
    if not found:
        return []
    claimed = await connection.execute(statements.lease, {**parameters, "b_ids": sorted(found)})
    return _due((i, *found[int(i)], b, c) for i, _, b, c in claimed)


async def release_claims(store: Store, ids: Sequence[int], *, owner: str) -> None:
    """Give back leases whose attempts never finished (the dispatcher is stopping): due again at once."""
    if not ids:
        return
    async with store.write() as connection:
        await connection.execute(
            update(webhook_deliveries)
            .where(D.id.in_(sorted(ids)), D.lease_owner == owner, D.status == PENDING)
            .values(leased_until=None, lease_owner=None)
        )


def retry_delay(attempts: int, tuning: WebhooksDelivery) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling from the first, capped."""
    return float(min(tuning.first_retry_seconds * (2 ** max(0, attempts - 1)), tuning.max_retry_seconds))


async def record_attempts(
    store: Store, results: Sequence[AttemptResult], *, owner: str, now: datetime, tuning: WebhooksDelivery
) -> None:
    """Store each attempt, move its delivery on (delivered, retried later, or failed for good once it is
    older than the retry window), and count each subscription's consecutive failures, pausing it at its
    threshold. One transaction for the whole batch."""
    if not results:
        return
    async with store.write() as connection:
        await _advance(connection, await _record(connection, results, now=now, tuning=tuning))


async def _record(
    connection: AsyncConnection, results: Sequence[AttemptResult], *, now: datetime, tuning: WebhooksDelivery
) -> list[int]:
    """Store the attempts and their outcomes; returns the finished deliveries (delivered or given up), whose
    lines ``_advance`` moves on. On PostgreSQL their heads' rows are locked by then."""
    if not results:
        return []
    give_up = timedelta(hours=tuning.give_up_after_hours)
    delivered = [r for r in results if r.delivered]
    failed = [r for r in results if not r.delivered]
    given_up = {r.delivery_id for r in failed if now - r.created_at >= give_up}
    finished = sorted({r.delivery_id for r in delivered} | given_up)
    if failed:
        counts = {
            int(r.id): int(r.attempts)
            for r in await connection.execute(select(D.id, D.attempts).where(D.id.in_([r.delivery_id for r in failed])))
        }
        await connection.execute(
            _FAILED,
            [
                {
                    "b_id": r.delivery_id,
                    "b_code": r.status_code,
                    "b_status": FAILED if r.delivery_id in given_up else PENDING,
                    "b_error": r.error or f"HTTP {r.status_code}",
                    "b_next": now + timedelta(seconds=retry_delay(counts.get(r.delivery_id, 0) + 1, tuning)),
                }
                for r in failed
            ],
        )
    streaks: dict[str, list[bool]] = {}
    for r in results:
        streaks.setdefault(r.subscription_id, []).append(r.delivered)
    if connection.dialect.name == "postgresql":
        await connection.execute(
            _statements("postgresql").recorded,
            {
                "b_now": now,
                "b_ids": [r.delivery_id for r in results],
                "b_codes": [r.status_code for r in results],
                "b_errors": [None if r.delivered else (r.error or f"HTTP {r.status_code}") for r in results],
                "b_durations": [r.duration_ms for r in results],
                "b_streaks_over": sorted(s for s, outcomes in streaks.items() if outcomes[-1]),
                "b_finished": finished,
            },
        )
        for subscription_id, outcomes in streaks.items():
            if not outcomes[-1]:
                await _count_failures(connection, subscription_id, outcomes, now)
        return finished
    await connection.execute(
        _statements(connection.dialect.name).attempts,
        {
            "b_now": now,
            "b_attempts": [
                [
                    r.delivery_id,
                    r.status_code,
                    None if r.delivered else (r.error or f"HTTP {r.status_code}"),
                    r.duration_ms,
                ]
                for r in results
            ],
        },
    )
    by_code: dict[int | None, list[int]] = {}
    for r in delivered:
        by_code.setdefault(r.status_code, []).append(r.delivery_id)
    for code, ids in sorted(by_code.items(), key=lambda item: item[0] or 0):  # one statement per status code
        await connection.execute(
            _statements(connection.dialect.name).delivered, {"b_ids": sorted(ids), "b_code": code, "b_now": now}
        )
    for subscription_id, outcomes in streaks.items():
        await _count_failures(connection, subscription_id, outcomes, now)
    return finished


_STREAK_OVER = (
    update(webhook_subscriptions)
    .where(S.id == bindparam("b_subscription"), S.consecutive_failures != 0)
    .values(consecutive_failures=0)
)
_LEASE_ENDS = {"leased_until": None, "lease_owner": None, "attempts": D.attempts + 1}
_FAILED = (
    update(webhook_deliveries)
    .where(D.id == bindparam("b_id"), D.status == PENDING)
    .values(
        status=bindparam("b_status"),
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        next_attempt_at=bindparam("b_next"),
        **_LEASE_ENDS,
    )
)


async def _advance(connection: AsyncConnection, finished: Sequence[int]) -> None:
    """The lines whose heads are among ``finished`` (no longer pending): the next pending delivery of each
    becomes its head, or the line is gone.

    On PostgreSQL ``_record`` locked the heads' rows (``_recorded``), and the next ones are read by a later
    statement (this one, or ``_moved_and_leased``): a writer adding to one of these lines holds its head's row
    (``_join_lines``) until it commits, so the read sees its delivery; a writer that comes after the lock waits,
    and finds the line gone or moved on."""
    if not finished:
        return
    statements = _statements(connection.dialect.name)
    parameters = {"b_finished": list(finished)}
    await connection.execute(statements.move_on, parameters)
    await connection.execute(statements.lines_done, parameters)


async def _count_failures(
    connection: AsyncConnection, subscription_id: str, outcomes: list[bool], now: datetime
) -> None:
    """Consecutive failures after this batch: the failures since its last success, added to the earlier
    streak when the batch had no success at all. Paused when the streak reaches the threshold."""
    if outcomes and outcomes[-1]:  # ends with a success: the streak is over, nothing to pause
        await connection.execute(_STREAK_OVER, {"b_subscription": subscription_id})
        return
    row = (
        await connection.execute(
            select(S.consecutive_failures, S.pause_after, S.paused_at).where(S.id == subscription_id)
        )
    ).first()
    if row is None:
        return
    last_success = max((i for i, ok in enumerate(outcomes) if ok), default=-1)
    trailing = len(outcomes) - (last_success + 1)
    streak = trailing if last_success >= 0 else int(row.consecutive_failures) + trailing
    values: dict[str, Any] = {"consecutive_failures": streak}
    if row.paused_at is None and streak >= int(row.pause_after):
        values.update(paused_at=now, paused_reason=f"paused after {streak} consecutive failed attempts")
        logger.warning("outgoing webhook %s paused after %d consecutive failed attempts", subscription_id, streak)
    await connection.execute(update(webhook_subscriptions).where(S.id == subscription_id).values(**values))


# ------------------------------------------------------------------ retention

_PRUNE_BATCH = 500  # deliveries read per transaction: a sweep never holds the write lock long


async def prune_delivered(store: Store, *, before: datetime, batch: int = _PRUNE_BATCH) -> int:
    """Delete the deliveries delivered before ``before``, with their attempts (``[webhooks_delivery] keep_days``);
    returns how many. Pending and failed ones stay, however old (they wait, or may be replayed).

    Each subscription's deliveries are walked in id order on its listing index, a batch at a time, from the
    oldest up to the first one created at ``before`` or later (ids follow creation, and a delivery is delivered
    after it was created): a sweep reads what is older than the retention and one batch more, never the table.
    Each batch is read without the write lock; the deletes check again under it.
    """
    async with store.read() as connection:
        subscriptions = list((await connection.execute(select(S.id).order_by(S.id))).scalars())
    pruned = 0
    for subscription_id in subscriptions:
        after = 0
        while True:
            async with store.read() as connection:  # the write lock only when there is something to delete
                rows = (
                    await connection.execute(
                        select(D.id, D.status, D.delivered_at, D.created_at)
                        .where(D.subscription_id == subscription_id, D.id > after)
                        .order_by(D.id)
                        .limit(batch)
                    )
                ).all()
            old = [r for r in rows if r.created_at < before]
            doomed = [int(r.id) for r in old if r.status == DELIVERED and r.delivered_at and r.delivered_at < before]
            if doomed:
                async with store.write() as connection:
                    pruned += await _delete_delivered(connection, doomed, before=before)
            if len(old) < batch:  # the rest was created within the retention (or there is no rest)
                break
            after = int(rows[-1].id)
    return pruned


async def _delete_delivered(connection: AsyncConnection, ids: Sequence[int], *, before: datetime) -> int:
    """Delete ``ids`` that are still delivered before ``before`` and no line's head, attempts first (not left to
    the foreign key's cascade). On PostgreSQL the rows are locked first, so a replay that committed since they
    were read keeps its delivery and its attempts; one that comes later finds no delivery."""
    still = select(D.id).where(
        D.id.in_(sorted(ids)),
        D.status == DELIVERED,
        D.delivered_at < before,
        ~select(H.delivery_id).where(H.delivery_id == D.id).exists(),
    )
    if connection.dialect.name == "postgresql":
        still = still.with_for_update()
    doomed = sorted(int(i) for i in (await connection.execute(still)).scalars())
    if not doomed:
        return 0
    await connection.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(doomed)))
    await connection.execute(delete(webhook_deliveries).where(D.id.in_(doomed)))
    return len(doomed)
