"""Routing in SQL: offers, answers, hand-offs, each one short atomic transaction.

Every state change is a conditional UPDATE (``WHERE state = ... AND version = ...``)
so two tasks or two hub processes never offer one conversation twice; on
PostgreSQL the waiting conversation is locked ``FOR UPDATE SKIP LOCKED`` and the
chosen agent's row ``FOR UPDATE`` before their load is counted again, so an
agent never exceeds their capacity (SQLite serialises writers with BEGIN
IMMEDIATE). Deadlines are columns, so a restart loses and doubles nothing.
Each function returns the bus events to publish once it has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, union_all, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus import BusEvent
from hub.events import (
    AgentPresence,
    ConversationLeftQueue,
    ConversationUpdated,
    ConversationWaiting,
    Offer,
    OfferWithdrawn,
)
from hub.model import Conversation, ConversationState, EventKind, Presence, Queue
from hub.routing import BatchChooser, Candidate, choose_agent, close_refusal, offer_deadline
from hub.store._db import Store, upsert
from hub.store.agents import set_presence
from hub.store.catalogue import load_queue
from hub.store.conversations import load_conversation, load_participants
from hub.store.events import Journal, journal_events
from hub.store.tables import agent_queues, agents, conversations, participants, statuses, timeline_events

__all__ = [
    "Change",
    "Released",
    "RoutingRefused",
    "SweepResult",
    "accept_offer",
    "assign_waiting",
    "close_conversation",
    "expire_offers",
    "invite",
    "leave",
    "reject_offer",
    "release_agent",
    "set_important",
    "sweep",
    "take",
    "transfer_to_agent",
    "transfer_to_queue",
    "withdraw_offers",
]

logger = logging.getLogger(__name__)

WAITING = ConversationState.WAITING.value
OFFERED = ConversationState.OFFERED.value
ACTIVE = ConversationState.ACTIVE.value
CLOSED = ConversationState.CLOSED.value
OWNER = "owner"
INVITED = "invited"
# an agent who did one of these is not offered the conversation again in the same waiting period
_REFUSALS = (EventKind.REJECTED.value, EventKind.TIMED_OUT.value, EventKind.TRANSFERRED.value)


class RoutingRefused(Exception):
    """The action does not apply to the conversation as it is now; nothing changed.

    ``kind``: ``not_found`` | ``conflict`` (someone else got there first, wrong state) |
    ``invalid`` (the request itself is wrong, e.g. a status not allowed)."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message


@dataclass(slots=True)
class Change:
    conversation: Conversation
    events: list[BusEvent] = field(default_factory=list)


@dataclass(slots=True)
class Released:
    """What ``release_agent`` gave back, by conversation id, and the bus events to publish."""

    offers_withdrawn: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    handed_over: list[tuple[int, int]] = field(default_factory=list)  # (conversation, new owner)
    left: list[int] = field(default_factory=list)  # conversations they were invited to
    events: list[BusEvent] = field(default_factory=list)


@dataclass(slots=True)
class SweepResult:
    offered: list[tuple[int, int]] = field(default_factory=list)  # (conversation, agent)
    expired: list[tuple[int, int]] = field(default_factory=list)
    events: list[BusEvent] = field(default_factory=list)


# ------------------------------------------------------------------ helpers


async def _timeline(
    connection: AsyncConnection,
    conversation_id: int,
    kind: EventKind,
    now: datetime,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    await connection.execute(
        timeline_events.insert().values(
            conversation_id=conversation_id, kind=kind.value, agent_id=agent_id, data=data or {}, created_at=now
        )
    )


def _load_of(agent_id_column: Any) -> Any:
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


async def _candidates(
    connection: AsyncConnection, queue_id: str, conversation_id: int, waiting_since: datetime | None
) -> list[Candidate]:
    refused: set[int] = set()
    if waiting_since is not None:
        rows = await connection.execute(
            select(timeline_events.c.agent_id).where(
                timeline_events.c.conversation_id == conversation_id,
                timeline_events.c.kind.in_(_REFUSALS),
                timeline_events.c.created_at >= waiting_since,
                timeline_events.c.agent_id.is_not(None),
            )
        )
        refused = {int(a) for a in rows.scalars()}
    rows = await connection.execute(
        select(agents.c.id, agents.c.idle_since, agents.c.capacity, _load_of(agents.c.id).label("load"))
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


async def _queue(connection: AsyncConnection, queue_id: str) -> Queue:
    queue = await load_queue(connection, queue_id)
    return queue or Queue(id=queue_id, name=queue_id, number=0, offer_timeout=30)


async def _audience(connection: AsyncConnection, conversation_id: int) -> list[int]:
    rows = await connection.execute(
        select(participants.c.agent_id).where(participants.c.conversation_id == conversation_id)
    )
    return sorted({int(a) for a in rows.scalars()})


def _updated(conversation_id: int, action: str, audience: Sequence[int], *, agent_id: int, **data: Any) -> BusEvent:
    return ConversationUpdated(
        conversation_id=conversation_id, action=action, by=agent_id, audience=tuple(audience), details=data
    )


def _queue_event(conversation_id: int, queue_id: str, waiting: bool) -> BusEvent:
    if waiting:
        return ConversationWaiting(conversation_id=conversation_id, queue_id=queue_id)
    return ConversationLeftQueue(conversation_id=conversation_id, queue_id=queue_id)


def _withdrawn(conversation_id: int, agent_id: int, reason: str) -> BusEvent:
    return OfferWithdrawn(conversation_id=conversation_id, agent_id=agent_id, reason=reason)


async def _join(
    connection: AsyncConnection, dialect: str, conversation_id: int, agent_id: int, role: str, now: datetime
) -> None:
    stmt = upsert(
        dialect,
        participants,
        {"conversation_id": conversation_id, "agent_id": agent_id, "role": role, "joined_at": now, "left_at": None},
    )
    await connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["conversation_id", "agent_id"], set_={"role": role, "joined_at": now, "left_at": None}
        )
    )


async def _leave_all(connection: AsyncConnection, conversation_id: int, now: datetime) -> None:
    await connection.execute(
        update(participants)
        .where(participants.c.conversation_id == conversation_id, participants.c.left_at.is_(None))
        .values(left_at=now)
    )


async def _current(connection: AsyncConnection, conversation_id: int, dialect: str) -> Conversation:
    query = select(conversations.c.id).where(conversations.c.id == conversation_id)
    if dialect == "postgresql":
        query = query.with_for_update()
    if (await connection.execute(query)).first() is None:
        raise RoutingRefused("not_found", "not_found", f"no conversation {conversation_id}")
    conversation = await load_conversation(connection, conversation_id)
    assert conversation is not None
    return conversation


async def _reload(connection: AsyncConnection, conversation_id: int) -> Conversation:
    conversation = await load_conversation(connection, conversation_id)
    assert conversation is not None
    return conversation


async def _guarded_update(
    connection: AsyncConnection, conversation: Conversation, version_of: int, values: dict[str, Any], *states: str
) -> None:
    result = await connection.execute(
        update(conversations)
        .where(
            conversations.c.id == conversation.id,
            conversations.c.state.in_(states),
            conversations.c.version == version_of,
        )
        .values(version=conversations.c.version + 1, **values)
    )
    if result.rowcount != 1:
        raise RoutingRefused("conflict", "conflict", "the conversation changed meanwhile; reload it")


async def _is_active(connection: AsyncConnection, dialect: str, agent_id: int) -> bool:
    """Whether the agent exists and is active. On PostgreSQL the row is share-locked, so a
    deactivation committing meanwhile (it updates that row) is waited for and seen."""
    query = select(agents.c.active).where(agents.c.id == agent_id)
    if dialect == "postgresql":
        query = query.with_for_update(read=True)
    return bool((await connection.execute(query)).scalar_one_or_none())


async def _version(connection: AsyncConnection, conversation_id: int) -> int:
    return int(
        (
            await connection.execute(select(conversations.c.version).where(conversations.c.id == conversation_id))
        ).scalar_one()
    )


# -------------------------------------------------------------------- sweep


async def sweep(
    store: Store,
    *,
    now: datetime,
    missed_offer_reason: str = "missed offer",
    batch: int = 500,
    journal: Journal | None = None,
) -> SweepResult:
    """One routing pass: expire overdue offers, then offer waiting conversations.

    Safe to run from several tasks or processes at once. ``journal`` records the offers' events in the
    transaction that makes them (see ``hub.store.events.Journal``)."""
    result = SweepResult()
    await expire_offers(store, now=now, reason=missed_offer_reason, result=result)
    await assign_waiting(store, now=now, batch=batch, result=result, journal=journal)
    return result


async def expire_offers(
    store: Store, *, now: datetime, reason: str = "missed offer", result: SweepResult | None = None
) -> SweepResult:
    """Offers past their deadline go back to waiting; the agent is put on an unpaid pause."""
    result = result or SweepResult()
    async with store.read() as connection:
        overdue = (
            await connection.execute(
                select(conversations.c.id, conversations.c.version, conversations.c.offered_agent_id)
                .where(conversations.c.state == OFFERED, conversations.c.offer_deadline <= now)
                .order_by(conversations.c.offer_deadline)
            )
        ).all()
    for row in overdue:
        try:
            async with store.write() as connection:
                changed = await connection.execute(
                    update(conversations)
                    .where(
                        conversations.c.id == row.id,
                        conversations.c.state == OFFERED,
                        conversations.c.version == row.version,
                        conversations.c.offer_deadline <= now,
                    )
                    .values(
                        state=WAITING,
                        offered_agent_id=None,
                        offered_at=None,
                        offer_deadline=None,
                        version=conversations.c.version + 1,
                    )
                    .returning(conversations.c.queue_id)
                )
                queue_id = changed.scalar_one_or_none()
                if queue_id is None:
                    continue  # answered, or expired by another sweeper, meanwhile
                events: list[BusEvent] = []
                agent_id = row.offered_agent_id
                if agent_id is not None:
                    agent_id = int(agent_id)
                    await _timeline(connection, row.id, EventKind.TIMED_OUT, now, agent_id)
                    presence = (
                        await connection.execute(select(agents.c.presence).where(agents.c.id == agent_id))
                    ).scalar_one_or_none()
                    if presence == Presence.READY.value:
                        agent = await set_presence(
                            connection, agent_id, Presence.PAUSED, now=now, reason=reason, paid=False
                        )
                        if agent is not None:
                            events.append(AgentPresence(agent_id=agent_id))
                    events.append(_withdrawn(row.id, agent_id, "timeout"))
                    result.expired.append((int(row.id), agent_id))
                events.append(_queue_event(int(row.id), str(queue_id), waiting=True))
            result.events.extend(events)
        except DBAPIError:
            logger.warning("offer expiry of conversation %s failed; retried next sweep", row.id, exc_info=True)
    return result


async def assign_waiting(
    store: Store,
    *,
    now: datetime,
    batch: int = 200,
    result: SweepResult | None = None,
    journal: Journal | None = None,
) -> SweepResult:
    """Offer waiting conversations, oldest waiting first, each to one free ready member.

    Works in batches: one transaction locks up to ``batch`` waiting conversations
    (``SKIP LOCKED``: a concurrent sweeper takes others), locks the ready members
    of their queues and counts their load again, then offers as many as the
    free capacity allows. One commit serves the whole batch."""
    result = result or SweepResult()
    while True:
        try:
            offered, events, more = await _offer_batch(store, now, batch, journal)
        except DBAPIError:
            logger.warning("offering waiting conversations failed; retried next sweep", exc_info=True)
            return result
        result.offered.extend(offered)
        result.events.extend(events)
        if not offered or not more:
            return result


async def _offer_batch(
    store: Store, now: datetime, batch: int, journal: Journal | None
) -> tuple[list[tuple[int, int]], list[BusEvent], bool]:
    """(offers made, events, whether a full batch was looked at)."""
    postgres = store.dialect == "postgresql"
    # look before taking the write lock: with nobody free there is nothing to offer, and on SQLite
    # a write transaction would queue the webhooks' commits behind an empty one. The queues found here
    # only narrow the search; the members are locked and their load counted again inside the transaction.
    async with store.read() as connection:
        ready_queues = list((await connection.execute(_FREE_MEMBER_QUEUES)).scalars())
    if not ready_queues:
        return [], [], False
    async with store.write() as connection:
        query = (
            select(conversations.c.id, conversations.c.queue_id, conversations.c.version, conversations.c.waiting_since)
            .where(conversations.c.state == WAITING, conversations.c.queue_id.in_(ready_queues))
            .order_by(conversations.c.waiting_since, conversations.c.id)
            .limit(batch)
        )
        if postgres:
            query = query.with_for_update(skip_locked=True, of=conversations)
        waiting = (await connection.execute(query)).all()
        if not waiting:
            return [], [], False
        ids = [int(w.id) for w in waiting]
        refused: dict[int, set[int]] = {i: set() for i in ids}
        since = {int(w.id): w.waiting_since for w in waiting}
        rows = await connection.execute(
            select(timeline_events.c.conversation_id, timeline_events.c.agent_id, timeline_events.c.created_at).where(
                timeline_events.c.conversation_id.in_(ids),
                timeline_events.c.kind.in_(_REFUSALS),
                timeline_events.c.agent_id.is_not(None),
            )
        )
        for r in rows:
            start = since[int(r.conversation_id)]
            if start is None or r.created_at >= start:
                refused[int(r.conversation_id)].add(int(r.agent_id))
        queue_ids = sorted({w.queue_id for w in waiting})
        members = (
            await connection.execute(
                select(agent_queues.c.queue_id, agent_queues.c.agent_id)
                .join(agents, agents.c.id == agent_queues.c.agent_id)
                .where(
                    agent_queues.c.queue_id.in_(queue_ids),
                    agents.c.presence == Presence.READY.value,
                    agents.c.active,
                )
            )
        ).all()
        by_queue: dict[str, list[int]] = {}
        for m in members:
            by_queue.setdefault(m.queue_id, []).append(int(m.agent_id))
        agent_ids = sorted({int(m.agent_id) for m in members})
        if not agent_ids:
            return [], [], False
        # lock the candidates (in id order, so sweepers never deadlock) and count their load afresh
        lock = select(agents.c.id, agents.c.idle_since, agents.c.capacity).where(
            agents.c.id.in_(agent_ids), agents.c.presence == Presence.READY.value, agents.c.active
        )
        if postgres:
            lock = lock.order_by(agents.c.id).with_for_update(of=agents)
        state: dict[int, list[Any]] = {
            int(a.id): [a.idle_since, int(a.capacity), 0] for a in await connection.execute(lock)
        }
        owned = await connection.execute(
            select(conversations.c.owner_agent_id, func.count())
            .where(conversations.c.owner_agent_id.in_(agent_ids), conversations.c.state == ACTIVE)
            .group_by(conversations.c.owner_agent_id)
        )
        offered_now = await connection.execute(
            select(conversations.c.offered_agent_id, func.count())
            .where(conversations.c.state == OFFERED, conversations.c.offered_agent_id.in_(agent_ids))
            .group_by(conversations.c.offered_agent_id)
        )
        for agent_id, count in [*owned, *offered_now]:
            if agent_id is not None and int(agent_id) in state:
                state[int(agent_id)][2] += int(count)
        queues = {q: await _queue(connection, q) for q in queue_ids}
        made: list[tuple[int, int]] = []
        offers: list[dict[str, Any]] = []
        events: list[BusEvent] = []
        chooser = BatchChooser(by_queue, {a: (v[0], v[1], v[2]) for a, v in state.items()})
        for w in waiting:
            chosen = chooser.choose(w.queue_id, refused[int(w.id)])
            if chosen is None:
                continue
            deadline = offer_deadline(now, queues[w.queue_id])
            chooser.offered(chosen, now)
            made.append((int(w.id), chosen))
            offers.append({"c_id": int(w.id), "c_version": w.version, "c_agent": chosen, "c_deadline": deadline})
            events.append(Offer(conversation_id=int(w.id), agent_id=chosen, queue_id=w.queue_id, deadline=deadline))
            events.append(_queue_event(int(w.id), w.queue_id, waiting=False))
        if made:
            # one statement for all the offers: the rows are ours (SQLite's write lock; FOR UPDATE on
            # PostgreSQL), so each update matches; if one did not, the whole batch rolls back
            changed = await connection.execute(_OFFER, [{**o, "c_now": now} for o in offers])
            if changed.rowcount not in (-1, len(offers)):
                raise RuntimeError(f"an offer batch matched {changed.rowcount} of {len(offers)} conversations")
            await connection.execute(
                timeline_events.insert(),
                [
                    {
                        "conversation_id": c,
                        "kind": EventKind.OFFERED.value,
                        "agent_id": a,
                        "data": {},
                        "created_at": now,
                    }
                    for c, a in made
                ],
            )
            await connection.execute(_IDLE_SINCE, {"agents": sorted({a for _, a in made}), "now": now})
        events = await journal_events(connection, journal, events)
        return made, events, len(waiting) == batch


# queues with a ready member below capacity; built once, as the sweep runs it every time
_FREE_MEMBER_QUEUES = (
    select(agent_queues.c.queue_id)
    .join(agents, agents.c.id == agent_queues.c.agent_id)
    .where(
        agents.c.presence == Presence.READY.value,
        agents.c.active,
        _load_of(agents.c.id) < agents.c.capacity,
    )
    .distinct()
)
_OFFER = (
    update(conversations)
    .where(
        conversations.c.id == bindparam("c_id"),
        conversations.c.state == WAITING,
        conversations.c.version == bindparam("c_version"),
    )
    .values(
        state=OFFERED,
        offered_agent_id=bindparam("c_agent"),
        offered_at=bindparam("c_now", type_=conversations.c.offered_at.type),
        offer_deadline=bindparam("c_deadline", type_=conversations.c.offer_deadline.type),
        version=conversations.c.version + 1,
    )
)
_IDLE_SINCE = (
    update(agents)
    .where(agents.c.id.in_(bindparam("agents", expanding=True)))
    .values(idle_since=bindparam("now", type_=agents.c.idle_since.type))
)


async def withdraw_offers(store: Store, agent_id: int, *, now: datetime) -> list[BusEvent]:
    """An agent who pauses or goes offline gives back their open offers at once (no penalty)."""
    async with store.write() as connection:
        rows = (
            await connection.execute(
                update(conversations)
                .where(conversations.c.state == OFFERED, conversations.c.offered_agent_id == agent_id)
                .values(
                    state=WAITING,
                    offered_agent_id=None,
                    offered_at=None,
                    offer_deadline=None,
                    version=conversations.c.version + 1,
                )
                .returning(conversations.c.id, conversations.c.queue_id)
            )
        ).all()
        events: list[BusEvent] = []
        for row in rows:
            await _timeline(connection, int(row.id), EventKind.OFFER_WITHDRAWN, now, agent_id, {"reason": "presence"})
            events.append(_withdrawn(int(row.id), agent_id, "presence"))
            events.append(_queue_event(int(row.id), str(row.queue_id), waiting=True))
        return events


# ------------------------------------------------------------------ answers


async def accept_offer(store: Store, conversation_id: int, agent_id: int, *, now: datetime) -> Change:
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        if conversation.state is not ConversationState.OFFERED or conversation.offered_agent_id != agent_id:
            raise RoutingRefused("conflict", "not_offered_to_you", "this conversation is not offered to you (any more)")
        await _guarded_update(
            connection,
            conversation,
            await _version(connection, conversation_id),
            {
                "state": ACTIVE,
                "owner_agent_id": agent_id,
                "offered_agent_id": None,
                "offered_at": None,
                "offer_deadline": None,
            },
            OFFERED,
        )
        await _join(connection, store.dialect, conversation_id, agent_id, OWNER, now)
        await _timeline(connection, conversation_id, EventKind.ACCEPTED, now, agent_id)
        audience = await _audience(connection, conversation_id)
        return Change(
            await _reload(connection, conversation_id),
            [_updated(conversation_id, "accepted", audience, agent_id=agent_id)],
        )


async def reject_offer(store: Store, conversation_id: int, agent_id: int, *, now: datetime) -> Change:
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        if conversation.state is not ConversationState.OFFERED or conversation.offered_agent_id != agent_id:
            raise RoutingRefused("conflict", "not_offered_to_you", "this conversation is not offered to you (any more)")
        await _guarded_update(
            connection,
            conversation,
            await _version(connection, conversation_id),
            {"state": WAITING, "offered_agent_id": None, "offered_at": None, "offer_deadline": None},
            OFFERED,
        )
        await _timeline(connection, conversation_id, EventKind.REJECTED, now, agent_id)
        events = [
            _withdrawn(conversation_id, agent_id, "rejected"),
            _queue_event(conversation_id, conversation.queue_id, True),
        ]
        return Change(await _reload(connection, conversation_id), events)


async def take(store: Store, conversation_id: int, agent_id: int, *, now: datetime, any_queue: bool = False) -> Change:
    """A member takes a waiting (or offered to someone else) conversation of their queue; one winner."""
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        if conversation.state not in (ConversationState.WAITING, ConversationState.OFFERED):
            raise RoutingRefused("conflict", "already_taken", "someone else has this conversation already")
        if not any_queue:
            member = (
                await connection.execute(
                    select(agent_queues.c.agent_id).where(
                        agent_queues.c.agent_id == agent_id, agent_queues.c.queue_id == conversation.queue_id
                    )
                )
            ).first()
            if member is None:
                raise RoutingRefused(
                    "forbidden", "not_a_member", f"you are not a member of queue {conversation.queue_id}"
                )
        if not await _is_active(connection, store.dialect, agent_id):
            raise RoutingRefused("forbidden", "agent_inactive", "your account has been deactivated")
        result = await connection.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id, conversations.c.state.in_((WAITING, OFFERED)))
            .values(
                state=ACTIVE,
                owner_agent_id=agent_id,
                offered_agent_id=None,
                offered_at=None,
                offer_deadline=None,
                version=conversations.c.version + 1,
            )
        )
        if result.rowcount != 1:
            raise RoutingRefused("conflict", "already_taken", "someone else has this conversation already")
        await _join(connection, store.dialect, conversation_id, agent_id, OWNER, now)
        await connection.execute(update(agents).where(agents.c.id == agent_id).values(idle_since=now))
        await _timeline(connection, conversation_id, EventKind.TAKEN, now, agent_id)
        events: list[BusEvent] = []
        if conversation.state is ConversationState.OFFERED and conversation.offered_agent_id not in (None, agent_id):
            assert conversation.offered_agent_id is not None
            events.append(_withdrawn(conversation_id, conversation.offered_agent_id, "taken"))
        events.append(_queue_event(conversation_id, conversation.queue_id, waiting=False))
        events.append(
            _updated(conversation_id, "taken", await _audience(connection, conversation_id), agent_id=agent_id)
        )
        return Change(await _reload(connection, conversation_id), events)


# ---------------------------------------------------------------- hand-offs


def _require_open(conversation: Conversation) -> None:
    if conversation.state is ConversationState.CLOSED:
        raise RoutingRefused("conflict", "conversation_closed", "the conversation is closed")


async def leave(store: Store, conversation_id: int, agent_id: int, *, now: datetime) -> Change:
    """A participant leaves; the owner's part passes to the longest-present other participant.
    The last participant cannot leave: they close or transfer instead."""
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        _require_open(conversation)
        present = await load_participants(connection, conversation_id)
        if agent_id not in present:
            raise RoutingRefused("conflict", "not_a_participant", "you are not in this conversation")
        if len(present) == 1:
            raise RoutingRefused("conflict", "last_participant", "you are the last agent here: close or transfer it")
        audience = await _audience(connection, conversation_id)
        await connection.execute(
            update(participants)
            .where(participants.c.conversation_id == conversation_id, participants.c.agent_id == agent_id)
            .values(left_at=now)
        )
        if conversation.owner_agent_id == agent_id or present[agent_id] == OWNER:
            heir = (
                await connection.execute(
                    select(participants.c.agent_id)
                    .where(participants.c.conversation_id == conversation_id, participants.c.left_at.is_(None))
                    .order_by(participants.c.joined_at, participants.c.agent_id)
                    .limit(1)
                )
            ).scalar_one()
            await connection.execute(
                update(participants)
                .where(participants.c.conversation_id == conversation_id, participants.c.agent_id == heir)
                .values(role=OWNER)
            )
            await _guarded_update(
                connection, conversation, await _version(connection, conversation_id), {"owner_agent_id": heir}, ACTIVE
            )
        await _timeline(connection, conversation_id, EventKind.LEFT, now, agent_id)
        return Change(
            await _reload(connection, conversation_id), [_updated(conversation_id, "left", audience, agent_id=agent_id)]
        )


async def transfer_to_agent(
    store: Store, conversation_id: int, actor_id: int, target_id: int, *, now: datetime
) -> Change:
    """The target becomes the owner at once; the transferring agent's part ends."""
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        _require_open(conversation)
        if not await _is_active(connection, store.dialect, target_id):
            raise RoutingRefused("invalid", "unknown_agent", f"no active agent {target_id}")
        if target_id == actor_id:
            raise RoutingRefused("invalid", "transfer_to_self", "you cannot transfer a conversation to yourself")
        before = await _audience(connection, conversation_id)
        events: list[BusEvent] = []
        if conversation.state is ConversationState.OFFERED and conversation.offered_agent_id is not None:
            events.append(_withdrawn(conversation_id, conversation.offered_agent_id, "transferred"))
        if conversation.state is ConversationState.WAITING:
            events.append(_queue_event(conversation_id, conversation.queue_id, waiting=False))
        leaving = {actor_id} | ({conversation.owner_agent_id} if conversation.owner_agent_id is not None else set())
        leaving.discard(target_id)
        await connection.execute(
            update(participants)
            .where(
                participants.c.conversation_id == conversation_id,
                participants.c.agent_id.in_(sorted(leaving)),
                participants.c.left_at.is_(None),
            )
            .values(left_at=now)
        )
        await _guarded_update(
            connection,
            conversation,
            await _version(connection, conversation_id),
            {
                "state": ACTIVE,
                "owner_agent_id": target_id,
                "offered_agent_id": None,
                "offered_at": None,
                "offer_deadline": None,
            },
            WAITING,
            OFFERED,
            ACTIVE,
        )
        await _join(connection, store.dialect, conversation_id, target_id, OWNER, now)
        await _timeline(connection, conversation_id, EventKind.TRANSFERRED, now, actor_id, {"to_agent": target_id})
        events.append(
            _updated(conversation_id, "transferred", [*before, target_id], agent_id=actor_id, to_agent=target_id)
        )
        return Change(await _reload(connection, conversation_id), events)


async def transfer_to_queue(
    store: Store, conversation_id: int, actor_id: int, queue_id: str, *, now: datetime
) -> Change:
    """Back to waiting in ``queue_id`` (a new waiting period); every agent's part ends."""
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        _require_open(conversation)
        if await load_queue(connection, queue_id) is None:
            raise RoutingRefused("invalid", "unknown_queue", f"no queue {queue_id!r}")
        before = await _audience(connection, conversation_id)
        events: list[BusEvent] = []
        if conversation.state is ConversationState.OFFERED and conversation.offered_agent_id is not None:
            events.append(_withdrawn(conversation_id, conversation.offered_agent_id, "transferred"))
        await _leave_all(connection, conversation_id, now)
        await _guarded_update(
            connection,
            conversation,
            await _version(connection, conversation_id),
            {
                "state": WAITING,
                "queue_id": queue_id,
                "waiting_since": now,
                "owner_agent_id": None,
                "offered_agent_id": None,
                "offered_at": None,
                "offer_deadline": None,
            },
            WAITING,
            OFFERED,
            ACTIVE,
        )
        await _timeline(
            connection,
            conversation_id,
            EventKind.TRANSFERRED,
            now,
            actor_id,
            {"to_queue": queue_id, "from_queue": conversation.queue_id},
        )
        if conversation.queue_id != queue_id and conversation.state is ConversationState.WAITING:
            events.append(_queue_event(conversation_id, conversation.queue_id, waiting=False))
        events.append(_updated(conversation_id, "transferred", before, agent_id=actor_id, to_queue=queue_id))
        events.append(_queue_event(conversation_id, queue_id, waiting=True))
        return Change(await _reload(connection, conversation_id), events)


async def invite(
    store: Store,
    conversation_id: int,
    actor_id: int,
    *,
    now: datetime,
    agent_id: int | None = None,
    queue_id: str | None = None,
) -> Change:
    """Add an agent silently (the customer sees nothing). With a queue: its longest-idle
    ready member with free capacity who is not already here."""
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        _require_open(conversation)
        if conversation.state is not ConversationState.ACTIVE:
            raise RoutingRefused("conflict", "not_active", "only an accepted conversation can have guests")
        present = await load_participants(connection, conversation_id)
        if queue_id is not None:
            if await load_queue(connection, queue_id) is None:
                raise RoutingRefused("invalid", "unknown_queue", f"no queue {queue_id!r}")
            candidates = [
                c for c in await _candidates(connection, queue_id, conversation_id, None) if c.agent_id not in present
            ]
            choice = choose_agent(candidates)
            if choice is None:
                raise RoutingRefused("conflict", "nobody_available", f"no ready member of {queue_id!r} is free")
            agent_id = choice.agent_id
        assert agent_id is not None
        if not await _is_active(connection, store.dialect, agent_id):
            raise RoutingRefused("invalid", "unknown_agent", f"no active agent {agent_id}")
        if agent_id in present:
            raise RoutingRefused("conflict", "already_participant", "that agent is already in the conversation")
        await _join(connection, store.dialect, conversation_id, agent_id, INVITED, now)
        await _timeline(connection, conversation_id, EventKind.INVITED, now, actor_id, {"agent_id": agent_id})
        audience = await _audience(connection, conversation_id)
        return Change(
            await _reload(connection, conversation_id),
            [_updated(conversation_id, "invited", audience, agent_id=actor_id, invited=agent_id)],
        )


async def close_conversation(
    store: Store, conversation_id: int, actor_id: int, status: str | None, *, now: datetime
) -> Change:
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        _require_open(conversation)
        queue = await _queue(connection, conversation.queue_id)
        catalogue = list((await connection.execute(select(statuses.c.id))).scalars())
        refusal = close_refusal(status, queue, catalogue)
        if refusal is not None:
            raise RoutingRefused("invalid", *refusal)
        before = await _audience(connection, conversation_id)
        events: list[BusEvent] = []
        if conversation.state is ConversationState.OFFERED and conversation.offered_agent_id is not None:
            events.append(_withdrawn(conversation_id, conversation.offered_agent_id, "closed"))
        if conversation.state is ConversationState.WAITING:
            events.append(_queue_event(conversation_id, conversation.queue_id, waiting=False))
        await _guarded_update(
            connection,
            conversation,
            await _version(connection, conversation_id),
            {
                "state": CLOSED,
                "status_id": status,
                "closed_at": now,
                "offered_agent_id": None,
                "offered_at": None,
                "offer_deadline": None,
            },
            WAITING,
            OFFERED,
            ACTIVE,
        )
        await _leave_all(connection, conversation_id, now)
        await _timeline(connection, conversation_id, EventKind.CLOSED, now, actor_id, {"status": status})
        events.append(_updated(conversation_id, "closed", before, agent_id=actor_id, status=status))
        return Change(await _reload(connection, conversation_id), events)


async def set_important(
    store: Store, conversation_id: int, actor_id: int, important: bool | None, *, now: datetime
) -> Change:
    """Mark or unmark important; ``None`` toggles."""
    async with store.write() as connection:
        conversation = await _current(connection, conversation_id, store.dialect)
        value = (not conversation.important) if important is None else important
        await connection.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(important=value, version=conversations.c.version + 1)
        )
        await _timeline(connection, conversation_id, EventKind.IMPORTANT, now, actor_id, {"important": value})
        audience = await _audience(connection, conversation_id)
        return Change(
            await _reload(connection, conversation_id),
            [_updated(conversation_id, "important", audience, agent_id=actor_id, important=value)],
        )


# ------------------------------------------------------------- deactivation


async def release_agent(
    connection: AsyncConnection, dialect: str, agent_id: int, *, now: datetime, actor_id: int | None = None
) -> Released:
    """Give back everything an agent holds, inside the caller's transaction (deactivation).

    Open offers go back to waiting (time in queue keeps running, as when an agent
    pauses); a conversation they own passes to the longest-present other active
    participant, or, when they were alone, back to its queue's waiting list as a new
    waiting period (as a transfer to the queue); conversations they were invited to
    they leave. Each writes the timeline event and returns the bus events of the
    matching hand-off, with ``reason: "deactivated"`` (and ``by``: the admin).

    The caller has already made the agent inactive in this transaction, so no sweep
    offers them anything meanwhile; an agent holding nothing is not an error, which
    makes a repeated deactivation change nothing."""
    released = Released()
    held = await _held_by(connection, dialect, agent_id)
    why: dict[str, Any] = {"reason": "deactivated"} | ({"by": actor_id} if actor_id is not None else {})
    for conversation_id in held:
        conversation = await _reload(connection, conversation_id)
        if conversation.state is ConversationState.OFFERED and conversation.offered_agent_id == agent_id:
            await _withdraw_for_deactivation(connection, conversation, agent_id, now, why, released)
            continue
        present = await load_participants(connection, conversation_id)
        owns = conversation.owner_agent_id == agent_id or present.get(agent_id) == OWNER
        if owns and conversation.state is ConversationState.ACTIVE:
            heir = await _heir(connection, conversation_id, agent_id)
            if heir is None:
                await _requeue_for_deactivation(connection, conversation, agent_id, now, why, released)
            else:
                await _hand_over_for_deactivation(connection, conversation, agent_id, heir, now, why, released)
        elif agent_id in present:
            audience = await _audience(connection, conversation_id)
            await _mark_left(connection, conversation_id, agent_id, now)
            await _timeline(connection, conversation_id, EventKind.LEFT, now, agent_id, why)
            released.left.append(conversation_id)
            released.events.append(_updated(conversation_id, "left", audience, agent_id=agent_id, **why))
    return released


async def _held_by(connection: AsyncConnection, dialect: str, agent_id: int) -> list[int]:
    """Open conversations offered to, owned by or shared with the agent, locked in id order.

    Three indexed lookups rather than one OR over the whole table (as the agents'
    conversation list does); on PostgreSQL the rows are then locked ``FOR UPDATE``."""
    c = conversations.c
    found = union_all(
        select(c.id).where(c.state == OFFERED, c.offered_agent_id == agent_id),
        select(c.id).where(c.owner_agent_id == agent_id, c.state == ACTIVE),
        select(participants.c.conversation_id).where(
            participants.c.agent_id == agent_id, participants.c.left_at.is_(None)
        ),
    )
    ids = sorted({int(i) for i in (await connection.execute(found)).scalars()})
    if not ids:
        return []
    lock = select(c.id).where(c.id.in_(ids), c.state != CLOSED).order_by(c.id)
    if dialect == "postgresql":
        lock = lock.with_for_update()
    return [int(i) for i in (await connection.execute(lock)).scalars()]


async def _mark_left(connection: AsyncConnection, conversation_id: int, agent_id: int, now: datetime) -> None:
    await connection.execute(
        update(participants)
        .where(
            participants.c.conversation_id == conversation_id,
            participants.c.agent_id == agent_id,
            participants.c.left_at.is_(None),
        )
        .values(left_at=now)
    )


async def _heir(connection: AsyncConnection, conversation_id: int, leaving: int) -> int | None:
    """The longest-present other participant who is still active (as ``leave`` picks)."""
    found = (
        await connection.execute(
            select(participants.c.agent_id)
            .join(agents, agents.c.id == participants.c.agent_id)
            .where(
                participants.c.conversation_id == conversation_id,
                participants.c.left_at.is_(None),
                participants.c.agent_id != leaving,
                agents.c.active,
            )
            .order_by(participants.c.joined_at, participants.c.agent_id)
            .limit(1)
        )
    ).scalar_one_or_none()
    return None if found is None else int(found)


async def _withdraw_for_deactivation(
    connection: AsyncConnection,
    conversation: Conversation,
    agent_id: int,
    now: datetime,
    why: dict[str, Any],
    released: Released,
) -> None:
    await _guarded_update(
        connection,
        conversation,
        await _version(connection, conversation.id),
        {"state": WAITING, "offered_agent_id": None, "offered_at": None, "offer_deadline": None},
        OFFERED,
    )
    await _timeline(connection, conversation.id, EventKind.OFFER_WITHDRAWN, now, agent_id, why)
    released.offers_withdrawn.append(conversation.id)
    released.events.append(_withdrawn(conversation.id, agent_id, "deactivated"))
    released.events.append(_queue_event(conversation.id, conversation.queue_id, waiting=True))


async def _hand_over_for_deactivation(
    connection: AsyncConnection,
    conversation: Conversation,
    agent_id: int,
    heir: int,
    now: datetime,
    why: dict[str, Any],
    released: Released,
) -> None:
    """As ``leave`` by the owner: the heir becomes the owner, nobody else notices."""
    audience = await _audience(connection, conversation.id)
    await _mark_left(connection, conversation.id, agent_id, now)
    await connection.execute(
        update(participants)
        .where(participants.c.conversation_id == conversation.id, participants.c.agent_id == heir)
        .values(role=OWNER)
    )
    await _guarded_update(
        connection, conversation, await _version(connection, conversation.id), {"owner_agent_id": heir}, ACTIVE
    )
    await _timeline(connection, conversation.id, EventKind.LEFT, now, agent_id, {**why, "owner": heir})
    released.handed_over.append((conversation.id, heir))
    released.events.append(_updated(conversation.id, "left", audience, agent_id=agent_id, owner=heir, **why))


async def _requeue_for_deactivation(
    connection: AsyncConnection,
    conversation: Conversation,
    agent_id: int,
    now: datetime,
    why: dict[str, Any],
    released: Released,
) -> None:
    """As a transfer to the conversation's own queue: every part ends, a new waiting period starts."""
    queue_id = conversation.queue_id
    audience = await _audience(connection, conversation.id)
    await _leave_all(connection, conversation.id, now)
    await _guarded_update(
        connection,
        conversation,
        await _version(connection, conversation.id),
        {
            "state": WAITING,
            "waiting_since": now,
            "owner_agent_id": None,
            "offered_agent_id": None,
            "offered_at": None,
            "offer_deadline": None,
        },
        ACTIVE,
    )
    await _timeline(
        connection,
        conversation.id,
        EventKind.TRANSFERRED,
        now,
        agent_id,
        {"to_queue": queue_id, "from_queue": queue_id, **why},
    )
    released.requeued.append(conversation.id)
    released.events.append(
        _updated(conversation.id, "transferred", audience, agent_id=agent_id, to_queue=queue_id, **why)
    )
    released.events.append(_queue_event(conversation.id, queue_id, waiting=True))
