"""Queues and the status catalogue: as every agent reads them, and as admins change them.

Each use case checks who may, changes the store, writes the audit log and, for a queue, tells the consoles
and the router (``QueueChanged``), so the admin API and any other caller do exactly the same thing. Admins
create, change and delete queues and statuses; supervisors and admins set a queue's members.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.audit import record
from hub.errors import NotFound
from hub.events import QueueChanged
from hub.hours import is_open, next_opening
from hub.model import Queue, Role, Status
from hub.store import admin as admin_store
from hub.store.admin import QueueFigures
from hub.store.bots import count_with_bots
from hub.usecases._parts import HubParts
from hub.usecases._store_refusals import store_refusals
from hub.usecases.permissions import require_role
from hub.usecases.principal import Principal

__all__ = [
    "HoursNow",
    "QueueFigures",
    "QueueOverview",
    "create_queue",
    "create_status",
    "delete_queue",
    "delete_status",
    "overview",
    "queue_overview",
    "rename_status",
    "set_members",
    "statuses",
    "update_queue",
]

_SUPERVISION = (Role.SUPERVISOR, Role.ADMIN)


def _no_queue(queue_id: str) -> NotFound:
    return NotFound("not_found", f"no queue {queue_id!r}")


def _audited(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "number": queue.number,
        "offer_timeout": queue.offer_timeout,
        "statuses": list(queue.statuses),
        "url_template": queue.url_template,
        "transfer_back": queue.transfer_back,
    }


async def _audit(
    hub: HubParts,
    actor: Principal,
    action: str,
    target: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    await record(hub.store, action, actor=actor, at=hub.clock(), target=target, before=before, after=after)


def _changed(hub: HubParts, queue_id: str, action: str) -> None:
    hub.bus.publish(QueueChanged(queue_id=queue_id, action=action))


# ------------------------------------------------------------- the overview


@dataclass(frozen=True, slots=True, kw_only=True)
class HoursNow:
    """A queue's business hours as they stand now: open or not, and when it opens next (now when open; None:
    not within the coming year)."""

    open: bool
    opens_at: datetime | None
    time_zone: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueOverview:
    """A queue as the supervisor overview shows it: its active members' ids, its live figures (None: nothing
    to count yet), the conversations its bot has now, and its hours (None: it has none, always open)."""

    queue: Queue
    members: list[int]
    figures: QueueFigures | None
    with_bot: int
    hours: HoursNow | None


def _hours_now(hub: HubParts, queue_id: str, now: datetime) -> HoursNow | None:
    hours = hub.settings.queue_hours.get(queue_id)
    if hours is None:
        return None
    return HoursNow(open=is_open(hours, now), opens_at=next_opening(hours, now), time_zone=hours.time_zone)


async def overview(hub: HubParts) -> list[QueueOverview]:
    """Every queue, by number, with its members, figures, bot conversations and hours."""
    now = hub.clock()
    members = await admin_store.queue_members(hub.store)
    figures = await admin_store.queue_figures(hub.store, now)
    queues = await admin_store.list_queues(hub.store)
    with_bots = await count_with_bots(hub.store)
    return [_overview(hub, q, members, figures, with_bots, now) for q in queues]


async def queue_overview(hub: HubParts, queue_id: str) -> QueueOverview:
    """One queue as the overview shows it."""
    queue = await admin_store.get_queue(hub.store, queue_id)
    if queue is None:
        raise _no_queue(queue_id)
    return await _overview_of(hub, queue)


async def _overview_of(hub: HubParts, queue: Queue) -> QueueOverview:
    """``queue`` (as a change just left it) as the overview shows it."""
    now = hub.clock()
    members = await admin_store.queue_members(hub.store)
    figures = await admin_store.queue_figures(hub.store, now)
    with_bots = await count_with_bots(hub.store)
    return _overview(hub, queue, members, figures, with_bots, now)


def _overview(
    hub: HubParts,
    queue: Queue,
    members: Mapping[str, list[int]],
    figures: Mapping[str, QueueFigures],
    with_bots: Mapping[str, int],
    now: datetime,
) -> QueueOverview:
    """One queue's overview from the reads every queue's share (members, figures and bot conversations by queue)."""
    return QueueOverview(
        queue=queue,
        members=members.get(queue.id, []),
        figures=figures.get(queue.id),
        with_bot=with_bots.get(queue.id, 0),
        hours=_hours_now(hub, queue.id, now),
    )


async def statuses(hub: HubParts) -> list[Status]:
    """The status catalogue, by id."""
    return await admin_store.list_statuses(hub.store)


# ------------------------------------------------------------------- queues


async def create_queue(hub: HubParts, actor: Principal, queue: Queue) -> QueueOverview:
    """The new queue as the overview shows it; Conflict when the id or number is taken; Invalid when a status it
    allows does not exist."""
    require_role(actor, Role.ADMIN)
    with store_refusals():
        await admin_store.create_queue(hub.store, queue)
    await _audit(hub, actor, "queue.created", f"queue:{queue.id}", after=_audited(queue))
    _changed(hub, queue.id, "created")
    return await _overview_of(hub, queue)


async def update_queue(hub: HubParts, actor: Principal, queue_id: str, fields: Mapping[str, Any]) -> QueueOverview:
    """Change the given fields (those of ``hub.store.admin.update_queue``); the queue as the overview shows it
    now."""
    require_role(actor, Role.ADMIN)
    before = await admin_store.get_queue(hub.store, queue_id)
    with store_refusals():
        queue = await admin_store.update_queue(hub.store, queue_id, fields)
    if queue is None:
        raise _no_queue(queue_id)
    await _audit(
        hub,
        actor,
        "queue.updated",
        f"queue:{queue_id}",
        before=_audited(before) if before is not None else None,
        after=_audited(queue),
    )
    _changed(hub, queue_id, "updated")
    return await _overview_of(hub, queue)


async def delete_queue(hub: HubParts, actor: Principal, queue_id: str) -> None:
    """Conflict (``queue_in_use``) while a channel account routes into it or a conversation in it is open."""
    require_role(actor, Role.ADMIN)
    before = await admin_store.get_queue(hub.store, queue_id)
    if before is None:
        raise _no_queue(queue_id)
    used_by = [a.id for a in hub.settings.accounts if a.queue == queue_id]
    with store_refusals():
        deleted = await admin_store.delete_queue(hub.store, queue_id, used_by_accounts=used_by)
    if not deleted:
        raise _no_queue(queue_id)
    await _audit(hub, actor, "queue.deleted", f"queue:{queue_id}", before=_audited(before))
    _changed(hub, queue_id, "deleted")


async def set_members(hub: HubParts, actor: Principal, queue_id: str, agent_ids: Collection[int]) -> QueueOverview:
    """Replace the queue's members: the queue as the overview shows it now; Invalid when an agent does not exist
    or is deactivated."""
    require_role(actor, *_SUPERVISION)
    members_before = (await admin_store.queue_members(hub.store)).get(queue_id, [])
    with store_refusals():
        members = await admin_store.set_queue_members(hub.store, queue_id, agent_ids)
    if members is None:
        raise _no_queue(queue_id)
    queue = await admin_store.get_queue(hub.store, queue_id)
    assert queue is not None
    await _audit(
        hub,
        actor,
        "queue.members_changed",
        f"queue:{queue_id}",
        before={"members": sorted(members_before)},
        after={"members": sorted(members)},
    )
    _changed(hub, queue_id, "members")
    return await _overview_of(hub, queue)


# ----------------------------------------------------------------- statuses


async def create_status(hub: HubParts, actor: Principal, status: Status) -> Status:
    """Conflict when the id is taken."""
    require_role(actor, Role.ADMIN)
    with store_refusals():
        created = await admin_store.create_status(hub.store, status)
    await _audit(hub, actor, "status.created", f"status:{created.id}", after={"name": created.name})
    return created


async def rename_status(hub: HubParts, actor: Principal, status_id: str, name: str) -> Status:
    require_role(actor, Role.ADMIN)
    before = {s.id: s.name for s in await admin_store.list_statuses(hub.store)}.get(status_id)
    status = await admin_store.update_status(hub.store, status_id, name)
    if status is None:
        raise NotFound("not_found", f"no status {status_id!r}")
    await _audit(hub, actor, "status.updated", f"status:{status.id}", before={"name": before}, after={"name": name})
    return status


async def delete_status(hub: HubParts, actor: Principal, status_id: str) -> None:
    """Conflict (``status_in_use``) while a queue allows it at close."""
    require_role(actor, Role.ADMIN)
    with store_refusals():
        deleted = await admin_store.delete_status(hub.store, status_id)
    if not deleted:
        raise NotFound("not_found", f"no status {status_id!r}")
    await _audit(hub, actor, "status.deleted", f"status:{status_id}")
