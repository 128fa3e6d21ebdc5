"""The routing sweep: offers waiting conversations to free agents, expires offers nobody answered.

Each step is a short transaction. In the sweep the waiting conversation is locked ``FOR UPDATE SKIP LOCKED``
and the chosen agent's row ``FOR UPDATE`` before their load is counted again, so an agent never exceeds their
capacity and two processes never offer one conversation twice (SQLite serialises writers with BEGIN
IMMEDIATE). Deadlines are columns, so a restart loses and doubles nothing. Each function returns the bus events
to publish once it has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import lifecycle
from hub.bus import BusEvent
from hub.events import (
    AgentPresence,
    Offer,
)
from hub.model import EventKind, Presence, Queue
from hub.routing import BatchChooser, offer_deadline, transfer_excluded
from hub.store._changes import (
    ACTIVE,
    OFFERED,
    REFUSALS,
    WAITING,
    Facts,
    RoutingRefused,
    add_timeline,
    apply_change,
    column_value,
    load_of,
    locked_for_change,
    queue_config,
    queue_event,
    withdrawn_event,
)
from hub.store._db import Store
from hub.store.agents import set_presence
from hub.store.audit import append_entry
from hub.store.conversations import conversation_from_row
from hub.store.events import Journal, journal_events
from hub.store.tables import agent_queues, agents, conversations, timeline_events

__all__ = ["SweepResult", "assign_waiting", "expire_offers", "sweep", "withdraw_offers"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class SweepResult:
    offered: list[tuple[int, int]] = field(default_factory=list)  # (conversation, agent)
    expired: list[tuple[int, int]] = field(default_factory=list)
    events: list[BusEvent] = field(default_factory=list)


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
        facts = Facts(conversation_from_row(row), int(row.version))
        decision = lifecycle.transition(facts.conversation, (), lifecycle.ExpireOffer(), now)
        if isinstance(decision, lifecycle.Refusal):
            continue
        try:
            async with store.write() as connection:
                await apply_change(connection, store.dialect, facts, decision, now)
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
                            await append_entry(
                                store, _paused_by_system(agent.login, int(row.id), reason, now), connection=connection
                            )
                    events.append(withdrawn_event(row.id, agent_id, "timeout"))
                    result.expired.append((int(row.id), agent_id))
                events.append(queue_event(int(row.id), facts.conversation.queue_id, waiting=True))
            result.events.extend(events)
        except RoutingRefused:
            continue  # answered, or expired by another sweeper, meanwhile
        except DBAPIError:
            logger.warning("offer expiry of conversation %s failed; retried next sweep", row.id, exc_info=True)
    return result


def _paused_by_system(login: str, conversation_id: int, reason: str, now: datetime) -> dict[str, Any]:
    """The audit log's entry (hub/audit.py) for the unpaid pause an offer that ran out puts its agent on, written
    with the change: the system acted (no actor), for the conversation whose offer it was."""
    return {
        "at": now,
        "actor": None,
        "actor_kind": "system",
        "action": "presence.changed",
        "address": None,
        "target": f"agent:{login}"[:200],
        "conversation_id": conversation_id,
        "before": {"state": Presence.READY.value},
        "after": {"state": Presence.PAUSED.value, "reason": reason, "paid": False},
    }


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
            query = locked_for_change(query, skip_locked=True)
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
                timeline_events.c.kind.in_(REFUSALS),
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
        queues = {q: await queue_config(connection, q) for q in queue_ids}
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
            events.append(queue_event(int(w.id), w.queue_id, waiting=False))
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
        load_of(agents.c.id) < agents.c.capacity,
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
                    **{name: column_value(value) for name, value in lifecycle.BACK_TO_WAITING.items()},
                )
                .returning(conversations.c.id, conversations.c.queue_id)
            )
        ).all()
        events: list[BusEvent] = []
        for row in rows:
            await add_timeline(
                connection, int(row.id), EventKind.OFFER_WITHDRAWN, now, agent_id, {"reason": "presence"}
            )
            events.append(withdrawn_event(int(row.id), agent_id, "presence"))
            events.append(queue_event(int(row.id), str(row.queue_id), waiting=True))
        return events
