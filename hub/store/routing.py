"""Routing actions in SQL: answers to offers, hand-offs, closing, deactivation; each one short atomic transaction.

What an action may do and what it changes is decided by the pure ``hub.lifecycle``; ``hub.store._changes``
gathers the facts inside the transaction, asks it and applies the change. The sweep that makes and expires
offers is ``hub.store.offers``. Each function returns the bus events to publish once it has committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import lifecycle
from hub.bus import BusEvent
from hub.model import Conversation, ConversationState, Queue, Role
from hub.routing import choose_agent
from hub.store._changes import (
    ACTIVE,
    CLOSED,
    OFFERED,
    Change,
    Facts,
    RoutingRefused,
    apply_change,
    decide,
    is_active,
    load_candidates,
    load_facts,
    locked_for_change,
    queue_config,
    queue_event,
    reported,
    updated_event,
    withdrawn_event,
)
from hub.store._db import Store
from hub.store.catalogue import load_queue
from hub.store.tables import agent_queues, conversations, participants, statuses

__all__ = [
    "Change",
    "Released",
    "RoutingRefused",
    "accept_offer",
    "close_conversation",
    "close_within",
    "invite",
    "leave",
    "reject_offer",
    "release_agent",
    "set_important",
    "take",
    "transfer_to_agent",
    "transfer_to_queue",
]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Released:
    """What ``release_agent`` gave back, by conversation id, and the bus events to publish."""

    offers_withdrawn: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    handed_over: list[tuple[int, int]] = field(default_factory=list)  # (conversation, new owner)
    left: list[int] = field(default_factory=list)  # conversations they were invited to
    events: list[BusEvent] = field(default_factory=list)


# ------------------------------------------------------------------ answers


async def accept_offer(store: Store, conversation_id: int, agent_id: int, *, now: datetime) -> Change:
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        change = decide(facts, lifecycle.Accept(agent_id=agent_id), now)
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        accepted = [updated_event(conversation_id, "accepted", facts.audience(agent_id), agent_id=agent_id)]
        return await reported(connection, conversation, accepted, now)


async def reject_offer(store: Store, conversation_id: int, agent_id: int, *, now: datetime) -> Change:
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id, people=False)
        change = decide(facts, lifecycle.Reject(agent_id=agent_id), now)
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        events = [
            withdrawn_event(conversation_id, agent_id, "rejected"),
            queue_event(conversation_id, conversation.queue_id, True),
        ]
        return Change(conversation, events)


async def take(store: Store, conversation_id: int, agent_id: int, *, now: datetime, any_queue: bool = False) -> Change:
    """A member takes a waiting (or offered to someone else) conversation of their queue; one winner.

    ``any_queue``: the taker may take from every queue (the API passes it for supervisors and admins)."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
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
            active=before.state not in lifecycle.TAKEABLE or await is_active(connection, store.dialect, agent_id),
        )
        change = decide(facts, lifecycle.Take(actor=actor), now)
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id not in (None, agent_id):
            assert before.offered_agent_id is not None
            events.append(withdrawn_event(conversation_id, before.offered_agent_id, "taken"))
        if before.state is not ConversationState.BOT:  # a bot's conversation was on no waiting list
            events.append(queue_event(conversation_id, before.queue_id, waiting=False))
        events.append(updated_event(conversation_id, "taken", facts.audience(agent_id), agent_id=agent_id))
        return await reported(connection, conversation, events, now)


# ---------------------------------------------------------------- hand-offs


async def leave(store: Store, conversation_id: int, agent_id: int, *, now: datetime) -> Change:
    """A participant leaves; the owner's part passes to the longest-present other participant.
    The last participant cannot leave: they close or transfer instead."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        change = decide(facts, lifecycle.Leave(agent_id=agent_id), now)
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        return Change(conversation, [updated_event(conversation_id, "left", facts.audience(), agent_id=agent_id)])


async def transfer_to_agent(
    store: Store, conversation_id: int, actor_id: int, target_id: int, *, now: datetime
) -> Change:
    """The target becomes the owner at once; the transferring agent's part ends."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        active = before.state is not ConversationState.CLOSED and await is_active(connection, store.dialect, target_id)
        change = decide(facts, lifecycle.TransferToAgent(by=actor_id, to=target_id, to_active=active), now)
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id is not None:
            events.append(withdrawn_event(conversation_id, before.offered_agent_id, "transferred"))
        if before.state is ConversationState.WAITING:
            events.append(queue_event(conversation_id, before.queue_id, waiting=False))
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        events.append(
            updated_event(
                conversation_id, "transferred", facts.audience(target_id), agent_id=actor_id, to_agent=target_id
            )
        )
        return await reported(connection, conversation, events, now)


async def transfer_to_queue(
    store: Store, conversation_id: int, actor_id: int, queue_id: str, *, now: datetime
) -> Change:
    """Back to waiting in ``queue_id`` (a new waiting period); every agent's part ends."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        known = before.state is not ConversationState.CLOSED and await load_queue(connection, queue_id) is not None
        change = decide(facts, lifecycle.TransferToQueue(by=actor_id, queue_id=queue_id, queue_known=known), now)
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id is not None:
            events.append(withdrawn_event(conversation_id, before.offered_agent_id, "transferred"))
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        if before.queue_id != queue_id and before.state is ConversationState.WAITING:
            events.append(queue_event(conversation_id, before.queue_id, waiting=False))
        events.append(
            updated_event(conversation_id, "transferred", facts.audience(), agent_id=actor_id, to_queue=queue_id)
        )
        events.append(queue_event(conversation_id, queue_id, waiting=True))
        return await reported(connection, conversation, events, now)


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
        facts = await load_facts(connection, store.dialect, conversation_id)
        action = await _invitation(connection, store.dialect, facts, actor_id, agent_id, queue_id)
        change = decide(facts, action, now)
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        guest = action.guest
        assert guest is not None
        return Change(
            conversation,
            [updated_event(conversation_id, "invited", facts.audience(guest), agent_id=actor_id, invited=guest)],
        )


async def _invitation(
    connection: AsyncConnection, dialect: str, facts: Facts, by: int, agent_id: int | None, queue_id: str | None
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
            c
            for c in await load_candidates(connection, queue_id, facts.conversation.id, None)
            if c.agent_id not in here
        ]
        choice = choose_agent(candidates)
        if choice is None:
            return lifecycle.Invite(by=by, guest=None, guest_active=False, queue_id=queue_id)
        agent_id = choice.agent_id
    active = agent_id is not None and await is_active(connection, dialect, agent_id)
    return lifecycle.Invite(by=by, guest=agent_id, guest_active=active, queue_id=queue_id)


async def close_conversation(
    store: Store, conversation_id: int, actor_id: int, status: str | None, *, now: datetime
) -> Change:
    """Close with a status the conversation's queue allows. One of several participants closes only their
    part (``lifecycle.Close``): the conversation stays active with the others; the last one closes it."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        queue: Queue | None = None
        catalogue: tuple[str, ...] = ()
        if before.state is not ConversationState.CLOSED:
            queue = await queue_config(connection, before.queue_id)
            catalogue = tuple((await connection.execute(select(statuses.c.id))).scalars())
        action = lifecycle.Close(by=actor_id, status=status, queue=queue, catalogue=catalogue)
        change = decide(facts, action, now)
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id is not None:
            events.append(withdrawn_event(conversation_id, before.offered_agent_id, "closed"))
        if before.state is ConversationState.WAITING:
            events.append(queue_event(conversation_id, before.queue_id, waiting=False))
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        if change.outcome is lifecycle.Outcome.CLOSED_PART:
            # the others go on: the console of the one who closed drops it, the others' update
            details: dict[str, Any] = {"status": status, "closed": True}
            if change.promotes is not None:
                details["owner"] = change.promotes
            events.append(updated_event(conversation_id, "left", facts.audience(), agent_id=actor_id, **details))
        else:
            events.append(updated_event(conversation_id, "closed", facts.audience(), agent_id=actor_id, status=status))
        return await reported(connection, conversation, events, now)


async def close_within(
    connection: AsyncConnection, conversation_id: int, actor_id: int, status: str, *, now: datetime
) -> Conversation:
    """Close inside the caller's transaction, the status already checked ("send and close" checks it
    before the message is queued): the same rule and guarded update as ``close_conversation``."""
    dialect = connection.dialect.name
    facts = await load_facts(connection, dialect, conversation_id, people=False)
    change = decide(facts, lifecycle.Close(by=actor_id, status=status), now)
    return await apply_change(connection, dialect, facts, change, now)


async def set_important(
    store: Store, conversation_id: int, actor_id: int, important: bool | None, *, now: datetime
) -> Change:
    """Mark or unmark important; ``None`` toggles."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        change = decide(facts, lifecycle.MarkImportant(by=actor_id, important=important), now)
        conversation = await apply_change(connection, store.dialect, facts, change, now)
        value = conversation.important
        return Change(
            conversation,
            [updated_event(conversation_id, "important", facts.audience(), agent_id=actor_id, important=value)],
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
        facts = await load_facts(connection, dialect, conversation_id, lock=False)  # locked by _held_by
        decision = lifecycle.transition(
            facts.conversation, facts.participants, lifecycle.Release(agent_id=agent_id, by=actor_id), now
        )
        if isinstance(decision, lifecycle.Refusal):
            continue
        conversation = await apply_change(connection, dialect, facts, decision, now)
        audience = facts.audience()
        match decision.outcome:
            case lifecycle.Outcome.WITHDRAWN:
                released.offers_withdrawn.append(conversation_id)
                released.events.append(withdrawn_event(conversation_id, agent_id, "deactivated"))
                released.events.append(queue_event(conversation_id, conversation.queue_id, waiting=True))
            case lifecycle.Outcome.REQUEUED:
                queue_id = conversation.queue_id
                released.requeued.append(conversation_id)
                released.events.append(
                    updated_event(conversation_id, "transferred", audience, agent_id=agent_id, to_queue=queue_id, **why)
                )
                released.events.append(queue_event(conversation_id, queue_id, waiting=True))
            case lifecycle.Outcome.HANDED_OVER:
                heir = decision.promotes
                assert heir is not None
                released.handed_over.append((conversation_id, heir))
                released.events.append(
                    updated_event(conversation_id, "left", audience, agent_id=agent_id, owner=heir, **why)
                )
            case _:
                released.left.append(conversation_id)
                released.events.append(updated_event(conversation_id, "left", audience, agent_id=agent_id, **why))
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
        lock = locked_for_change(lock)
    return [int(i) for i in (await connection.execute(lock)).scalars()]
