"""What reports read: the stored timeline of the conversations a customer started in a period.

Three queries, whatever the size of the database: the conversations with a contact starting in
``[start, end)`` (by the ``(kind, created_at)`` index), their timeline rows from ``start`` on (by the
``(conversation_id, created_at)`` index), and, per contact, the first agent message at or after its
start (one probe of the messages' ``(conversation_id, created_at)`` index each). Nothing is counted as
it happens: the figures are whatever the timeline says, so they agree across restarts and processes.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, null, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Author, Direction
from hub.reports import Contact, Timeline, TimelineEvent
from hub.store._db import Store
from hub.store.tables import agents, conversations, messages, timeline_events

__all__ = ["agent_names", "report_contacts", "report_timelines"]

_STARTS = ("opened", "reopened")
# what the figures are made of; the rest (important, invited, left, ...) is not read
_READ = (*_STARTS, "offered", "rejected", "timed_out", "accepted", "taken", "transferred", "closed")
# only these rows' data is read (where a transfer went, the status at close): the rest is not decoded
_data_read = case((timeline_events.c.kind.in_(("transferred", "closed")), timeline_events.c.data), else_=null()).label(
    "data"
)


async def report_timelines(store: Store, start: datetime, end: datetime, *, queue: str | None = None) -> list[Timeline]:
    """The timelines of every conversation with a period starting in ``[start, end)``, from ``start`` on.

    With ``queue``, only conversations that may have started in it: those in it now, and those transferred
    since ``start`` (a transfer names the queue it left); the caller keeps the contacts that did."""
    async with store.read() as connection:
        return await _timelines(connection, start, end, queue)


def _in_window(start: datetime, end: datetime, queue: str | None) -> tuple[Any, ...]:
    e, c = timeline_events.c, conversations.c
    in_window: tuple[Any, ...] = (e.kind.in_(_STARTS), e.created_at >= start, e.created_at < end)
    if queue is not None:
        moved = timeline_events.alias("moved")
        in_window += (
            or_(
                exists().where(c.id == e.conversation_id, c.queue_id == queue),
                exists().where(
                    moved.c.conversation_id == e.conversation_id,
                    moved.c.kind == "transferred",
                    moved.c.created_at >= start,
                ),
            ),
        )
    return in_window


async def _starts(
    connection: AsyncConnection, in_window: tuple[Any, ...]
) -> dict[int, dict[datetime, tuple[datetime | None, bool]]]:
    """conversation -> {start: (first agent message at or after it, whether a customer started it)}."""
    e, m = timeline_events.c, messages.c
    first_response = (
        select(func.min(m.created_at))
        .where(
            m.conversation_id == e.conversation_id,
            m.created_at >= e.created_at,
            m.direction == Direction.OUT.value,
            m.author == Author.AGENT.value,
        )
        .scalar_subquery()
    )
    found: dict[int, dict[datetime, tuple[datetime | None, bool]]] = {}
    rows = await connection.execute(
        select(e.conversation_id, e.created_at, e.kind, e.agent_id, first_response.label("first_response")).where(
            *in_window
        )
    )
    for row in rows:
        customer = row.kind == "reopened" or row.agent_id is None
        found.setdefault(int(row.conversation_id), {})[row.created_at] = (row.first_response, customer)
    return found


async def _facts(connection: AsyncConnection, ids: Any) -> dict[int, tuple[str, str]]:
    c = conversations.c
    rows = await connection.execute(select(c.id, c.channel, c.queue_id).where(c.id.in_(ids)))
    return {int(row.id): (str(row.channel), str(row.queue_id)) for row in rows}


async def _events(connection: AsyncConnection, ids: Any, start: datetime) -> dict[int, list[TimelineEvent]]:
    e = timeline_events.c
    events: dict[int, list[TimelineEvent]] = {}
    rows = await connection.execute(
        select(e.conversation_id, e.kind, e.agent_id, e.created_at, _data_read)
        .where(e.conversation_id.in_(ids), e.created_at >= start, e.kind.in_(_READ))
        .order_by(e.conversation_id, e.created_at, e.id)
    )
    for row in rows:
        events.setdefault(int(row.conversation_id), []).append(
            TimelineEvent(
                kind=row.kind,
                agent_id=None if row.agent_id is None else int(row.agent_id),
                at=row.created_at,
                data=row.data or {},
            )
        )
    return events


async def _timelines(connection: AsyncConnection, start: datetime, end: datetime, queue: str | None) -> list[Timeline]:
    e = timeline_events.c
    in_window = _in_window(start, end, queue)
    starts = await _starts(connection, in_window)
    if not starts:
        return []
    ids = select(e.conversation_id).where(*in_window).distinct().scalar_subquery()
    facts = await _facts(connection, ids)
    events = await _events(connection, ids, start)
    return [
        Timeline(
            conversation_id=conversation_id,
            channel=facts[conversation_id][0],
            queue_id=facts[conversation_id][1],
            events=events.get(conversation_id, []),
            first_responses={at: answered for at, (answered, _) in found.items()},
        )
        for conversation_id, found in starts.items()
        if conversation_id in facts
    ]


async def report_contacts(
    store: Store, start: datetime, end: datetime, *, queue: str | None = None
) -> tuple[list[Contact], list[Timeline]]:
    """What queue and channel reports count: the contacts of every conversation with one period from ``start``
    on, counted by the database (one grouped pass over their timeline rows, no agents named), and the timelines
    of the few conversations with more (reopened), to be split into contacts by ``hub.reports.contacts_of``.
    ``queue`` as in ``report_timelines``."""
    async with store.read() as connection:
        return await _contacts(connection, start, end, queue)


async def _contacts(
    connection: AsyncConnection, start: datetime, end: datetime, queue: str | None
) -> tuple[list[Contact], list[Timeline]]:
    e = timeline_events.c
    in_window = _in_window(start, end, queue)
    starts = await _starts(connection, in_window)
    if not starts:
        return [], []
    ids = select(e.conversation_id).where(*in_window).distinct().scalar_subquery()
    facts = await _facts(connection, ids)
    several = set(
        (
            await connection.execute(
                select(e.conversation_id)
                .where(e.conversation_id.in_(ids), e.kind.in_(_STARTS), e.created_at >= start)
                .group_by(e.conversation_id)
                .having(func.count() > 1)
            )
        ).scalars()
    )
    first_queue: dict[int, str] = {}  # where each transferred conversation was before its first transfer
    moves = await connection.execute(
        select(e.conversation_id, e.data["from_queue"].as_string().label("from_queue"))
        .where(e.conversation_id.in_(ids), e.kind == "transferred", e.created_at >= start)
        .order_by(e.conversation_id, e.created_at, e.id)
    )
    for row in moves:
        if row.from_queue is not None:
            first_queue.setdefault(int(row.conversation_id), str(row.from_queue))
    handled = or_(
        e.kind.in_(("accepted", "taken")), and_(e.kind == "transferred", e.data["to_agent"].as_string().is_not(None))
    )
    grouped = await connection.execute(
        select(
            e.conversation_id,
            func.min(case((e.kind == "offered", e.created_at))).label("first_offer"),
            func.min(case((handled, e.created_at))).label("handled_at"),
            func.min(case((e.kind == "closed", e.created_at))).label("closed_at"),
            func.max(case((e.kind == "closed", e.data["status"].as_string()))).label("status"),
            func.sum(case((and_(e.kind.in_(("rejected", "timed_out")), e.agent_id.is_not(None)), 1), else_=0)).label(
                "missed"
            ),
            func.sum(case((e.kind == "transferred", 1), else_=0)).label("transfers"),
            func.min(e.created_at).label("earliest"),
        )
        .where(e.conversation_id.in_(ids), e.created_at >= start, e.kind.in_(_READ))
        .group_by(e.conversation_id)
    )
    contacts: list[Contact] = []
    for row in grouped:
        conversation_id = int(row.conversation_id)
        if conversation_id in several or conversation_id not in facts:
            continue
        ((started_at, (answered, customer)),) = starts[conversation_id].items()
        if row.earliest < started_at:  # rows of a period that began before the report's: read them one by one
            several.add(conversation_id)
            continue
        if not customer:
            continue
        channel, queue_now = facts[conversation_id]
        contacts.append(
            Contact(
                conversation_id=conversation_id,
                queue_id=first_queue.get(conversation_id, queue_now),
                channel=channel,
                started_at=started_at,
                first_offer_at=row.first_offer,
                handled_at=row.handled_at,
                first_response_at=answered,
                closed_at=row.closed_at,
                status=row.status,
                missed_offers=int(row.missed or 0),
                transfers=int(row.transfers or 0),
            )
        )
    timelines = []
    if several:
        chosen = list(several)
        events = await _events(connection, chosen, start)
        for conversation_id in chosen:
            if conversation_id not in facts or conversation_id not in starts:
                continue
            channel, queue_now = facts[conversation_id]
            timelines.append(
                Timeline(
                    conversation_id=conversation_id,
                    channel=channel,
                    queue_id=queue_now,
                    events=events.get(conversation_id, []),
                    first_responses={at: answered for at, (answered, _) in starts[conversation_id].items()},
                )
            )
    return contacts, timelines


async def agent_names(store: Store, ids: Collection[int]) -> dict[int, tuple[str, str]]:
    """agent id -> (login, display name), for the agents a report names."""
    if not ids:
        return {}
    async with store.read() as connection:
        rows = await connection.execute(
            select(agents.c.id, agents.c.login, agents.c.display_name).where(agents.c.id.in_(list(ids)))
        )
        return {int(r.id): (r.login, r.display_name) for r in rows}
