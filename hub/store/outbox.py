"""The outbox: claiming due rows with a lease, storing what came of each attempt, and its upkeep.

Delivery workers claim due rows with a lease (``locked_until``), only the oldest unfinished row of each
conversation (order within a conversation); a reply that is its conversation's head may instead be claimed
by the transaction that queues it (``OutboxWriter.claim_queued``, ADR 0041). Acceptances are stored together
with the next claim in one transaction (``record_and_claim``; on PostgreSQL acceptances without a claim are
one statement that commits on its own, ADR 0019); failures and retries in their own short ones. The
statements that differ per engine sit behind ``OutboxWriter``, one module per engine, chosen by the Store's
dialect in ``outbox_writer``. See docs/decisions/0010-outbox-delivery.md and 0011.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus import BusEvent
from hub.events import MessageDelivery
from hub.model import Author, DeliveryState
from hub.store._db import Store
from hub.store._outbox_postgresql import PostgresqlOutbox
from hub.store._outbox_rows import Accepted, OutboxJob, OutboxState, OutboxWriter
from hub.store._outbox_sqlite import SqliteOutbox
from hub.store.health import stamp_health
from hub.store.ingest import apply_found_receipts, apply_known_receipts, prune_pending_receipts
from hub.store.tables import messages, outbox
from hub.store.webhooks_out import hears_of, record_outgoing

__all__ = [
    "Accepted",
    "OutboxJob",
    "OutboxState",
    "OutboxWriter",
    "claim_outbox",
    "outbox_counts",
    "outbox_upkeep",
    "outbox_writer",
    "record_and_claim",
    "record_failed",
    "record_retry",
    "release_claims",
    "renew_claim",
]

_WRITERS: dict[str, OutboxWriter] = {"sqlite": SqliteOutbox(), "postgresql": PostgresqlOutbox()}


def outbox_writer(store: Store) -> OutboxWriter:
    """The outbox's hot statements for the store's engine."""
    return _WRITERS[store.dialect]


async def claim_outbox(
    store: Store, *, now: datetime, worker: str, lease: timedelta, limit: int = 1
) -> list[OutboxJob]:
    """Claim up to ``limit`` due rows atomically: pending rows whose time has come, and rows
    whose lease expired (their worker died). Only the oldest unfinished row of a
    conversation is ever due, so a conversation's messages leave in order."""
    async with store.write() as connection:
        return await outbox_writer(store).claim(connection, now=now, worker=worker, lease=lease, limit=limit, follow=0)


async def release_claims(store: Store, outbox_ids: Sequence[int], *, worker: str) -> None:
    """Give back claimed rows that were never attempted (the rest of a run whose earlier message must
    wait for a retry, or whose lease ran short): pending again, the claim's attempt not counted."""
    if not outbox_ids:
        return
    async with store.write() as connection:
        await connection.execute(
            update(outbox)
            .where(
                outbox.c.id.in_(list(outbox_ids)),
                outbox.c.state == OutboxState.SENDING,
                outbox.c.locked_by == worker,
            )
            .values(state=OutboxState.PENDING, locked_until=None, locked_by=None, attempts=outbox.c.attempts - 1)
        )


async def renew_claim(
    store: Store, outbox_id: int, *, worker: str, attempts: int, now: datetime, lease: timedelta
) -> bool:
    """A fresh lease for a claimed row that is still this claim's: sending under ``worker`` with the claim's
    attempt count (whoever claims it after the lease ran out, another process or a sibling worker of this
    one, counts one more). False: it is someone else's now and must not be sent by this claim."""
    async with store.write() as connection:
        renewed = await connection.execute(
            update(outbox)
            .where(
                outbox.c.id == outbox_id,
                outbox.c.state == OutboxState.SENDING,
                outbox.c.locked_by == worker,
                outbox.c.attempts == attempts,
            )
            .values(locked_until=now + lease)
        )
        return renewed.rowcount == 1


async def record_and_claim(
    store: Store,
    items: Sequence[Accepted],
    limit: int,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    follow: int = 0,
) -> tuple[list[BusEvent], list[OutboxJob]]:
    """Store acceptances, then claim up to ``limit`` heads for ``worker`` (with ``follow``: and the due rows
    queued behind each, see ``OutboxWriter.claim``), in one transaction (all or none): the delivery workers
    of a process share one commit for both. The claim sees the acceptances, so the next message of a
    conversation whose previous one was just accepted is due.

    Where the engine allows it (``OutboxWriter.accepts_alone``: PostgreSQL), acceptances without a claim
    (and without a Messenger echo to clean up) are one statement that commits on its own: atomic by
    itself, and one round trip instead of a transaction's three (``BEGIN``, the statement, ``COMMIT``),
    each of which waits a turn of an event loop busy with a hundred sends (ADR 0019)."""
    writer = outbox_writer(store)
    if (
        writer.accepts_alone
        and items
        and not limit
        and not _echoes_possible(items)
        and not await hears_of(store, "message.delivery")  # its deliveries are written with the acceptance
    ):
        return await _record_accepted_alone(store, writer, items, now), []
    async with store.write() as connection:
        events = await _record_accepted(connection, writer, items, now=now) if items else []
        await record_outgoing(connection, events, now=now)
        jobs = (
            await writer.claim(connection, now=now, worker=worker, lease=lease, limit=limit, follow=follow)
            if limit
            else []
        )
    return events, jobs


def _echoes_possible(items: Sequence[Accepted]) -> bool:
    return any(item.echoed for item in items)


def _sent_events(items: Sequence[Accepted]) -> list[BusEvent]:
    return [
        MessageDelivery(
            conversation_id=i.job.conversation_id, message_id=i.job.message_id, state=DeliveryState.SENT.value
        )
        for i in items
    ]


async def _record_accepted_alone(
    store: Store, writer: OutboxWriter, items: Sequence[Accepted], now: datetime
) -> list[BusEvent]:
    """The acceptance statement on its own (autocommit). Early receipts it found are applied in a
    transaction after it; any left behind by a stop in between are applied by ``outbox_upkeep``."""
    channels = {item.job.account_id: item.job.channel for item in items}
    async with store.autocommit() as connection:
        pending = await writer.accept(connection, items, channels)
    early: list[BusEvent] = []
    if pending:
        async with store.write() as connection:
            early = await apply_found_receipts(connection, channels, pending, now)
            await record_outgoing(connection, early, now=now)
    return _sent_events(items) + early


async def _record_accepted(
    connection: AsyncConnection, writer: OutboxWriter, items: Sequence[Accepted], *, now: datetime
) -> list[BusEvent]:
    by_account: dict[str, list[Accepted]] = {}
    for item in items:
        by_account.setdefault(item.job.account_id, []).append(item)
    for account_id, group in by_account.items():
        if not group[0].echoed:
            continue
        # an echo of one of these sends (Messenger's) may have arrived first and been stored on its own
        await connection.execute(
            delete(messages).where(
                messages.c.account_id == account_id,
                messages.c.provider_message_id.in_([i.provider_message_id for i in group]),
                messages.c.id.notin_([i.job.message_id for i in group]),
                messages.c.author == Author.SYSTEM.value,
            )
        )
    channels = {account_id: group[0].job.channel for account_id, group in by_account.items()}
    pending = await writer.accept(connection, items, channels)
    early = await apply_found_receipts(connection, channels, pending, now) if pending else []
    return _sent_events(items) + early


async def outbox_upkeep(store: Store, account_ids: Sequence[str], *, now: datetime) -> list[BusEvent]:
    """What the outbox does about once a second, apart from the acceptances: stamp the accounts' last send
    (account health), forget early receipts older than a day, and apply early receipts whose message has its
    provider id by now (``apply_known_receipts``)."""
    async with store.write() as connection:
        for account_id in sorted(account_ids):
            await stamp_health(connection, store.dialect, account_id, {"last_send_at": now})
        await prune_pending_receipts(connection, now)
        applied = await apply_known_receipts(connection, now)
        await record_outgoing(connection, applied, now=now)
        return applied


async def record_retry(store: Store, job: OutboxJob, *, next_attempt_at: datetime, error: str, now: datetime) -> None:
    """A transient failure: release the row until ``next_attempt_at``; the message stays queued."""
    async with store.write() as connection:
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == job.id, outbox.c.state == OutboxState.SENDING)
            .values(
                state=OutboxState.PENDING,
                next_attempt_at=next_attempt_at,
                locked_until=None,
                locked_by=None,
                last_error=error[:1000],
            )
        )
        await stamp_health(
            connection, store.dialect, job.account_id, {"last_send_error": error, "last_send_error_at": now}
        )


async def record_failed(
    store: Store, job: OutboxJob, *, code: str, reason: str, now: datetime, provider_error: bool = True
) -> list[BusEvent]:
    """Failed for good: the message shows the code and a reason an agent understands."""
    async with store.write() as connection:
        await connection.execute(
            update(messages)
            .where(messages.c.id == job.message_id)
            .values(
                delivery_state=DeliveryState.FAILED.value,
                delivery_changed_at=now,
                error_code=code[:64],
                error_reason=reason,
            )
        )
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == job.id)
            .values(state=OutboxState.FAILED, locked_until=None, last_error=f"{code}: {reason}"[:1000])
        )
        if provider_error:
            await stamp_health(
                connection,
                store.dialect,
                job.account_id,
                {"last_send_error": f"{code}: {reason}", "last_send_error_at": now},
            )
        failed: list[BusEvent] = [
            MessageDelivery(
                conversation_id=job.conversation_id,
                message_id=job.message_id,
                state=DeliveryState.FAILED.value,
                error_code=code,
                error_reason=reason,
            )
        ]
        await record_outgoing(connection, failed, now=now)
    return failed


async def outbox_counts(store: Store) -> dict[str, int]:
    """Rows per outbox state (for tests, metrics and the bench)."""
    async with store.read() as connection:
        rows = await connection.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
        return {str(state): int(count) for state, count in rows.all()}
