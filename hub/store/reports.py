"""What reports read: the stored timeline of the conversations a customer started in a period.

The periods starting in ``[start, end)`` are found by the ``(kind, created_at)`` index, with their conversation's
channel and queue and the first agent message at or after each (one probe of the messages'
``(conversation_id, created_at)`` index). Queue and channel reports count each period's timeline rows from
``start`` on in the same statement (joined by the timeline's ``(conversation_id, created_at)`` index); the
conversations read row by row afterwards are named by their ids bound as one array. Nothing is counted as it
happens: the figures are whatever the timeline says, so they agree across restarts and processes.

Both paths read the same facts of a bot's part: whether a period started with a bot (its start's ``bot``), its
hand-offs (``handed_off``, with the reason) and whether a bot closed it (the close's ``bot``); a conversation
handed off more than once in the report is read row by row, so its first hand-off's reason is the one counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from sqlalchemy import and_, case, exists, func, null, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Author, Direction
from hub.reports import MOVES, STARTS, TO_PEOPLE, Contact, Timeline, TimelineEvent
from hub.store._db import Store, one_of
from hub.store.tables import agents, conversations, messages, timeline_events

__all__ = ["agent_names", "report_contacts", "report_timelines"]

# what the figures are made of; the rest (important, invited, left, bot_took_over, ...) is not read
_READ = (*STARTS, "offered", "rejected", "timed_out", "accepted", "taken", "transferred", "handed_off", "closed")
# only these rows' data is read (a start's bot, where a transfer or hand-off went and why, the status at close
# and who closed): the rest is not decoded
_data_read = case(
    (timeline_events.c.kind.in_((*STARTS, *MOVES, "closed")), timeline_events.c.data),
    else_=null(),
).label("data")
_NO_DATA: Mapping[str, Any] = MappingProxyType({})  # one for every row without data, not a new dict each

# SET LOCAL jit = off, as a function: a report's statements touch many rows each, so PostgreSQL's estimates may
# pass the cost at which it compiles them first (tens of milliseconds each), which an index walk never repays
_NO_JIT = text("SELECT set_config('jit', 'off', true)")


@asynccontextmanager
async def _reading(store: Store) -> AsyncIterator[AsyncConnection]:
    """A read transaction for one report's statements."""
    async with store.read() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(_NO_JIT)
        yield connection


class _Starts(NamedTuple):
    """A conversation with a period starting in the report: where it is now, and per period (start, first agent
    message at or after it, whether a customer started it). Tuples of plain values: thousands of them a report,
    which the garbage collector stops tracking instead of walking them at every collection."""

    channel: str
    queue_id: str
    periods: tuple[tuple[datetime, datetime | None, bool], ...]

    def timeline(self, conversation_id: int, events: Sequence[TimelineEvent]) -> Timeline:
        return Timeline(
            conversation_id=conversation_id,
            channel=self.channel,
            queue_id=self.queue_id,
            events=events,
            first_responses={at: answered for at, answered, _ in self.periods},
        )


async def report_timelines(store: Store, start: datetime, end: datetime, *, queue: str | None = None) -> list[Timeline]:
    """The timelines of every conversation with a period starting in ``[start, end)``, from ``start`` on.

    With ``queue``, only conversations that may have started in it: those in it now, and those transferred or
    handed off since ``start`` (each names the queue it left); the caller keeps the contacts that did."""
    async with _reading(store) as connection:
        starts = await _starts(connection, start, end, queue)
        if not starts:
            return []
        events = await _events(connection, list(starts), start)
        return [found.timeline(cid, events.get(cid, [])) for cid, found in starts.items()]


def _one_of(connection: AsyncConnection, column: Any) -> Any:
    """``column`` is one of the conversation ids bound as ``conversation_ids``, one parameter whatever their
    number (an expanding ``IN`` binds one per value, past the drivers' limits for a busy year)."""
    return one_of(column, "conversation_ids", connection.dialect.name)


_period = timeline_events.alias("period")


def _periods(start: datetime, end: datetime, queue: str | None) -> Any:
    """The periods starting in ``[start, end)`` (rows of ``_period``), their conversation's channel and queue, and
    the first agent message at or after each."""
    e, m, c = _period.c, messages.c, conversations.c
    # the first in index order, not min(): the probe stops at the first agent message instead of reading all
    # the conversation's later messages
    first_response = (
        select(m.created_at)
        .where(
            m.conversation_id == e.conversation_id,
            m.created_at >= e.created_at,
            m.direction == Direction.OUT.value,
            m.author == Author.AGENT.value,
        )
        .order_by(m.created_at)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(
            e.conversation_id, e.created_at, e.kind, e.agent_id, c.channel, c.queue_id, first_response.label("answered")
        )
        .join_from(_period, conversations, c.id == e.conversation_id)
        .where(e.kind.in_(STARTS), e.created_at >= start, e.created_at < end)
    )
    if queue is None:
        return query
    moved = timeline_events.alias("moved")
    transferred = exists().where(
        moved.c.conversation_id == e.conversation_id, moved.c.kind.in_(MOVES), moved.c.created_at >= start
    )
    return query.where(or_(c.queue_id == queue, transferred))


def _add_period(found: dict[int, _Starts], row: Sequence[Any]) -> None:
    conversation_id, at, kind, agent_id, channel, queue_id, answered = row[:7]
    period = (at, answered, kind == "reopened" or agent_id is None)
    conversation = found.get(conversation_id)
    if conversation is None:
        found[int(conversation_id)] = _Starts(str(channel), str(queue_id), (period,))
    else:
        found[int(conversation_id)] = conversation._replace(periods=(*conversation.periods, period))


async def _starts(connection: AsyncConnection, start: datetime, end: datetime, queue: str | None) -> dict[int, _Starts]:
    """The conversations with a period starting in ``[start, end)``, in one statement (their facts joined)."""
    found: dict[int, _Starts] = {}
    for row in (await connection.execute(_periods(start, end, queue))).all():
        _add_period(found, row)
    return found


async def _events(connection: AsyncConnection, ids: list[int], start: datetime) -> dict[int, list[TimelineEvent]]:
    e = timeline_events.c
    events: dict[int, list[TimelineEvent]] = {}
    rows = await connection.execute(
        select(e.conversation_id, e.kind, e.agent_id, e.created_at, _data_read)
        .where(_one_of(connection, e.conversation_id), e.created_at >= start, e.kind.in_(_READ))
        .order_by(e.conversation_id, e.created_at, e.id),
        {"conversation_ids": ids},
    )
    for conversation_id, kind, agent_id, at, data in rows.all():
        timeline = events.get(conversation_id)
        if timeline is None:
            timeline = events[int(conversation_id)] = []
        agent = None if agent_id is None else int(agent_id)
        timeline.append(TimelineEvent(kind=kind, agent_id=agent, at=at, data=data or _NO_DATA))
    return events


async def report_contacts(
    store: Store, start: datetime, end: datetime, *, queue: str | None = None
) -> tuple[list[Contact], list[Timeline]]:
    """What queue and channel reports count: the contacts of every conversation with one period from ``start``
    on, counted by the database (one grouped pass over their timeline rows, no agents named), and the timelines
    of the few conversations with more (reopened), to be split into contacts by ``hub.reports.contacts_of``.
    ``queue`` as in ``report_timelines``."""
    async with _reading(store) as connection:
        return await _contacts(connection, start, end, queue)


async def _where_started(connection: AsyncConnection, transferred: list[Contact], start: datetime) -> None:
    """Put each moved contact in the queue it was in before its first transfer or hand-off (since ``start``),
    which that names; the others stay in the queue their conversation is in now."""
    if not transferred:
        return
    e = timeline_events.c
    ids = [contact.conversation_id for contact in transferred]
    first_queue: dict[int, str] = {}
    moves = await connection.execute(
        select(e.conversation_id, e.data["from_queue"].as_string().label("from_queue"))
        .where(_one_of(connection, e.conversation_id), e.kind.in_(MOVES), e.created_at >= start)
        .order_by(e.conversation_id, e.created_at, e.id),
        {"conversation_ids": ids},
    )
    for row in moves.all():
        if row.from_queue is not None:
            first_queue.setdefault(int(row.conversation_id), str(row.from_queue))
    for contact in transferred:
        contact.queue_id = first_queue.get(contact.conversation_id, contact.queue_id)


def _counted(start: datetime, end: datetime, queue: str | None) -> Any:
    """Per period starting in the report, its conversation's timeline rows from ``start`` on counted in one pass
    (conditional aggregates), joined to each period row by the ``(conversation_id, created_at)`` index."""
    e, p, c = timeline_events.c, _period.c, conversations.c
    handled = or_(
        e.kind.in_(("accepted", "taken")), and_(e.kind == "transferred", e.data["to_agent"].as_string().is_not(None))
    )
    return (
        _periods(start, end, queue)
        .add_columns(
            func.min(case((e.kind == "offered", e.created_at))).label("first_offer"),
            func.min(case((handled, e.created_at))).label("handled_at"),
            func.min(case((e.kind == "closed", e.created_at))).label("closed_at"),
            func.max(case((e.kind == "closed", e.data["status"].as_string()))).label("status"),
            func.sum(case((and_(e.kind.in_(("rejected", "timed_out")), e.agent_id.is_not(None)), 1), else_=0)).label(
                "missed"
            ),
            func.sum(case((e.kind == "transferred", 1), else_=0)).label("transfers"),
            func.sum(case((e.kind.in_(STARTS), 1), else_=0)).label("periods"),
            # rows before its one period's start: the end of a period that began before the report
            (func.min(e.created_at) < func.min(case((e.kind.in_(STARTS), e.created_at)))).label("began_before"),
            # a bot's part: did the period start with one, when did it reach people, its hand-offs (the reason
            # is the only one's: several are read row by row), and did a bot close it
            func.max(case((p.data["bot"].as_string().is_not(None), 1), else_=0)).label("with_bot"),
            func.min(case((e.kind.in_(TO_PEOPLE), e.created_at))).label("queued_at"),
            func.sum(case((e.kind == "handed_off", 1), else_=0)).label("handoffs"),
            func.max(case((e.kind == "handed_off", e.data["reason"].as_string()))).label("handoff_reason"),
            func.max(case((and_(e.kind == "closed", e.data["bot"].as_string().is_not(None)), 1), else_=0)).label(
                "closed_by_bot"
            ),
        )
        .join(timeline_events, and_(e.conversation_id == p.conversation_id, e.created_at >= start, e.kind.in_(_READ)))
        .group_by(p.id, p.conversation_id, p.created_at, p.kind, p.agent_id, c.channel, c.queue_id)
    )


async def _contacts(
    connection: AsyncConnection, start: datetime, end: datetime, queue: str | None
) -> tuple[list[Contact], list[Timeline]]:
    # read row by row: several periods, rows of one begun before the report, or several hand-offs
    several: dict[int, _Starts] = {}
    contacts: list[Contact] = []
    for row in (await connection.execute(_counted(start, end, queue))).all():
        conversation_id, started_at, kind, agent_id, channel, queue_id, answered = row[:7]
        first_offer, handled, closed, status, missed, transfers, periods, before = row[7:15]
        with_bot, queued_at, handoffs, reason, by_bot = row[15:]
        if periods > 1 or before or handoffs > 1:
            _add_period(several, row)
            continue
        if kind != "reopened" and agent_id is not None:  # an agent opened it to write first
            continue
        contacts.append(
            Contact(
                conversation_id=int(conversation_id),
                queue_id=str(queue_id),
                channel=str(channel),
                started_at=started_at,
                with_bot=bool(with_bot),
                queued_at=queued_at,
                handoffs=int(handoffs or 0),
                handoff_reason=reason,
                closed_by_bot=bool(by_bot),
                first_offer_at=first_offer,
                handled_at=handled,
                first_response_at=answered,
                closed_at=closed,
                status=status,
                missed_offers=int(missed or 0),
                transfers=int(transfers or 0),
            )
        )
    await _where_started(connection, [c for c in contacts if c.transfers or c.handoffs], start)
    if not several:
        return contacts, []
    events = await _events(connection, list(several), start)
    return contacts, [found.timeline(cid, events.get(cid, [])) for cid, found in several.items()]


async def agent_names(store: Store, ids: Collection[int]) -> dict[int, tuple[str, str]]:
    """agent id -> (login, display name), for the agents a report names."""
    if not ids:
        return {}
    async with store.read() as connection:
        rows = await connection.execute(
            select(agents.c.id, agents.c.login, agents.c.display_name).where(agents.c.id.in_(list(ids)))
        )
        return {int(r.id): (r.login, r.display_name) for r in rows}
