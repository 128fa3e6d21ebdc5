"""Report figures from a conversation's stored timeline. Pure: no I/O.

The unit is the *contact*: one waiting period that a customer started (an ``opened`` event that no agent
made, or a ``reopened`` one), up to the next one of the same conversation. Everything that happened in
that period is counted in the bucket where it started, for the queue it started in, so a figure never
moves between buckets when the report is read again later. A contact that started with a queue's bot (its
start names the bot) reaches people when the bot hands it off (or an agent takes it over): its waits run from
there, and one the bot closed itself is ``bot_resolved``, never ``abandoned``. Buckets are hours or days of a
time zone (UTC unless asked). docs/reports.md defines each figure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

__all__ = [
    "MOVES",
    "STARTS",
    "TO_PEOPLE",
    "Bucket",
    "Contact",
    "Figures",
    "Part",
    "SlaTargets",
    "Timeline",
    "TimelineEvent",
    "bucket_start",
    "contacts_of",
    "figures_by",
    "handled_since",
    "percentile",
    "whole",
]


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One stored timeline row, as far as reports read it."""

    kind: str
    agent_id: int | None
    at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Timeline:
    """A conversation's facts and its timeline from the report's start on, oldest first.

    ``first_responses`` maps each period start to the first agent message at or after it."""

    conversation_id: int
    channel: str
    queue_id: str  # the queue it is in now
    events: Sequence[TimelineEvent]
    first_responses: Mapping[datetime, datetime | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaTargets:
    """A queue's targets: ``accept_share`` of contacts accepted within ``accept_seconds``; first response
    within ``first_response_seconds``. None: no target."""

    accept_seconds: int | None = None
    accept_share: float | None = None
    first_response_seconds: int | None = None


@dataclass(slots=True, kw_only=True)
class Contact:
    """One waiting period a customer started, and what came of it."""

    conversation_id: int
    queue_id: str
    channel: str
    started_at: datetime
    with_bot: bool = False  # it started with the queue's bot (its start names the bot)
    # when it reached people, for one that started with a bot: its first hand-off, or the first acceptance,
    # take-over or transfer if none came before (None: the bot has it still, or closed it)
    queued_at: datetime | None = None
    handoffs: int = 0  # hand-offs from a bot to people
    handoff_reason: str | None = None  # the first hand-off's reason
    closed_by_bot: bool = False
    first_offer_at: datetime | None = None
    handled_at: datetime | None = None
    handled_by: int | None = None
    first_response_at: datetime | None = None
    closed_at: datetime | None = None
    status: str | None = None
    # immutable, shared while empty: a report makes thousands of contacts whose agents are not read (queue and
    # channel reports), and three new containers each were three more objects for the garbage collector
    offered_to: frozenset[int] = frozenset()
    missed_by: tuple[int, ...] = ()  # one entry per rejected or timed-out offer
    transferred_by: tuple[int | None, ...] = ()
    # every agent who took charge of it (accepted, took, or was transferred it by name), with when: the first
    # is ``handled_by``; one who got it from a colleague handled it too, from that moment
    handlers: tuple[tuple[int, datetime], ...] = ()
    # how many of each; counted in SQL where the agents are not read (queue and channel reports)
    missed_offers: int = 0
    transfers: int = 0

    @property
    def abandoned(self) -> bool:
        """Closed before any agent accepted or took it, and not by a bot (that is ``bot_resolved``)."""
        return self.closed_at is not None and self.handled_at is None and not self.closed_by_bot

    @property
    def bot_resolved(self) -> bool:
        """Closed by a bot before any agent accepted or took it."""
        return self.closed_at is not None and self.handled_at is None and self.closed_by_bot

    @property
    def reached_people_at(self) -> datetime | None:
        """When the customer began to wait for people: the start, or, for a contact that started with a bot,
        when it reached them (None: it has not). The waits and the service level run from here."""
        return self.queued_at if self.with_bot else self.started_at


# The timeline's kinds that mean the same to both ways of counting (here, and the grouped pass in
# hub/store/reports.py): a period's start, what brings a bot's contact to people (a hand-off, or an agent who
# takes it over or is given it), and what may move a conversation to another queue (naming where from).
STARTS = ("opened", "reopened")
TO_PEOPLE = ("handed_off", "accepted", "taken", "transferred")
MOVES = ("transferred", "handed_off")
_MISSES = frozenset({"rejected", "timed_out"})


def _starts(event: TimelineEvent) -> bool:
    """A customer started a waiting period (an agent who opened one to write first did not)."""
    return event.kind == "reopened" or (event.kind == "opened" and event.agent_id is None)


def _queue_at(timeline: Timeline, index: int) -> str:
    """The queue a conversation was in at its ``index``-th event: only a transfer or a bot's hand-off to a
    queue moves it, and each names where it came from."""
    for event in timeline.events[index:]:
        if event.kind in MOVES and event.data.get("from_queue") is not None:
            return str(event.data["from_queue"])
    return timeline.queue_id


def contacts_of(timeline: Timeline, start: datetime, end: datetime) -> list[Contact]:
    """The contacts of one conversation that started in ``[start, end)``."""
    found: list[Contact] = []
    current: Contact | None = None
    for index, event in enumerate(timeline.events):
        if event.kind in STARTS:
            if not _starts(event):
                current = None
                continue
            current = None
            if start <= event.at < end:
                current = Contact(
                    conversation_id=timeline.conversation_id,
                    queue_id=_queue_at(timeline, index),
                    channel=timeline.channel,
                    started_at=event.at,
                    with_bot=event.data.get("bot") is not None,
                )
                found.append(current)
            continue
        if current is not None:
            _apply(current, event)
    for contact in found:
        _first_response(contact, timeline)
    return found


def _apply(contact: Contact, event: TimelineEvent) -> None:
    kind, agent = event.kind, event.agent_id
    if contact.closed_at is not None:
        return
    if kind in TO_PEOPLE and contact.queued_at is None:
        contact.queued_at = event.at
    if kind == "handed_off":
        if contact.handoffs == 0:
            reason = event.data.get("reason")
            contact.handoff_reason = None if reason is None else str(reason)
        contact.handoffs += 1
    elif kind == "offered":
        if contact.first_offer_at is None:
            contact.first_offer_at = event.at
        if agent is not None:
            contact.offered_to |= {agent}
    elif kind in _MISSES and agent is not None:
        contact.missed_by += (agent,)
        contact.missed_offers += 1
    elif kind in ("accepted", "taken"):
        _handled(contact, agent, event.at)
    elif kind == "transferred":
        contact.transferred_by += (agent,)
        contact.transfers += 1
        to_agent = event.data.get("to_agent")
        if to_agent is not None:
            _handled(contact, int(to_agent), event.at)
    elif kind == "closed":
        contact.closed_at = event.at
        status = event.data.get("status")
        contact.status = None if status is None else str(status)
        contact.closed_by_bot = event.data.get("bot") is not None


def _handled(contact: Contact, agent: int | None, at: datetime) -> None:
    if contact.handled_at is None:
        contact.handled_at = at
        contact.handled_by = agent
    if agent is not None and all(known != agent for known, _ in contact.handlers):
        contact.handlers += ((agent, at),)


def handled_since(contact: Contact, agent: int) -> datetime | None:
    """When ``agent`` first took charge of the contact (None: they never did)."""
    return next((at for known, at in contact.handlers if known == agent), None)


def _first_response(contact: Contact, timeline: Timeline) -> None:
    """The first agent message at or after the start, if it came before the next period began."""
    answered = timeline.first_responses.get(contact.started_at)
    if answered is None:
        return
    later = [e.at for e in timeline.events if e.kind in STARTS and e.at > contact.started_at]
    if later and answered >= min(later):
        return
    contact.first_response_at = answered


def bucket_start(at: datetime, bucket: Bucket, zone: tzinfo = UTC) -> datetime:
    """The start of the hour or day of ``zone`` that ``at`` falls in, as a UTC instant (a key that compares
    and hashes as the instant it is; ``.astimezone(zone)`` names it). An hour of a zone a half-hour off UTC
    starts at half past in UTC; a day is the zone's date, 23 or 25 hours long across a change of clocks."""
    local = at.astimezone(zone)
    if bucket is Bucket.HOUR:
        # back to the zone's full hour, counted on the UTC clock: the wall clock's arithmetic would lose which of
        # autumn's two 01:00 hours it is
        past = timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
        return at.astimezone(UTC) - past
    midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    return midnight.astimezone(UTC)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil(n * share), at least the first
    return ordered[int(rank) - 1]


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    """From ``earlier`` to ``later``; none before ``earlier`` (an agent who wrote while a bot still had it)."""
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


@dataclass(slots=True)
class Figures:
    """The figures of one key in one bucket, gathered contact by contact."""

    received: int = 0
    handled: int = 0
    abandoned: int = 0
    bot_resolved: int = 0
    handed_off: int = 0
    missed_offers: int = 0
    transfers: int = 0
    first_offer: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)
    first_response: list[float] = field(default_factory=list)
    handle: list[float] = field(default_factory=list)
    sla_accept: list[bool] = field(default_factory=list)
    sla_first_response: list[bool] = field(default_factory=list)
    by_status: dict[str, int] = field(default_factory=dict)
    handed_off_by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, contact: Contact, part: Part, sla: SlaTargets | None, now: datetime) -> None:
        """Count a contact this key received; what followed its acceptance only if ``part.handled``."""
        self.received += 1
        self.missed_offers += part.missed
        self.transfers += part.transfers
        if contact.abandoned:
            self.abandoned += 1
        elif contact.bot_resolved:
            self.bot_resolved += 1
        if contact.handoffs:
            self.handed_off += 1
            reason = contact.handoff_reason or "none"
            self.handed_off_by_reason[reason] = self.handed_off_by_reason.get(reason, 0) + 1
        if contact.closed_at is not None:
            status = contact.status or "none"
            self.by_status[status] = self.by_status.get(status, 0) + 1
        # the customer's waits run from when they began to wait for people (a bot's time is not one)
        reached = contact.reached_people_at
        _add(self.first_offer, _seconds(contact.first_offer_at, reached))
        if not part.handled:
            return
        if contact.handled_at is not None:
            self.handled += 1
        _add(self.wait, _seconds(contact.handled_at, reached))
        _add(self.first_response, _seconds(contact.first_response_at, reached))
        _add(self.handle, _seconds(contact.closed_at, part.since or contact.handled_at))
        if sla is not None and reached is not None:  # one that never reached people is not judged
            _judge(self.sla_accept, reached, contact.handled_at, contact.closed_at, sla.accept_seconds, now)
            _judge(
                self.sla_first_response,
                reached,
                contact.first_response_at,
                contact.closed_at,
                sla.first_response_seconds,
                now,
            )

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "handled": self.handled,
            "abandoned": self.abandoned,
            "bot_resolved": self.bot_resolved,
            "handed_off": self.handed_off,
            "missed_offers": self.missed_offers,
            "transfers": self.transfers,
            "first_offer_p50_s": percentile(self.first_offer, 0.5),
            "first_offer_p90_s": percentile(self.first_offer, 0.9),
            "wait_p50_s": percentile(self.wait, 0.5),
            "wait_p90_s": percentile(self.wait, 0.9),
            "first_response_p50_s": percentile(self.first_response, 0.5),
            "first_response_p90_s": percentile(self.first_response, 0.9),
            "handle_p50_s": percentile(self.handle, 0.5),
            "handle_p90_s": percentile(self.handle, 0.9),
            "sla_met_share": _share(self.sla_accept),
            "sla_first_response_met_share": _share(self.sla_first_response),
            "by_status": dict(sorted(self.by_status.items())),
            "handed_off_by_reason": dict(sorted(self.handed_off_by_reason.items())),
        }


def _add(values: list[float], value: float | None) -> None:
    if value is not None:
        values.append(value)


def _judge(
    verdicts: list[bool],
    started: datetime,
    reached: datetime | None,
    closed: datetime | None,
    target: int | None,
    now: datetime,
) -> None:
    """Met when reached within the target; missed when reached later, closed first, or still not reached
    past the target; not judged yet while the target time has not run out."""
    if target is None:
        return
    limit = started + timedelta(seconds=target)
    if reached is not None:
        verdicts.append(reached <= limit)
    elif closed is not None or now > limit:
        verdicts.append(False)


def _share(verdicts: Sequence[bool]) -> float | None:
    return None if not verdicts else round(sum(verdicts) / len(verdicts), 4)


@dataclass(frozen=True, slots=True)
class Part:
    """A key's part in a contact: whether the figures after acceptance are its own (a queue's and a
    channel's always; an agent's when they handled it), and the missed offers and transfers it counts.
    ``since``: when the key's own handling began, where it is not the contact's first acceptance (an agent
    who got it from a colleague); the handling time runs from there."""

    handled: bool
    missed: int
    transfers: int
    since: datetime | None = None


def whole(contact: Contact, key: Any) -> Part:
    """All of the contact is the key's (queues, channels)."""
    return Part(True, contact.missed_offers, contact.transfers)


def figures_by(
    contacts: Iterable[Contact],
    keys: Callable[[Contact], Iterable[Any]],
    bucket: Bucket,
    sla_of: Callable[[str], SlaTargets | None],
    now: datetime,
    *,
    part: Callable[[Contact, Any], Part] = whole,
    zone: tzinfo = UTC,
) -> dict[tuple[Any, datetime], Figures]:
    """Figures per (key, bucket start as a UTC instant, see ``bucket_start``). ``keys`` names the keys a
    contact counts for (its queue, its channel, the agents involved); ``part`` says what of it each key
    counts; ``zone`` whose hours or days the buckets are."""
    table: dict[tuple[Any, datetime], Figures] = {}
    for contact in contacts:
        start = bucket_start(contact.started_at, bucket, zone)
        sla = sla_of(contact.queue_id)
        for key in keys(contact):
            figures = table.get((key, start))
            if figures is None:  # not setdefault: that would build (and drop) a Figures for every contact
                figures = table[key, start] = Figures()
            figures.add(contact, part(contact, key), sla, now)
    return table
