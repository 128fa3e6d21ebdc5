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

from sqlalchemy import case, exists, func, null, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Author, Direction
from hub.reports import Timeline, TimelineEvent
from hub.store._db import Store
from hub.store.tables import agents, conversations, messages, timeline_events

__all__ = ["agent_names", "report_timelines"]

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


async def _timelines(connection: AsyncConnection, start: datetime, end: datetime, queue: str | None) -> list[Timeline]:
    e, m, c = timeline_events.c, messages.c, conversations.c
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
    responses: dict[int, dict[datetime, datetime | None]] = {}
    rows = await connection.execute(
        select(e.conversation_id, e.created_at, first_response.label("first_response")).where(*in_window)
    )
    for row in rows:
        responses.setdefault(int(row.conversation_id), {})[row.created_at] = row.first_response
    if not responses:
        return []
    ids = select(e.conversation_id).where(*in_window).distinct().scalar_subquery()
    facts = {
        int(row.id): (row.channel, row.queue_id)
        for row in await connection.execute(select(c.id, c.channel, c.queue_id).where(c.id.in_(ids)))
    }
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
    return [
        Timeline(
            conversation_id=conversation_id,
            channel=str(facts[conversation_id][0]),
            queue_id=str(facts[conversation_id][1]),
            events=events.get(conversation_id, []),
            first_responses=starts,
        )
        for conversation_id, starts in responses.items()
        if conversation_id in facts
    ]


async def agent_names(store: Store, ids: Collection[int]) -> dict[int, tuple[str, str]]:
    """agent id -> (login, display name), for the agents a report names."""
    if not ids:
        return {}
    async with store.read() as connection:
        rows = await connection.execute(
            select(agents.c.id, agents.c.login, agents.c.display_name).where(agents.c.id.in_(list(ids)))
        )
        return {int(r.id): (r.login, r.display_name) for r in rows}
