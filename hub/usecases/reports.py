"""Reports: figures per queue, agent or channel and hour or day, and today's service level per queue.

Read from the stored timeline (``hub.store.reports``) and counted by ``hub.reports``; supervisors and
admins read the reports, every agent reads the service level of the queues they can see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from hub.errors import Invalid
from hub.model import Role
from hub.reports import (
    Bucket,
    Contact,
    Part,
    SlaTargets,
    bucket_start,
    contacts_of,
    figures_by,
    handled_since,
    whole,
)
from hub.store.reports import agent_names, report_contacts, report_timelines
from hub.usecases._parts import HubParts
from hub.usecases.permissions import require_role
from hub.usecases.principal import Principal

__all__ = ["MAX_BUCKETS", "MAX_RANGE", "ReportKind", "ReportQuery", "report", "sla_today"]

MAX_RANGE = timedelta(days=366)  # a year of days
MAX_BUCKETS = 24 * 62  # two months of hours


class ReportKind(StrEnum):
    """What a report's rows are keyed by; the key's name in each item."""

    QUEUES = "queue"
    AGENTS = "agent"
    CHANNELS = "channel"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportQuery:
    kind: ReportKind
    start: datetime
    end: datetime
    bucket: Bucket
    queue: str | None = None  # only the contacts that started in this queue
    zone: tzinfo = UTC  # whose hours or days the buckets are


def _check(query: ReportQuery) -> None:
    if query.start >= query.end:
        raise Invalid("bad_range", "'from' must be before 'to'", field="from")
    if query.end - query.start > MAX_RANGE:
        raise Invalid("range_too_long", f"a report covers at most {MAX_RANGE.days} days", field="to")
    if query.bucket is Bucket.HOUR and query.end - query.start > timedelta(hours=MAX_BUCKETS):
        raise Invalid(
            "too_many_buckets", f"hourly reports cover at most {MAX_BUCKETS // 24} days; use bucket=day", field="to"
        )


def sla_lookup(hub: HubParts) -> Callable[[str], SlaTargets | None]:
    """queue id -> its configured targets, or None when it has none."""
    targets = {
        q.id: SlaTargets(
            accept_seconds=q.sla_accept_seconds,
            accept_share=q.sla_accept_share,
            first_response_seconds=q.sla_first_response_seconds,
        )
        for q in hub.settings.queues
        if q.sla_accept_seconds is not None or q.sla_first_response_seconds is not None
    }
    return targets.get


async def _contacts(
    hub: HubParts, start: datetime, end: datetime, queue: str | None = None, *, agents: bool = False
) -> list[Contact]:
    """The contacts started in ``[start, end)``; with ``agents``, with the agents involved in each (read row by
    row), else counted by the database where it can."""
    if agents:
        found = [
            c for t in await report_timelines(hub.store, start, end, queue=queue) for c in contacts_of(t, start, end)
        ]
    else:
        counted, timelines = await report_contacts(hub.store, start, end, queue=queue)
        found = counted + [c for t in timelines for c in contacts_of(t, start, end)]
    return found if queue is None else [c for c in found if c.queue_id == queue]


def _agents_in(contact: Contact) -> set[int]:
    involved = set(contact.offered_to) | set(contact.missed_by)
    involved |= {a for a in contact.transferred_by if a is not None}
    involved |= {a for a, _ in contact.handlers}
    return involved


def _agent_part(contact: Contact, agent: int) -> Part:
    """An agent handled a contact when they accepted or took it, or a colleague transferred it to them (the
    manual: "the customer will be transferred"): the one who got it carries on with the customer, so it is
    theirs as well, its handling time from when they got it."""
    since = handled_since(contact, agent)
    return Part(
        since is not None,
        contact.missed_by.count(agent),
        contact.transferred_by.count(agent),
        since=since,
    )


_KEYS: dict[ReportKind, Callable[[Contact], Iterable[Any]]] = {
    ReportKind.QUEUES: lambda c: (c.queue_id,),
    ReportKind.CHANNELS: lambda c: (c.channel,),
    ReportKind.AGENTS: _agents_in,
}


async def report(hub: HubParts, actor: Principal, query: ReportQuery) -> list[dict[str, Any]]:
    """One item per key and bucket with at least one contact, ordered by key, then time."""
    require_role(actor, Role.SUPERVISOR, Role.ADMIN)
    _check(query)
    agents = query.kind is ReportKind.AGENTS
    contacts = await _contacts(hub, query.start, query.end, query.queue, agents=agents)
    part = _agent_part if agents else whole
    table = figures_by(
        contacts, _KEYS[query.kind], query.bucket, sla_lookup(hub), hub.clock(), part=part, zone=query.zone
    )
    names = await agent_names(hub.store, {k for k, _ in table}) if query.kind is ReportKind.AGENTS else {}
    items = []
    for (key, start), figures in sorted(table.items(), key=lambda pair: (str(pair[0][0]), pair[0][1])):
        # named in the report's zone, with its offset: the zone's midnight, unmistakable wherever it is read
        item: dict[str, Any] = {query.kind.value: key, "bucket_start": start.astimezone(query.zone)}
        if query.kind is ReportKind.AGENTS:
            login, display_name = names.get(key, (None, None))
            item |= {"agent_login": login, "agent_name": display_name}
        items.append(item | figures.as_json())
    return items


async def sla_today(hub: HubParts, actor: Principal, zone: tzinfo = UTC) -> list[dict[str, Any]]:
    """Per queue with targets (an agent: of their own queues), the targets and the share met so far today
    (since midnight in ``zone``), live: read from the timeline at each call."""
    now = hub.clock()
    start = bucket_start(now, Bucket.DAY, zone)
    sla_of = sla_lookup(hub)
    contacts = await _contacts(hub, start, now + timedelta(microseconds=1))
    table = figures_by(contacts, _KEYS[ReportKind.QUEUES], Bucket.DAY, sla_of, now, zone=zone)
    items = []
    for queue in hub.settings.queues:
        targets = sla_of(queue.id)
        if targets is None or not (actor.supervises or queue.id in actor.queues):
            continue
        figures = table.get((queue.id, start))
        found = figures.as_json() if figures is not None else {}
        items.append(
            {
                "queue": queue.id,
                "since": start.astimezone(zone),
                "sla_accept_seconds": targets.accept_seconds,
                "sla_accept_share": targets.accept_share,
                "sla_first_response_seconds": targets.first_response_seconds,
                "received": found.get("received", 0),
                "sla_met_share": found.get("sla_met_share"),
                "sla_first_response_met_share": found.get("sla_first_response_met_share"),
            }
        )
    return items
