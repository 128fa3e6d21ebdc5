"""The conversation lifecycle, pure: its states, who may do what, and what each action changes. No I/O.

A conversation waits in a queue, is offered to one agent with a deadline, is active with one owner (and
maybe invited guests), and is closed with a status. Every hand-off between those states is an *action*;
``transition`` says whether it applies to the conversation as it is now and, if so, exactly what it
changes. hub/store/_changes.py gathers the facts inside its transaction, asks ``transition`` and applies
the ``Change`` through one guarded update (row version check), so the rule and the write that makes it
true happen atomically, and every rule lives here, in one place:

* ``Conversation`` + participants + ``Action`` + ``now`` -> ``transition`` -> ``Change`` | ``Refusal``
* ``Actor`` + verb + ``Conversation`` + participants -> ``may`` -> bool (the gate the API asks first)
* ``decide``: the gate, then the transition (what a caller that knows the actor's role asks)

A refusal carries the same ``kind`` / ``code`` / ``message`` the API has always answered with (the kind
picks the HTTP status: not_found 404, forbidden 403, conflict 409, invalid 422).

Facts that need the database (is the target agent active, does the queue exist, which statuses may
close, which queue member is free) travel in the action; the store looks them up before asking.

States are grouped in the sets below, so that a new state (a queue's bot answering first) slots in by
joining the groups it belongs to and the actions that start or end it. ``bot`` is one such: it is open
but not in the queue; ``HandOff`` ends it (into the queue), ``Take`` lets a member take it over, and
``ToBot`` starts it again (see the "bots" block below).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from hub.model import Conversation, ConversationState, EventKind, Queue, Role
from hub.routing import close_refusal

__all__ = [
    "BACK_TO_WAITING",
    "BOT",
    "CONFLICT",
    "HANDOFF_REASONS",
    "INVITED",
    "IN_QUEUE",
    "OPEN",
    "OWNER",
    "TAKEABLE",
    "Accept",
    "Action",
    "Actor",
    "BotClose",
    "Change",
    "Close",
    "Entry",
    "ExpireOffer",
    "HandOff",
    "Invite",
    "Leave",
    "MarkImportant",
    "Offer",
    "Outcome",
    "Participant",
    "Refusal",
    "Reject",
    "Release",
    "Take",
    "ToBot",
    "TransferToAgent",
    "TransferToQueue",
    "Verb",
    "WithdrawOffer",
    "allowed",
    "decide",
    "heir",
    "may",
    "present",
    "transition",
    "verb_of",
]

WAITING = ConversationState.WAITING
OFFERED = ConversationState.OFFERED
ACTIVE = ConversationState.ACTIVE
CLOSED = ConversationState.CLOSED
BOT = ConversationState.BOT

#: states in which a conversation is still being handled (everything but closed)
OPEN: frozenset[ConversationState] = frozenset({BOT, WAITING, OFFERED, ACTIVE})
#: states in which a conversation is in its queue's waiting list: any member may take it
IN_QUEUE: frozenset[ConversationState] = frozenset({WAITING, OFFERED})
#: states a member of the queue may take a conversation from: the waiting list, and a bot's conversation
TAKEABLE: frozenset[ConversationState] = IN_QUEUE | {BOT}
#: why a bot's part ended (the hand-off's timeline event says which)
HANDOFF_REASONS: frozenset[str] = frozenset({"bot_asked", "customer_asked", "bot_silent", "bot_failed"})

#: a participant's role
OWNER = "owner"
INVITED = "invited"

_NO_OFFER: Mapping[str, Any] = MappingProxyType({"offered_agent_id": None, "offered_at": None, "offer_deadline": None})
#: what giving an offer back sets (reject, expiry, withdrawal): the conversation waits again, time in queue running
BACK_TO_WAITING: Mapping[str, Any] = MappingProxyType({"state": WAITING, **_NO_OFFER})


# ------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True, kw_only=True)
class Participant:
    """An agent who is (``left_at`` None) or was in the conversation."""

    agent_id: int
    role: str  # OWNER | INVITED
    joined_at: datetime
    left_at: datetime | None = None
    active: bool = True  # the agent's account, not their part here

    @property
    def present(self) -> bool:
        return self.left_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who asks, as far as the rules need to know them."""

    agent_id: int
    role: Role = Role.AGENT
    queues: frozenset[str] = frozenset()  # queues they are a member of
    active: bool = True

    @property
    def supervises(self) -> bool:
        """Supervisors and admins see and act on every conversation."""
        return self.role in (Role.SUPERVISOR, Role.ADMIN)


def present(participants: Iterable[Participant]) -> dict[int, str]:
    """agent id -> role of everyone currently in the conversation."""
    return {p.agent_id: p.role for p in participants if p.present}


def heir(participants: Iterable[Participant], leaving: int, *, active_only: bool = False) -> int | None:
    """Who takes over when ``leaving`` (the owner) goes: the longest-present other participant.

    ``active_only``: skip agents whose account is inactive (a deactivation hands over to someone who can
    answer; a plain leave has never looked, and a participant is never inactive once deactivation has
    released them)."""
    others = [p for p in participants if p.present and p.agent_id != leaving and (p.active or not active_only)]
    if not others:
        return None
    return min(others, key=lambda p: (p.joined_at, p.agent_id)).agent_id


# ----------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class Refusal:
    """The action does not apply to the conversation as it is now; nothing changes.

    ``kind``: ``not_found`` | ``forbidden`` | ``conflict`` (someone else got there first, wrong state) |
    ``invalid`` (the request itself is wrong, e.g. a status not allowed)."""

    kind: str
    code: str
    message: str


#: the answer when the guarded update finds the row changed since it was read
CONFLICT = Refusal("conflict", "conflict", "the conversation changed meanwhile; reload it")
_FORBIDDEN = Refusal("forbidden", "forbidden", "this conversation is not yours")
_CLOSED = Refusal("conflict", "conversation_closed", "the conversation is closed")
_NOT_OFFERED = Refusal("conflict", "not_offered_to_you", "this conversation is not offered to you (any more)")
_TAKEN = Refusal("conflict", "already_taken", "someone else has this conversation already")


class Outcome(StrEnum):
    """What happened, where one action can end several ways (a deactivation's release)."""

    OFFERED = "offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    WITHDRAWN = "withdrawn"
    TAKEN = "taken"
    LEFT = "left"
    HANDED_OVER = "handed_over"  # the owner left; ``Change.promotes`` owns it now
    TRANSFERRED = "transferred"
    REQUEUED = "requeued"  # back to its own queue's waiting list, a new waiting period
    INVITED = "invited"
    CLOSED = "closed"
    CLOSED_PART = "closed_part"  # one of several participants closed: their part ended, the others go on
    IMPORTANT = "important"
    HANDED_OFF = "handed_off"  # the bot's part ended: the conversation waits in a queue
    TO_BOT = "to_bot"  # a bot answers it (again)


@dataclass(frozen=True, slots=True)
class Entry:
    """The timeline event the change writes (shown in the history, never sent to the customer)."""

    kind: EventKind
    agent_id: int | None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What an action changes, for the store to apply in one transaction.

    ``sets``: the conversation's fields that change (named as ``Conversation`` and its columns), written
    by one update guarded by the state and row version read with the facts; ``lost`` is the refusal when
    that update finds the row changed meanwhile. ``leaves`` end their part (``everyone_leaves``: all who
    are present, as a close does), ``promotes`` becomes the owner among those present, ``joins`` become
    (or stay) present with a role. ``restarts_idle``: the
    agent whose idle time restarts now (longest idle is offered first). ``part_status``: (agent, status)
    recorded on that agent's part when their close ends it."""

    outcome: Outcome
    before: Conversation
    sets: Mapping[str, Any]
    entry: Entry | None  # None: nothing to write (an offer to an agent who no longer exists timed out)
    leaves: frozenset[int] = frozenset()
    everyone_leaves: bool = False
    promotes: int | None = None
    joins: tuple[tuple[int, str], ...] = ()
    restarts_idle: int | None = None
    part_status: tuple[int, str | None] | None = None
    lost: Refusal = CONFLICT

    @property
    def after(self) -> Conversation:
        """The conversation as the change leaves it."""
        return replace(self.before, **self.sets)


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """The router offers a waiting conversation to one agent until ``deadline``."""

    agent_id: int
    deadline: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    agent_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    agent_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpireOffer:
    """The offer's deadline passed unanswered (the store then pauses the agent)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawOffer:
    """The offered agent paused or went offline: the offer goes back, no penalty."""

    agent_id: int
    reason: str = "presence"


@dataclass(frozen=True, slots=True, kw_only=True)
class Take:
    """A member takes it from the waiting list (offered to someone else or not); supervisors from any queue."""

    actor: Actor


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave:
    agent_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferToAgent:
    """``to`` owns it at once; the transferring agent's and the previous owner's parts end."""

    by: int
    to: int
    to_active: bool  # ``to`` names an active agent


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferToQueue:
    """Back to waiting in ``queue_id``, a new waiting period; every agent's part ends."""

    by: int
    queue_id: str
    queue_known: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    """Add ``guest`` silently. Through a queue: the store has picked its free member as ``guest`` (None: nobody)."""

    by: int
    guest: int | None
    guest_active: bool
    queue_id: str | None = None
    queue_known: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Close with ``status``. ``queue`` and ``catalogue`` decide which statuses may close it; without
    ``queue`` the status was checked by whoever accepted the request ("send and close" checks it before
    the message is queued). By one of several participants it ends only their part (``CLOSED_PART``)."""

    by: int
    status: str | None
    queue: Queue | None = None
    catalogue: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkImportant:
    """Mark or unmark important; ``important`` None toggles."""

    by: int
    important: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """An agent is deactivated: whatever they hold here goes where the matching hand-off would send it."""

    agent_id: int
    by: int | None = None  # the admin who deactivated them


# ------------------------------------------------------------------ bots


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOff:
    """The bot's part ends: the conversation waits in ``queue_id`` (None: its own queue), a new waiting
    period. ``reason`` is one of ``HANDOFF_REASONS``; ``note`` is for the agent who takes it."""

    reason: str
    bot_id: str | None = None
    queue_id: str | None = None
    queue_known: bool = True
    note: str | None = None
    by: int | None = None  # an agent who asked for it on the bot's behalf (None: the bot or the hub)


@dataclass(frozen=True, slots=True, kw_only=True)
class BotClose:
    """The bot closes its conversation with ``status``, checked against the queue as an agent's close is."""

    bot_id: str
    status: str | None
    queue: Queue | None = None
    catalogue: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToBot:
    """Hand the conversation (back) to a bot of its queue: every agent's part ends, no offer stands."""

    by: int | None
    bot_id: str
    bot_known: bool  # ``bot_id`` is a configured bot that serves the conversation's queue


Action = (
    Offer
    | Accept
    | Reject
    | ExpireOffer
    | WithdrawOffer
    | Take
    | Leave
    | TransferToAgent
    | TransferToQueue
    | Invite
    | Close
    | MarkImportant
    | Release
    | HandOff
    | ToBot
    | BotClose
)


# -------------------------------------------------------------------- rules


def _change(
    outcome: Outcome, before: Conversation, sets: Mapping[str, Any], entry: Entry | None, **rest: Any
) -> Change:
    return Change(outcome=outcome, before=before, sets=sets, entry=entry, **rest)


def _offer(c: Conversation, ps: Sequence[Participant], a: Offer, now: datetime) -> Change | Refusal:
    if c.state is not WAITING:
        return CONFLICT
    sets = {"state": OFFERED, "offered_agent_id": a.agent_id, "offered_at": now, "offer_deadline": a.deadline}
    return _change(Outcome.OFFERED, c, sets, Entry(EventKind.OFFERED, a.agent_id), restarts_idle=a.agent_id)


def _offered_to(c: Conversation, agent_id: int | None) -> bool:
    return c.state is OFFERED and c.offered_agent_id == agent_id


def _accept(c: Conversation, ps: Sequence[Participant], a: Accept, now: datetime) -> Change | Refusal:
    if not _offered_to(c, a.agent_id):
        return _NOT_OFFERED
    sets = {"state": ACTIVE, "owner_agent_id": a.agent_id, **_NO_OFFER}
    return _change(Outcome.ACCEPTED, c, sets, Entry(EventKind.ACCEPTED, a.agent_id), joins=((a.agent_id, OWNER),))


def _reject(c: Conversation, ps: Sequence[Participant], a: Reject, now: datetime) -> Change | Refusal:
    if not _offered_to(c, a.agent_id):
        return _NOT_OFFERED
    return _change(Outcome.REJECTED, c, BACK_TO_WAITING, Entry(EventKind.REJECTED, a.agent_id))


def _expire(c: Conversation, ps: Sequence[Participant], a: ExpireOffer, now: datetime) -> Change | Refusal:
    if c.state is not OFFERED or c.offer_deadline is None or c.offer_deadline > now:
        return Refusal("conflict", "not_overdue", "the conversation has no overdue offer")
    entry = None if c.offered_agent_id is None else Entry(EventKind.TIMED_OUT, c.offered_agent_id)
    return _change(Outcome.TIMED_OUT, c, BACK_TO_WAITING, entry)


def _withdraw(c: Conversation, ps: Sequence[Participant], a: WithdrawOffer, now: datetime) -> Change | Refusal:
    if not _offered_to(c, a.agent_id):
        return _NOT_OFFERED
    entry = Entry(EventKind.OFFER_WITHDRAWN, a.agent_id, {"reason": a.reason})
    return _change(Outcome.WITHDRAWN, c, BACK_TO_WAITING, entry)


def _take(c: Conversation, ps: Sequence[Participant], a: Take, now: datetime) -> Change | Refusal:
    actor = a.actor
    if c.state not in TAKEABLE:
        return _TAKEN
    if not actor.supervises and c.queue_id not in actor.queues:
        return Refusal("forbidden", "not_a_member", f"you are not a member of queue {c.queue_id}")
    if not actor.active:
        return Refusal("forbidden", "agent_inactive", "your account has been deactivated")
    sets = {"state": ACTIVE, "owner_agent_id": actor.agent_id, **_NO_OFFER}
    entry = Entry(EventKind.TAKEN, actor.agent_id, {"from_bot": True} if c.state is BOT else {})
    joins = ((actor.agent_id, OWNER),)
    return _change(Outcome.TAKEN, c, sets, entry, joins=joins, restarts_idle=actor.agent_id, lost=_TAKEN)


def _leave(c: Conversation, ps: Sequence[Participant], a: Leave, now: datetime) -> Change | Refusal:
    if c.state is CLOSED:
        return _CLOSED
    here = present(ps)
    if a.agent_id not in here:
        return Refusal("conflict", "not_a_participant", "you are not in this conversation")
    if len(here) == 1:
        return Refusal("conflict", "last_participant", "you are the last agent here: close or transfer it")
    entry = Entry(EventKind.LEFT, a.agent_id)
    if c.owner_agent_id != a.agent_id and here[a.agent_id] != OWNER:
        return _change(Outcome.LEFT, c, {}, entry, leaves=frozenset({a.agent_id}))
    if c.state is not ACTIVE:  # an owner of a conversation that is not active: nothing sane to hand over
        return CONFLICT
    successor = heir(ps, a.agent_id)
    assert successor is not None  # someone else is present
    sets = {"owner_agent_id": successor}
    return _change(Outcome.HANDED_OVER, c, sets, entry, leaves=frozenset({a.agent_id}), promotes=successor)


def _transfer_to_agent(
    c: Conversation, ps: Sequence[Participant], a: TransferToAgent, now: datetime
) -> Change | Refusal:
    if c.state is CLOSED:
        return _CLOSED
    if not a.to_active:
        return Refusal("invalid", "unknown_agent", f"no active agent {a.to}")
    if a.to == a.by:
        return Refusal("invalid", "transfer_to_self", "you cannot transfer a conversation to yourself")
    leaving = ({a.by} | ({c.owner_agent_id} if c.owner_agent_id is not None else set())) - {a.to}
    sets = {"state": ACTIVE, "owner_agent_id": a.to, **_NO_OFFER}
    entry = Entry(EventKind.TRANSFERRED, a.by, {"to_agent": a.to})
    leaves = frozenset(leaving) & frozenset(present(ps))
    return _change(Outcome.TRANSFERRED, c, sets, entry, leaves=leaves, joins=((a.to, OWNER),))


def _to_waiting(c: Conversation, queue_id: str, now: datetime) -> dict[str, Any]:
    """A new waiting period in ``queue_id``: nobody owns it, nobody is offered it."""
    return {"state": WAITING, "queue_id": queue_id, "waiting_since": now, "owner_agent_id": None, **_NO_OFFER}


def _transfer_to_queue(
    c: Conversation, ps: Sequence[Participant], a: TransferToQueue, now: datetime
) -> Change | Refusal:
    if c.state is CLOSED:
        return _CLOSED
    if not a.queue_known:
        return Refusal("invalid", "unknown_queue", f"no queue {a.queue_id!r}")
    entry = Entry(EventKind.TRANSFERRED, a.by, {"to_queue": a.queue_id, "from_queue": c.queue_id})
    return _change(Outcome.TRANSFERRED, c, _to_waiting(c, a.queue_id, now), entry, everyone_leaves=True)


def _invite(c: Conversation, ps: Sequence[Participant], a: Invite, now: datetime) -> Change | Refusal:
    if c.state is CLOSED:
        return _CLOSED
    if c.state is not ACTIVE:
        return Refusal("conflict", "not_active", "only an accepted conversation can have guests")
    if a.queue_id is not None:
        if not a.queue_known:
            return Refusal("invalid", "unknown_queue", f"no queue {a.queue_id!r}")
        if a.guest is None:
            return Refusal("conflict", "nobody_available", f"no ready member of {a.queue_id!r} is free")
    if a.guest is None or not a.guest_active:
        return Refusal("invalid", "unknown_agent", f"no active agent {a.guest}")
    if a.guest in present(ps):
        return Refusal("conflict", "already_participant", "that agent is already in the conversation")
    entry = Entry(EventKind.INVITED, a.by, {"agent_id": a.guest})
    return _change(Outcome.INVITED, c, {}, entry, joins=((a.guest, INVITED),))


def _close(c: Conversation, ps: Sequence[Participant], a: Close, now: datetime) -> Change | Refusal:
    """One of several participants closing ends only their part (their status recorded on it; an owner's
    part passes to the heir, as a leave would): the customer goes on with the others and never notices.
    The last participant's close, or the close of someone not taking part (a supervisor), closes it."""
    if c.state is CLOSED:
        return _CLOSED
    if a.queue is not None:
        refused = close_refusal(a.status, a.queue, a.catalogue)
        if refused is not None:
            return Refusal("invalid", *refused)
    here = present(ps)
    if a.by in here and len(here) > 1 and c.state is ACTIVE:
        return _close_part(c, ps, a, here)
    sets = {"state": CLOSED, "status_id": a.status, "closed_at": now, **_NO_OFFER}
    entry = Entry(EventKind.CLOSED, a.by, {"status": a.status})
    part = (a.by, a.status) if a.by in here else None
    return _change(Outcome.CLOSED, c, sets, entry, everyone_leaves=True, part_status=part)


def _close_part(c: Conversation, ps: Sequence[Participant], a: Close, here: Mapping[int, str]) -> Change:
    """The closer's part ends with their status; the conversation stays active with the others."""
    leaves = frozenset({a.by})
    if c.owner_agent_id != a.by and here[a.by] != OWNER:
        entry = Entry(EventKind.LEFT, a.by, {"status": a.status, "closed": True})
        return _change(Outcome.CLOSED_PART, c, {}, entry, leaves=leaves, part_status=(a.by, a.status))
    successor = heir(ps, a.by)
    assert successor is not None  # someone else is present
    entry = Entry(EventKind.LEFT, a.by, {"status": a.status, "closed": True, "owner": successor})
    sets = {"owner_agent_id": successor}
    return _change(Outcome.CLOSED_PART, c, sets, entry, leaves=leaves, promotes=successor, part_status=(a.by, a.status))


def _important(c: Conversation, ps: Sequence[Participant], a: MarkImportant, now: datetime) -> Change | Refusal:
    value = (not c.important) if a.important is None else a.important
    return _change(Outcome.IMPORTANT, c, {"important": value}, Entry(EventKind.IMPORTANT, a.by, {"important": value}))


def _release(c: Conversation, ps: Sequence[Participant], a: Release, now: datetime) -> Change | Refusal:
    """As the matching hand-off: the offer goes back (time in queue keeps running); an owner's part passes
    to the longest-present other active participant, or, alone, back to the queue as a new waiting
    period (as a transfer to it); a guest leaves."""
    agent = a.agent_id
    why: dict[str, Any] = {"reason": "deactivated"} | ({"by": a.by} if a.by is not None else {})
    if _offered_to(c, agent):
        return _change(Outcome.WITHDRAWN, c, BACK_TO_WAITING, Entry(EventKind.OFFER_WITHDRAWN, agent, why))
    here = present(ps)
    if (c.owner_agent_id == agent or here.get(agent) == OWNER) and c.state is ACTIVE:
        successor = heir(ps, agent, active_only=True)
        if successor is None:
            entry = Entry(EventKind.TRANSFERRED, agent, {"to_queue": c.queue_id, "from_queue": c.queue_id, **why})
            return _change(Outcome.REQUEUED, c, _to_waiting(c, c.queue_id, now), entry, everyone_leaves=True)
        entry = Entry(EventKind.LEFT, agent, {**why, "owner": successor})
        sets = {"owner_agent_id": successor}
        return _change(Outcome.HANDED_OVER, c, sets, entry, leaves=frozenset({agent}), promotes=successor)
    if agent in here:
        return _change(Outcome.LEFT, c, {}, Entry(EventKind.LEFT, agent, why), leaves=frozenset({agent}))
    return Refusal("conflict", "nothing_held", f"agent {agent} holds nothing in this conversation")


def _hand_off(c: Conversation, ps: Sequence[Participant], a: HandOff, now: datetime) -> Change | Refusal:
    if c.state is CLOSED:
        return _CLOSED
    if c.state is not BOT:
        return Refusal("conflict", "not_with_bot", "the conversation is not with a bot (any more)")
    if a.reason not in HANDOFF_REASONS:
        return Refusal("invalid", "invalid_reason", f"reason must be one of {', '.join(sorted(HANDOFF_REASONS))}")
    queue_id = a.queue_id or c.queue_id
    if not a.queue_known:
        return Refusal("invalid", "unknown_queue", f"no queue {queue_id!r}")
    data: dict[str, Any] = {"reason": a.reason, "from_queue": c.queue_id, "to_queue": queue_id}
    data |= {k: v for k, v in (("bot", a.bot_id), ("note", a.note)) if v is not None}
    entry = Entry(EventKind.HANDED_OFF, a.by, data)
    return _change(Outcome.HANDED_OFF, c, _to_waiting(c, queue_id, now), entry, everyone_leaves=True)


def _to_bot(c: Conversation, ps: Sequence[Participant], a: ToBot, now: datetime) -> Change | Refusal:
    if c.state is CLOSED:
        return _CLOSED
    if c.state is BOT:
        return Refusal("conflict", "already_with_bot", "a bot has this conversation already")
    if not a.bot_known:
        return Refusal("invalid", "unknown_bot", f"no bot {a.bot_id!r} serves queue {c.queue_id!r}")
    sets = {"state": BOT, "waiting_since": None, "owner_agent_id": None, **_NO_OFFER}
    entry = Entry(EventKind.BOT_TOOK_OVER, a.by, {"bot": a.bot_id})
    return _change(Outcome.TO_BOT, c, sets, entry, everyone_leaves=True)


def _bot_close(c: Conversation, ps: Sequence[Participant], a: BotClose, now: datetime) -> Change | Refusal:
    if c.state is CLOSED:
        return _CLOSED
    if c.state is not BOT:
        return Refusal("conflict", "not_with_bot", "the conversation is not with a bot (any more)")
    if a.queue is not None:
        refused = close_refusal(a.status, a.queue, a.catalogue)
        if refused is not None:
            return Refusal("invalid", *refused)
    sets = {"state": CLOSED, "status_id": a.status, "closed_at": now, **_NO_OFFER}
    entry = Entry(EventKind.CLOSED, None, {"status": a.status, "bot": a.bot_id})
    return _change(Outcome.CLOSED, c, sets, entry, everyone_leaves=True)


_RULES: dict[type[Any], Callable[[Conversation, Sequence[Participant], Any, datetime], Change | Refusal]] = {
    Offer: _offer,
    Accept: _accept,
    Reject: _reject,
    ExpireOffer: _expire,
    WithdrawOffer: _withdraw,
    Take: _take,
    Leave: _leave,
    TransferToAgent: _transfer_to_agent,
    TransferToQueue: _transfer_to_queue,
    Invite: _invite,
    Close: _close,
    MarkImportant: _important,
    Release: _release,
    HandOff: _hand_off,
    ToBot: _to_bot,
    BotClose: _bot_close,
}


def transition(
    conversation: Conversation, participants: Sequence[Participant], action: Action, now: datetime
) -> Change | Refusal:
    """What ``action`` changes in ``conversation`` now, or why it does not apply.

    ``participants``: everyone who is or was in the conversation. The actor is taken to have passed
    ``may`` (the API asks it first); the rules here add what the action itself requires (being the
    offered agent, a member of the queue, a participant) and what the state allows."""
    return _RULES[type(action)](conversation, participants, action, now)


# --------------------------------------------------------------- the gate


class Verb(StrEnum):
    """How close to a conversation an action needs its actor to be."""

    SEE = "see"  # read it; answer an offer
    TAKE = "take"  # try to take it from the waiting list
    ACT = "act"  # work on it: leave, transfer, invite, close, mark important, reply


_VERBS: dict[type[Any], Verb] = {Accept: Verb.SEE, Reject: Verb.SEE, Take: Verb.TAKE}


def verb_of(action: Action) -> Verb:
    """The gate an agent's action passes (actions of the router and of deactivation have no actor)."""
    return _VERBS.get(type(action), Verb.ACT)


def may(actor: Actor, verb: Verb, conversation: Conversation, participants: Collection[Participant]) -> bool:
    """Whether ``actor`` may ``verb`` the conversation at all (``allowed``, for an actor of these rules)."""
    return allowed(
        verb,
        conversation,
        agent_id=actor.agent_id,
        supervises=actor.supervises,
        queues=actor.queues,
        present=present(participants),
        former={p.agent_id for p in participants if not p.present},
    )


def allowed(
    verb: Verb,
    conversation: Conversation,
    *,
    agent_id: int | None,
    supervises: bool,
    queues: Collection[str],
    present: Collection[int],
    former: Collection[int],
) -> bool:
    """The access rule, the one every actor and route asks (``may`` here, ``hub.usecases.permissions`` for the
    API's principals): whether the agent ``agent_id`` may ``verb`` the conversation, given who is in it now
    (``present``) and who was (``former``).

    An agent sees conversations offered to them, owned by them or shared with them (now or before), and
    the waiting list of their own queues, bots' conversations included; they act only on those they take part
    in. Members of the queue may try to take whatever state was read (the write decides a race and answers
    409, so a member who lost is not told 403). Supervisors and admins see and act on everything."""
    if supervises:
        return True
    if verb is Verb.ACT:
        return agent_id in present
    if verb is Verb.TAKE and conversation.queue_id in queues:
        return True
    if agent_id in present or agent_id in former:
        return True
    if _offered_to(conversation, agent_id):
        return True
    if conversation.owner_agent_id == agent_id and conversation.state is not CLOSED:
        return True
    return conversation.state in TAKEABLE and conversation.queue_id in queues


def decide(
    actor: Actor, conversation: Conversation, participants: Sequence[Participant], action: Action, now: datetime
) -> Change | Refusal:
    """The gate, then the transition: the whole answer for an agent's action."""
    if not may(actor, verb_of(action), conversation, participants):
        return _FORBIDDEN
    return transition(conversation, participants, action, now)
