"""Routing in SQL: offers, answers, hand-offs, each one short atomic transaction.

What an action may do and what it changes is decided by the pure ``hub.lifecycle``;
this module gathers the facts it needs inside the transaction (the conversation row,
locked ``FOR UPDATE`` on PostgreSQL, with its version, and its participants), asks
``lifecycle.transition`` and applies the ``Change`` with ``_apply``: one conditional
UPDATE (``WHERE state = ... AND version = ...``), then the participants and the
timeline. So two tasks or two hub processes never offer one conversation twice; in
the sweep the waiting conversation is locked ``FOR UPDATE SKIP LOCKED`` and the
chosen agent's row ``FOR UPDATE`` before their load is counted again, so an agent
never exceeds their capacity (SQLite serialises writers with BEGIN IMMEDIATE).
Deadlines are columns, so a restart loses and doubles nothing. Each function
returns the bus events to publish once it has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, union_all, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import lifecycle
from hub.bus import BusEvent
from hub.events import (
    AgentPresence,
    ConversationLeftQueue,
    ConversationUpdated,
    ConversationWaiting,
    Offer,
    OfferWithdrawn,
)
from hub.model import Conversation, ConversationState, EventKind, Presence, Queue, Role
from hub.routing import BatchChooser, Candidate, choose_agent, offer_deadline, transfer_excluded
from hub.store._db import Store, upsert
from hub.store.agents import set_presence
from hub.store.catalogue import load_queue
from hub.store.conversations import conversation_from_row
from hub.store.events import Journal, journal_events
from hub.store.tables import agent_queues, agents, conversations, participants, statuses, timeline_events
from hub.store.webhooks_out import record_outgoing

__all__ = [
    "Change",
    "Released",
    "RoutingRefused",
    "SweepResult",
    "accept_offer",
    "assign_waiting",
    "close_conversation",
    "close_within",
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
OWNER = lifecycle.OWNER
# an agent who did one of these is not offered the conversation again in the same waiting period
_REFUSALS = (EventKind.REJECTED.value, EventKind.TIMED_OUT.value, EventKind.TRANSFERRED.value)


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
    data: Mapping[str, Any] | None = None,
) -> None:
    await connection.execute(
        timeline_events.insert().values(
            conversation_id=conversation_id, kind=kind.value, agent_id=agent_id, data=dict(data or {}), created_at=now
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


async def _is_active(connection: AsyncConnection, dialect: str, agent_id: int) -> bool:
    """Whether the agent exists and is active. On PostgreSQL the row is share-locked, so a
    deactivation committing meanwhile (it updates that row) is waited for and seen."""
    query = select(agents.c.active).where(agents.c.id == agent_id)
    if dialect == "postgresql":
        query = query.with_for_update(read=True)
    return bool((await connection.execute(query)).scalar_one_or_none())


# ------------------------------------------------------- facts and changes


@dataclass(frozen=True, slots=True)
class _Facts:
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


async def _facts(
    connection: AsyncConnection, dialect: str, conversation_id: int, *, people: bool = True, lock: bool = True
) -> _Facts:
    """The conversation (locked ``FOR UPDATE`` on PostgreSQL, so a concurrent change waits for this one
    and then reads its outcome) with its row version, and, with ``people``, everyone who is or was in it."""
    query = select(conversations).where(conversations.c.id == conversation_id)
    if lock and dialect == "postgresql":
        query = query.with_for_update()
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
    return _Facts(conversation_from_row(row), int(row.version), found)


def _decide(facts: _Facts, action: lifecycle.Action, now: datetime) -> lifecycle.Change:
    decision = lifecycle.transition(facts.conversation, facts.participants, action, now)
    if isinstance(decision, lifecycle.Refusal):
        raise RoutingRefused.of(decision)
    return decision


def _column(value: Any) -> Any:
    return value.value if isinstance(value, ConversationState) else value


async def _apply(
    connection: AsyncConnection, dialect: str, facts: _Facts, change: lifecycle.Change, now: datetime
) -> Conversation:
    """Make ``change`` true: one update of the conversation guarded by the state and version read with the
    facts (none other matches: raise ``change.lost``), then the participants, the timeline and the idle time.
    Returns the conversation as it is now."""
    conversation_id = facts.conversation.id
    c = conversations.c
    result = await connection.execute(
        update(conversations)
        .where(c.id == conversation_id, c.state == facts.conversation.state.value, c.version == facts.version)
        .values(version=c.version + 1, **{name: _column(value) for name, value in change.sets.items()})
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
        await _join(connection, dialect, conversation_id, agent_id, role, now)
    entry = change.entry
    if entry is not None:
        await _timeline(connection, conversation_id, entry.kind, now, entry.agent_id, entry.data)
    if change.restarts_idle is not None:
        await connection.execute(update(agents).where(agents.c.id == change.restarts_idle).values(idle_since=now))
    return change.after


async def _reported(
    connection: AsyncConnection, conversation: Conversation, events: list[BusEvent], now: datetime
) -> Change:
    """The change, with its outgoing webhook deliveries written in its transaction."""
    await record_outgoing(connection, events, now=now)
    return Change(conversation, events)


# -------------------------------------------------------------------- sweep


async def sweep(
    store: Store,
    *,
    clock: Callable[[], datetime],
    missed_offer_reason: str = "missed offer",
    batch: int = 500,
    journal: Journal | None = None,
    closed: Collection[str] = frozenset(),
) -> SweepResult:
    """One routing pass: expire overdue offers, then offer waiting conversations.

    Safe to run from several tasks or processes at once. ``journal`` records the offers' events in the
    transaction that makes them (see ``hub.store.events.Journal``). ``closed``: queues outside their business
    hours now (``hub.hours.closed_queues``); their conversations keep waiting and are not offered.

    ``clock`` is read as each step begins, and for an offer batch once its write transaction holds the lock:
    the offers are then dated after any presence change they read, never before it."""
    result = SweepResult()
    await expire_offers(store, now=clock(), reason=missed_offer_reason, result=result)
    await assign_waiting(store, clock=clock, batch=batch, result=result, journal=journal, closed=closed)
    return result


async def expire_offers(
    store: Store, *, now: datetime, reason: str = "missed offer", result: SweepResult | None = None
) -> SweepResult:
    """Offers past their deadline go back to waiting; the agent is put on an unpaid pause."""
    result = result or SweepResult()
    async with store.read() as connection:
        overdue = (
            await connection.execute(
                select(conversations)
                .where(conversations.c.state == OFFERED, conversations.c.offer_deadline <= now)
                .order_by(conversations.c.offer_deadline)
            )
        ).all()
    for row in overdue:
        facts = _Facts(conversation_from_row(row), int(row.version))
        decision = lifecycle.transition(facts.conversation, (), lifecycle.ExpireOffer(), now)
        if isinstance(decision, lifecycle.Refusal):
            continue
        try:
            async with store.write() as connection:
                await _apply(connection, store.dialect, facts, decision, now)
                events: list[BusEvent] = []
                agent_id = facts.conversation.offered_agent_id
                if agent_id is not None:
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
                events.append(_queue_event(int(row.id), facts.conversation.queue_id, waiting=True))
            result.events.extend(events)
        except RoutingRefused:
            continue  # answered, or expired by another sweeper, meanwhile
        except DBAPIError:
            logger.warning("offer expiry of conversation %s failed; retried next sweep", row.id, exc_info=True)
    return result


async def assign_waiting(
    store: Store,
    *,
    clock: Callable[[], datetime],
    batch: int = 200,
    result: SweepResult | None = None,
    journal: Journal | None = None,
    closed: Collection[str] = frozenset(),
) -> SweepResult:
    """Offer waiting conversations, oldest waiting first, each to one free ready member; none of a queue in
    ``closed`` (outside its business hours: they wait for the opening).

    Works in batches: one transaction locks up to ``batch`` waiting conversations
    (``SKIP LOCKED``: a concurrent sweeper takes others), locks the ready members
    of their queues and counts their load again, then offers as many as the
    free capacity allows. One commit serves the whole batch."""
    result = result or SweepResult()
    while True:
        try:
            offered, events, more = await _offer_batch(store, clock, batch, journal, closed)
        except DBAPIError:
            logger.warning("offering waiting conversations failed; retried next sweep", exc_info=True)
            return result
        result.offered.extend(offered)
        result.events.extend(events)
        if not offered or not more:
            return result


async def _offer_batch(
    store: Store,
    clock: Callable[[], datetime],
    batch: int,
    journal: Journal | None,
    closed: Collection[str] = frozenset(),
) -> tuple[list[tuple[int, int]], list[BusEvent], bool]:
    """(offers made, events, whether a full batch was looked at)."""
    postgres = store.dialect == "postgresql"
    # look before taking the write lock: with nobody free there is nothing to offer, and on SQLite
    # a write transaction would queue the webhooks' commits behind an empty one. The queues found here
    # only narrow the search; the members are locked and their load counted again inside the transaction.
    async with store.read() as connection:
        ready_queues = [q for q in (await connection.execute(_FREE_MEMBER_QUEUES)).scalars() if q not in closed]
    if not ready_queues:
        return [], [], False
    async with store.write() as connection:
        now = clock()
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
            select(
                timeline_events.c.conversation_id,
                timeline_events.c.agent_id,
                timeline_events.c.created_at,
                timeline_events.c.kind,
            ).where(
                timeline_events.c.conversation_id.in_(ids),
                timeline_events.c.kind.in_(_REFUSALS),
                timeline_events.c.agent_id.is_not(None),
            )
        )
        transferred: dict[int, set[int]] = {}
        for r in rows:
            start = since[int(r.conversation_id)]
            if start is None or r.created_at >= start:
                refused[int(r.conversation_id)].add(int(r.agent_id))
                if r.kind == EventKind.TRANSFERRED.value:
                    transferred.setdefault(int(r.conversation_id), set()).add(int(r.agent_id))
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
        excluded = await _transfer_exclusions(connection, transferred, {int(w.id): w.queue_id for w in waiting}, queues)
        made: list[tuple[int, int]] = []
        offers: list[dict[str, Any]] = []
        events: list[BusEvent] = []
        chooser = BatchChooser(by_queue, {a: (v[0], v[1], v[2]) for a, v in state.items()})
        for w in waiting:
            chosen = chooser.choose(w.queue_id, refused[int(w.id)], excluded.get(int(w.id), frozenset()))
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


async def _transfer_exclusions(
    connection: AsyncConnection,
    transferred: Mapping[int, set[int]],
    queue_of: Mapping[int, str],
    queues: Mapping[str, Queue],
) -> dict[int, frozenset[int]]:
    """conversation -> agents who transferred it into its queue in this waiting period and may not have it
    back (``hub.routing.transfer_excluded``); the queues' members are read only when there are any."""
    if not transferred:
        return {}
    wanted = sorted({queue_of[c] for c in transferred})
    members: dict[str, set[int]] = {q: set() for q in wanted}
    for row in await connection.execute(
        select(agent_queues.c.queue_id, agent_queues.c.agent_id).where(agent_queues.c.queue_id.in_(wanted))
    ):
        members[row.queue_id].add(int(row.agent_id))
    return {
        c: transfer_excluded(agents_, queues[queue_of[c]], members[queue_of[c]]) for c, agents_ in transferred.items()
    }


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
# ``lifecycle.Offer`` for a whole batch in one statement (the sweep has chosen and locked the rows)
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
    """An agent who pauses or goes offline gives back their open offers at once (no penalty).

    ``lifecycle.WithdrawOffer`` for each, made set-based: one update for all of them."""
    async with store.write() as connection:
        rows = (
            await connection.execute(
                update(conversations)
                .where(conversations.c.state == OFFERED, conversations.c.offered_agent_id == agent_id)
                .values(
                    version=conversations.c.version + 1,
                    **{name: _column(value) for name, value in lifecycle.BACK_TO_WAITING.items()},
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
        facts = await _facts(connection, store.dialect, conversation_id)
        change = _decide(facts, lifecycle.Accept(agent_id=agent_id), now)
        conversation = await _apply(connection, store.dialect, facts, change, now)
        accepted = [_updated(conversation_id, "accepted", facts.audience(agent_id), agent_id=agent_id)]
        return await _reported(connection, conversation, accepted, now)


async def reject_offer(store: Store, conversation_id: int, agent_id: int, *, now: datetime) -> Change:
    async with store.write() as connection:
        facts = await _facts(connection, store.dialect, conversation_id, people=False)
        change = _decide(facts, lifecycle.Reject(agent_id=agent_id), now)
        conversation = await _apply(connection, store.dialect, facts, change, now)
        events = [
            _withdrawn(conversation_id, agent_id, "rejected"),
            _queue_event(conversation_id, conversation.queue_id, True),
        ]
        return Change(conversation, events)


async def take(store: Store, conversation_id: int, agent_id: int, *, now: datetime, any_queue: bool = False) -> Change:
    """A member takes a waiting (or offered to someone else) conversation of their queue; one winner.

    ``any_queue``: the taker may take from every queue (the API passes it for supervisors and admins)."""
    async with store.write() as connection:
        facts = await _facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        queues: frozenset[str] = frozenset()
        if not any_queue and before.state in lifecycle.TAKEABLE:
            member = (
                await connection.execute(
                    select(agent_queues.c.agent_id).where(
                        agent_queues.c.agent_id == agent_id, agent_queues.c.queue_id == before.queue_id
                    )
                )
            ).first()
            queues = frozenset({before.queue_id}) if member is not None else frozenset()
        actor = lifecycle.Actor(
            agent_id=agent_id,
            role=Role.SUPERVISOR if any_queue else Role.AGENT,
            queues=queues,
            active=before.state not in lifecycle.TAKEABLE or await _is_active(connection, store.dialect, agent_id),
        )
        change = _decide(facts, lifecycle.Take(actor=actor), now)
        conversation = await _apply(connection, store.dialect, facts, change, now)
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id not in (None, agent_id):
            assert before.offered_agent_id is not None
            events.append(_withdrawn(conversation_id, before.offered_agent_id, "taken"))
        if before.state is not ConversationState.BOT:  # a bot's conversation was on no waiting list
            events.append(_queue_event(conversation_id, before.queue_id, waiting=False))
        events.append(_updated(conversation_id, "taken", facts.audience(agent_id), agent_id=agent_id))
        return await _reported(connection, conversation, events, now)


# ---------------------------------------------------------------- hand-offs


async def leave(store: Store, conversation_id: int, agent_id: int, *, now: datetime) -> Change:
    """A participant leaves; the owner's part passes to the longest-present other participant.
    The last participant cannot leave: they close or transfer instead."""
    async with store.write() as connection:
        facts = await _facts(connection, store.dialect, conversation_id)
        change = _decide(facts, lifecycle.Leave(agent_id=agent_id), now)
        conversation = await _apply(connection, store.dialect, facts, change, now)
        return Change(conversation, [_updated(conversation_id, "left", facts.audience(), agent_id=agent_id)])


async def transfer_to_agent(
    store: Store, conversation_id: int, actor_id: int, target_id: int, *, now: datetime
) -> Change:
    """The target becomes the owner at once; the transferring agent's part ends."""
    async with store.write() as connection:
        facts = await _facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        active = before.state is not ConversationState.CLOSED and await _is_active(connection, store.dialect, target_id)
        change = _decide(facts, lifecycle.TransferToAgent(by=actor_id, to=target_id, to_active=active), now)
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id is not None:
            events.append(_withdrawn(conversation_id, before.offered_agent_id, "transferred"))
        if before.state is ConversationState.WAITING:
            events.append(_queue_event(conversation_id, before.queue_id, waiting=False))
        conversation = await _apply(connection, store.dialect, facts, change, now)
        events.append(
            _updated(conversation_id, "transferred", facts.audience(target_id), agent_id=actor_id, to_agent=target_id)
        )
        return await _reported(connection, conversation, events, now)


async def transfer_to_queue(
    store: Store, conversation_id: int, actor_id: int, queue_id: str, *, now: datetime
) -> Change:
    """Back to waiting in ``queue_id`` (a new waiting period); every agent's part ends."""
    async with store.write() as connection:
        facts = await _facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        known = before.state is not ConversationState.CLOSED and await load_queue(connection, queue_id) is not None
        change = _decide(facts, lifecycle.TransferToQueue(by=actor_id, queue_id=queue_id, queue_known=known), now)
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id is not None:
            events.append(_withdrawn(conversation_id, before.offered_agent_id, "transferred"))
        conversation = await _apply(connection, store.dialect, facts, change, now)
        if before.queue_id != queue_id and before.state is ConversationState.WAITING:
            events.append(_queue_event(conversation_id, before.queue_id, waiting=False))
        events.append(_updated(conversation_id, "transferred", facts.audience(), agent_id=actor_id, to_queue=queue_id))
        events.append(_queue_event(conversation_id, queue_id, waiting=True))
        return await _reported(connection, conversation, events, now)


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
        facts = await _facts(connection, store.dialect, conversation_id)
        action = await _invitation(connection, store.dialect, facts, actor_id, agent_id, queue_id)
        change = _decide(facts, action, now)
        conversation = await _apply(connection, store.dialect, facts, change, now)
        guest = action.guest
        assert guest is not None
        return Change(
            conversation,
            [_updated(conversation_id, "invited", facts.audience(guest), agent_id=actor_id, invited=guest)],
        )


async def _invitation(
    connection: AsyncConnection, dialect: str, facts: _Facts, by: int, agent_id: int | None, queue_id: str | None
) -> lifecycle.Invite:
    """The invitation with the facts it needs: whether the queue exists and whom it offers, whether the
    guest is active. Looked up only where the conversation can have guests at all."""
    invite = lifecycle.Invite(by=by, guest=agent_id, guest_active=False, queue_id=queue_id)
    if facts.conversation.state is not ConversationState.ACTIVE:
        return invite
    if queue_id is not None:
        if await load_queue(connection, queue_id) is None:
            return lifecycle.Invite(by=by, guest=None, guest_active=False, queue_id=queue_id, queue_known=False)
        here = lifecycle.present(facts.participants)
        candidates = [
            c for c in await _candidates(connection, queue_id, facts.conversation.id, None) if c.agent_id not in here
        ]
        choice = choose_agent(candidates)
        if choice is None:
            return lifecycle.Invite(by=by, guest=None, guest_active=False, queue_id=queue_id)
        agent_id = choice.agent_id
    active = agent_id is not None and await _is_active(connection, dialect, agent_id)
    return lifecycle.Invite(by=by, guest=agent_id, guest_active=active, queue_id=queue_id)


async def close_conversation(
    store: Store, conversation_id: int, actor_id: int, status: str | None, *, now: datetime
) -> Change:
    """Close with a status the conversation's queue allows. One of several participants closes only their
    part (``lifecycle.Close``): the conversation stays active with the others; the last one closes it."""
    async with store.write() as connection:
        facts = await _facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        queue: Queue | None = None
        catalogue: tuple[str, ...] = ()
        if before.state is not ConversationState.CLOSED:
            queue = await _queue(connection, before.queue_id)
            catalogue = tuple((await connection.execute(select(statuses.c.id))).scalars())
        action = lifecycle.Close(by=actor_id, status=status, queue=queue, catalogue=catalogue)
        change = _decide(facts, action, now)
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id is not None:
            events.append(_withdrawn(conversation_id, before.offered_agent_id, "closed"))
        if before.state is ConversationState.WAITING:
            events.append(_queue_event(conversation_id, before.queue_id, waiting=False))
        conversation = await _apply(connection, store.dialect, facts, change, now)
        if change.outcome is lifecycle.Outcome.CLOSED_PART:
            # the others go on: the console of the one who closed drops it, the others' update
            details: dict[str, Any] = {"status": status, "closed": True}
            if change.promotes is not None:
                details["owner"] = change.promotes
            events.append(_updated(conversation_id, "left", facts.audience(), agent_id=actor_id, **details))
        else:
            events.append(_updated(conversation_id, "closed", facts.audience(), agent_id=actor_id, status=status))
        return await _reported(connection, conversation, events, now)


async def close_within(
    connection: AsyncConnection, conversation_id: int, actor_id: int, status: str, *, now: datetime
) -> Conversation:
    """Close inside the caller's transaction, the status already checked ("send and close" checks it
    before the message is queued): the same rule and guarded update as ``close_conversation``."""
    dialect = connection.dialect.name
    facts = await _facts(connection, dialect, conversation_id, people=False)
    change = _decide(facts, lifecycle.Close(by=actor_id, status=status), now)
    return await _apply(connection, dialect, facts, change, now)


async def set_important(
    store: Store, conversation_id: int, actor_id: int, important: bool | None, *, now: datetime
) -> Change:
    """Mark or unmark important; ``None`` toggles."""
    async with store.write() as connection:
        facts = await _facts(connection, store.dialect, conversation_id)
        change = _decide(facts, lifecycle.MarkImportant(by=actor_id, important=important), now)
        conversation = await _apply(connection, store.dialect, facts, change, now)
        value = conversation.important
        return Change(
            conversation,
            [_updated(conversation_id, "important", facts.audience(), agent_id=actor_id, important=value)],
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
    they leave (``lifecycle.Release``). Each writes the timeline event and returns the
    bus events of the matching hand-off, with ``reason: "deactivated"`` (and ``by``: the admin).

    The caller has already made the agent inactive in this transaction, so no sweep
    offers them anything meanwhile; an agent holding nothing is not an error, which
    makes a repeated deactivation change nothing."""
    released = Released()
    why: dict[str, Any] = {"reason": "deactivated"} | ({"by": actor_id} if actor_id is not None else {})
    for conversation_id in await _held_by(connection, dialect, agent_id):
        facts = await _facts(connection, dialect, conversation_id, lock=False)  # locked by _held_by
        decision = lifecycle.transition(
            facts.conversation, facts.participants, lifecycle.Release(agent_id=agent_id, by=actor_id), now
        )
        if isinstance(decision, lifecycle.Refusal):
            continue
        conversation = await _apply(connection, dialect, facts, decision, now)
        audience = facts.audience()
        match decision.outcome:
            case lifecycle.Outcome.WITHDRAWN:
                released.offers_withdrawn.append(conversation_id)
                released.events.append(_withdrawn(conversation_id, agent_id, "deactivated"))
                released.events.append(_queue_event(conversation_id, conversation.queue_id, waiting=True))
            case lifecycle.Outcome.REQUEUED:
                queue_id = conversation.queue_id
                released.requeued.append(conversation_id)
                released.events.append(
                    _updated(conversation_id, "transferred", audience, agent_id=agent_id, to_queue=queue_id, **why)
                )
                released.events.append(_queue_event(conversation_id, queue_id, waiting=True))
            case lifecycle.Outcome.HANDED_OVER:
                heir = decision.promotes
                assert heir is not None
                released.handed_over.append((conversation_id, heir))
                released.events.append(
                    _updated(conversation_id, "left", audience, agent_id=agent_id, owner=heir, **why)
                )
            case _:
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
