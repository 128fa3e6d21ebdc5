"""The replayable event log (``bus_log``): what the WebSocket sent, numbered.

Each event the consoles may need is stored once with a sequence number; a
client that reconnects with ``since=<seq>`` is sent what it missed. Rows older
than the retention are pruned; a client further behind than that is told to
reload instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.events import HubEvent, LoggedEvent
from hub.model import ConversationState
from hub.store._db import DIALECTS, Store, one_of
from hub.store.tables import bus_log, conversations, participants

__all__ = [
    "Journal",
    "JournalFailed",
    "LoggedEvent",
    "audiences",
    "insert_events",
    "journal_events",
    "journal_or_raise",
    "last_seq",
    "log_events",
    "oldest_seq",
    "prune_events",
    "read_events",
]


logger = logging.getLogger(__name__)

Journal = Callable[[AsyncConnection, list[HubEvent]], Awaitable[list[HubEvent]]]
"""Records events in the caller's own write transaction and returns them as they are to be published.

The WebSocket notifier is one: writing its replay log in the transaction that made the change (an ingest
group, a routing sweep) saves a second write transaction each time, and on SQLite a second turn at its one
write lock behind every other writer.
"""


class JournalFailed(Exception):
    """The journal failed inside the caller's transaction, which PostgreSQL has then aborted: roll it back."""


async def journal_events(
    connection: AsyncConnection, journal: Journal | None, events: list[HubEvent]
) -> list[HubEvent]:
    """``events`` as ``journal`` recorded them, or as they are if there is none or it fails.

    A failure is contained in a savepoint: the change that caused the events matters more than their replay
    log, and events published unrecorded are recorded by their subscribers like any other.
    """
    if journal is None or not events:
        return events
    try:
        async with connection.begin_nested():
            return await journal_or_raise(connection, journal, events)
    except Exception:
        logger.warning(
            "could not record %d events in their transaction; publishing them as they are", len(events), exc_info=True
        )
        return events


async def journal_or_raise(connection: AsyncConnection, journal: Journal, events: list[HubEvent]) -> list[HubEvent]:
    """``events`` as ``journal`` recorded them, without a savepoint of its own: a failure raises
    ``JournalFailed``, and the caller redoes its transaction without the journal (as the ingest does, whose
    every group would otherwise pay a savepoint's two round trips for a failure that hardly happens)."""
    if not events:
        return events
    try:
        recorded = await journal(connection, events)
    except Exception as exc:
        raise JournalFailed(f"the journal failed on {len(events)} events") from exc
    if len(recorded) != len(events):
        raise JournalFailed(f"the journal returned {len(recorded)} events for {len(events)}")
    return recorded


def _row(row: Any) -> LoggedEvent:
    return LoggedEvent(
        seq=int(row.seq),
        kind=row.kind,
        conversation_id=row.conversation_id,
        agent_id=row.agent_id,
        queue_id=row.queue_id,
        data=row.data or {},
        created_at=row.created_at,
    )


async def log_events(
    store: Store, events: Sequence[dict[str, Any]], *, now: datetime, background: bool = False
) -> list[LoggedEvent]:
    """Store events (dicts with kind, conversation_id, agent_id, queue_id, data); returns them numbered.
    ``background``: as ``Store.write`` takes it (the notifier's own logging)."""
    if not events:
        return []
    async with store.write(background=background) as connection:
        return await insert_events(connection, store.dialect, events, now=now)


async def insert_events(
    connection: AsyncConnection, dialect: str, events: Sequence[dict[str, Any]], *, now: datetime
) -> list[LoggedEvent]:
    """``log_events`` inside a write transaction the caller already holds (ingest logs with its own commit)."""
    if not events:
        return []
    values = [
        {
            "kind": e["kind"],
            "conversation_id": e.get("conversation_id"),
            "agent_id": e.get("agent_id"),
            "queue_id": e.get("queue_id"),
            "data": e.get("data") or {},
            "created_at": now,
        }
        for e in events
    ]
    if dialect == "sqlite":
        # An ordered RETURNING makes SQLAlchemy insert SQLite rows one statement at a time. A write
        # transaction holds SQLite's only write lock (BEGIN IMMEDIATE), so numbering the rows here from
        # max(seq) gives exactly the numbers, in exactly the order, SQLite itself would have given; one
        # executemany then stores them all.
        top = (await connection.execute(select(func.max(bus_log.c.seq)))).scalar_one_or_none()
        first = int(top or 0) + 1
        for offset, value in enumerate(values):
            value["seq"] = first + offset
        await connection.execute(bus_log.insert(), values)
        numbered = [(int(v["seq"]), now) for v in values]
    else:
        # only the numbers come back: the rows' JSON need not be decoded again
        statement = bus_log.insert().returning(bus_log.c.seq, bus_log.c.created_at, sort_by_parameter_order=True)
        numbered = [(int(r.seq), r.created_at) for r in await connection.execute(statement, values)]
    return [
        LoggedEvent(
            seq=seq,
            kind=v["kind"],
            conversation_id=v["conversation_id"],
            agent_id=v["agent_id"],
            queue_id=v["queue_id"],
            data=v["data"],
            created_at=created_at,
        )
        for v, (seq, created_at) in zip(values, numbered, strict=True)
    ]


async def read_events(store: Store, *, after: int, limit: int = 1000) -> list[LoggedEvent]:
    async with store.read() as connection:
        rows = await connection.execute(
            select(bus_log).where(bus_log.c.seq > after).order_by(bus_log.c.seq).limit(limit)
        )
        return [_row(r) for r in rows]


async def oldest_seq(store: Store) -> int | None:
    async with store.read() as connection:
        value = (await connection.execute(select(func.min(bus_log.c.seq)))).scalar_one_or_none()
    return None if value is None else int(value)


async def last_seq(store: Store) -> int:
    async with store.read() as connection:
        value = (await connection.execute(select(func.max(bus_log.c.seq)))).scalar_one_or_none()
    return 0 if value is None else int(value)


async def prune_events(store: Store, *, before: datetime) -> int:
    async with store.write() as connection:
        result = await connection.execute(delete(bus_log).where(bus_log.c.created_at < before))
    return int(result.rowcount)


async def audiences(connection: AsyncConnection, conversation_ids: Sequence[int]) -> dict[int, list[int]]:
    """Who should hear about each conversation: its current participants and the agent it is offered to.

    Takes a connection so the notifier reads audiences and conversation views in one checkout; one statement,
    since it is read in the transaction of every change the consoles hear of (an ingest group's among them).
    """
    ids = sorted(set(conversation_ids))
    found: dict[int, set[int]] = {i: set() for i in ids}
    if not ids:
        return {}
    for r in await connection.execute(_AUDIENCE[connection.dialect.name], {"ids": ids}):
        found[int(r.conversation_id)].add(int(r.agent_id))
    return {i: sorted(a) for i, a in found.items()}


_AUDIENCE = {
    dialect: union_all(
        select(participants.c.conversation_id, participants.c.agent_id).where(
            one_of(participants.c.conversation_id, "ids", dialect), participants.c.left_at.is_(None)
        ),
        select(conversations.c.id, conversations.c.offered_agent_id).where(
            one_of(conversations.c.id, "ids", dialect),
            conversations.c.state == ConversationState.OFFERED.value,
            conversations.c.offered_agent_id.is_not(None),
        ),
    )
    for dialect in DIALECTS
}
