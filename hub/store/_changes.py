"""One conversation's change inside a routing transaction: the facts, the lifecycle's decision, applied.

The routing actions (``hub.store.routing``) and the sweep (``hub.store.offers``) share this: gather the facts
inside the transaction (the conversation row, locked ``FOR UPDATE`` on PostgreSQL, with its version, and its
participants), ask ``lifecycle.transition`` (``decide``) and apply the ``Change`` (``apply_change``): one
conditional UPDATE (``WHERE state = ... AND version = ...``), then the participants and the timeline. So two
tasks or two hub processes never change one conversation from the same state twice. Also here: the bus events
those changes publish, and the reads both sides need (an agent's load, a queue's settings).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import lifecycle
from hub.bus import BusEvent
from hub.events import (
    ConversationLeftQueue,
    ConversationUpdated,
    ConversationWaiting,
    OfferWithdrawn,
)
from hub.model import Conversation, ConversationState, EventKind, Presence, Queue
from hub.routing import Candidate
from hub.store._db import upsert
from hub.store.catalogue import load_queue
from hub.store.conversations import conversation_from_row
from hub.store.tables import agent_queues, agents, conversations, participants, timeline_events
from hub.store.webhooks_out import record_outgoing

__all__ = [
    "ACTIVE",
    "CLOSED",
    "OFFERED",
    "OWNER",
    "REFUSALS",
    "WAITING",
    "Change",
    "Facts",
    "RoutingRefused",
    "add_timeline",
    "apply_change",
    "column_value",
    "decide",
    "is_active",
    "join",
    "load_candidates",
    "load_facts",
    "load_of",
    "locked_for_change",
    "queue_config",
    "queue_event",
    "reported",
    "updated_event",
    "withdrawn_event",
]

logger = logging.getLogger(__name__)

WAITING = ConversationState.WAITING.value
OFFERED = ConversationState.OFFERED.value
ACTIVE = ConversationState.ACTIVE.value
CLOSED = ConversationState.CLOSED.value
OWNER = lifecycle.OWNER
# an agent who did one of these is not offered the conversation again in the same waiting period
REFUSALS = (EventKind.REJECTED.value, EventKind.TIMED_OUT.value, EventKind.TRANSFERRED.value)


class RoutingRefused(Exception):
    """The action does not apply to the conversation as it is now; nothing changed.

    ``kind``: ``not_found`` | ``forbidden`` | ``conflict`` (someone else got there first, wrong state) |
    ``invalid`` (the request itself is wrong, e.g. a status not allowed). A ``hub.lifecycle.Refusal``
    raised."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message

    @classmethod
    def of(cls, refusal: lifecycle.Refusal) -> RoutingRefused:
        return cls(refusal.kind, refusal.code, refusal.message)


@dataclass(slots=True)
class Change:
    conversation: Conversation
    events: list[BusEvent] = field(default_factory=list)


# ------------------------------------------------------------------ helpers


async def add_timeline(
    connection: AsyncConnection,
    conversation_id: int,
    kind: EventKind,
    now: datetime,
    agent_id: int | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    await connection.execute(
        timeline_events.insert().values(
            conversation_id=conversation_id, kind=kind.value, agent_id=agent_id, data=dict(data or {}), created_at=now
        )
    )


def load_of(agent_id_column: Any) -> Any:
    """Active conversations owned plus conversations offered: what counts against capacity."""
    owned = (
        select(func.count())
        .select_from(conversations)
        .where(conversations.c.owner_agent_id == agent_id_column, conversations.c.state == ACTIVE)
        .scalar_subquery()
    )
    offered = (
        select(func.count())
        .select_from(conversations)
        .where(conversations.c.state == OFFERED, conversations.c.offered_agent_id == agent_id_column)
        .scalar_subquery()
    )
    return owned + offered


async def load_candidates(
    connection: AsyncConnection, queue_id: str, conversation_id: int, waiting_since: datetime | None
) -> list[Candidate]:
    refused: set[int] = set()
    if waiting_since is not None:
        rows = await connection.execute(
            select(timeline_events.c.agent_id).where(
                timeline_events.c.conversation_id == conversation_id,
                timeline_events.c.kind.in_(REFUSALS),
                timeline_events.c.created_at >= waiting_since,
                timeline_events.c.agent_id.is_not(None),
            )
        )
        refused = {int(a) for a in rows.scalars()}
    rows = await connection.execute(
        select(agents.c.id, agents.c.idle_since, agents.c.capacity, load_of(agents.c.id).label("load"))
        .join(agent_queues, agent_queues.c.agent_id == agents.c.id)
        .where(agent_queues.c.queue_id == queue_id, agents.c.presence == Presence.READY.value, agents.c.active)
    )
    return [
        Candidate(
            agent_id=int(r.id),
            idle_since=r.idle_since,
            load=int(r.load),
            capacity=int(r.capacity),
            refused=int(r.id) in refused,
        )
        for r in rows
    ]


async def queue_config(connection: AsyncConnection, queue_id: str) -> Queue:
    queue = await load_queue(connection, queue_id)
    return queue or Queue(id=queue_id, name=queue_id, number=0, offer_timeout=30)


def updated_event(
    conversation_id: int, action: str, audience: Sequence[int], *, agent_id: int, **data: Any
) -> BusEvent:
    return ConversationUpdated(
        conversation_id=conversation_id, action=action, by=agent_id, audience=tuple(audience), details=data
    )


def queue_event(conversation_id: int, queue_id: str, waiting: bool) -> BusEvent:
    if waiting:
        return ConversationWaiting(conversation_id=conversation_id, queue_id=queue_id)
    return ConversationLeftQueue(conversation_id=conversation_id, queue_id=queue_id)


def withdrawn_event(conversation_id: int, agent_id: int, reason: str) -> BusEvent:
    return OfferWithdrawn(conversation_id=conversation_id, agent_id=agent_id, reason=reason)


async def join(
    connection: AsyncConnection, dialect: str, conversation_id: int, agent_id: int, role: str, now: datetime
) -> None:
    # a new part: the status of a part the agent closed before is not this one's (ADR 0030)
    fresh = {"role": role, "joined_at": now, "left_at": None, "status_id": None}
    stmt = upsert(dialect, participants, {"conversation_id": conversation_id, "agent_id": agent_id, **fresh})
    await connection.execute(stmt.on_conflict_do_update(index_elements=["conversation_id", "agent_id"], set_=fresh))


async def is_active(connection: AsyncConnection, dialect: str, agent_id: int) -> bool:
    """Whether the agent exists and is active. On PostgreSQL the row is share-locked, so a
    deactivation committing meanwhile (it updates that row) is waited for and seen."""
    query = select(agents.c.active).where(agents.c.id == agent_id)
    if dialect == "postgresql":
        query = query.with_for_update(read=True)
    return bool((await connection.execute(query)).scalar_one_or_none())


# ------------------------------------------------------- facts and changes


@dataclass(frozen=True, slots=True)
class Facts:
    """A conversation as ``hub.lifecycle`` needs it, read inside the transaction that will change it."""

    conversation: Conversation
    version: int
    participants: tuple[lifecycle.Participant, ...] = ()

    def audience(self, *joining: int) -> list[int]:
        """Everyone who is or was in the conversation (and ``joining``): who hears of the change."""
        return sorted({p.agent_id for p in self.participants} | set(joining))


_PARTICIPANTS = (
    select(
        participants.c.agent_id, participants.c.role, participants.c.joined_at, participants.c.left_at, agents.c.active
    )
    .select_from(participants.outerjoin(agents, agents.c.id == participants.c.agent_id))
    .where(participants.c.conversation_id == bindparam("conversation_id"))
)


def locked_for_change(query: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
    """``query`` locking the conversation rows it reads for a change (PostgreSQL), ``FOR NO KEY UPDATE``.

    Changes exclude each other as with ``FOR UPDATE``, but a change never alters a conversation's id, and a plain
    ``FOR UPDATE`` would also make every insert that references the row (its foreign-key check takes ``FOR KEY
    SHARE``) wait for the change. A bot's bookkeeping row inserted meanwhile then waited for the change while the
    change waited for that row: a deadlock."""
    return query.with_for_update(key_share=True, skip_locked=skip_locked, of=conversations)


async def load_facts(
    connection: AsyncConnection, dialect: str, conversation_id: int, *, people: bool = True, lock: bool = True
) -> Facts:
    """The conversation (locked on PostgreSQL, so a concurrent change waits for this one and then reads its
    outcome) with its row version, and, with ``people``, everyone who is or was in it.

    The lock is the one every change takes (``locked_for_change``)."""
    query = select(conversations).where(conversations.c.id == conversation_id)
    if lock and dialect == "postgresql":
        query = locked_for_change(query)
    row = (await connection.execute(query)).first()
    if row is None:
        raise RoutingRefused("not_found", "not_found", f"no conversation {conversation_id}")
    found: tuple[lifecycle.Participant, ...] = ()
    if people:
        found = tuple(
            lifecycle.Participant(
                agent_id=int(p.agent_id),
                role=str(p.role),
                joined_at=p.joined_at,
                left_at=p.left_at,
                active=bool(p.active),
            )
            for p in await connection.execute(_PARTICIPANTS, {"conversation_id": conversation_id})
        )
    return Facts(conversation_from_row(row), int(row.version), found)


def decide(facts: Facts, action: lifecycle.Action, now: datetime) -> lifecycle.Change:
    decision = lifecycle.transition(facts.conversation, facts.participants, action, now)
    if isinstance(decision, lifecycle.Refusal):
        raise RoutingRefused.of(decision)
    return decision


def column_value(value: Any) -> Any:
    return value.value if isinstance(value, ConversationState) else value


async def apply_change(
    connection: AsyncConnection, dialect: str, facts: Facts, change: lifecycle.Change, now: datetime
) -> Conversation:
    """Make ``change`` true: one update of the conversation guarded by the state and version read with the
    facts (none other matches: raise ``change.lost``), then the participants, the timeline and the idle time.
    Returns the conversation as it is now."""
    conversation_id = facts.conversation.id
    c = conversations.c
    result = await connection.execute(
        update(conversations)
        .where(c.id == conversation_id, c.state == facts.conversation.state.value, c.version == facts.version)
        .values(version=c.version + 1, **{name: column_value(value) for name, value in change.sets.items()})
    )
    if result.rowcount != 1:
        raise RoutingRefused.of(change.lost)
    if change.everyone_leaves or change.leaves:
        here = [participants.c.conversation_id == conversation_id, participants.c.left_at.is_(None)]
        if not change.everyone_leaves:
            here.append(participants.c.agent_id.in_(sorted(change.leaves)))
        await connection.execute(update(participants).where(*here).values(left_at=now))
    if change.promotes is not None:
        await connection.execute(
            update(participants)
            .where(participants.c.conversation_id == conversation_id, participants.c.agent_id == change.promotes)
            .values(role=OWNER)
        )
    if change.part_status is not None:
        agent_id, status = change.part_status
        await connection.execute(
            update(participants)
            .where(participants.c.conversation_id == conversation_id, participants.c.agent_id == agent_id)
            .values(status_id=status)
        )
    for agent_id, role in change.joins:
        await join(connection, dialect, conversation_id, agent_id, role, now)
    entry = change.entry
    if entry is not None:
        await add_timeline(connection, conversation_id, entry.kind, now, entry.agent_id, entry.data)
    if change.restarts_idle is not None:
        await connection.execute(update(agents).where(agents.c.id == change.restarts_idle).values(idle_since=now))
    return change.after


async def reported(
    connection: AsyncConnection, conversation: Conversation, events: list[BusEvent], now: datetime
) -> Change:
    """The change, with its outgoing webhook deliveries written in its transaction."""
    await record_outgoing(connection, events, now=now)
    return Change(conversation, events)
