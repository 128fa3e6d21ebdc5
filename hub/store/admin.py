"""Admin configuration in the database: queues (with members and live figures),
statuses, agent administration, and channel-account health.

The configuration file seeds queues and statuses (hub/store/catalogue.py); after
that these tables are the truth and this module edits them. Channel accounts
stay in the file (they hold secrets); only their health is stored.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from hub.model import Agent, ConversationState, Presence, Queue, Status
from hub.store._crud import Conflict, Invalid
from hub.store._db import Store, lost_to_a_concurrent_change
from hub.store.agents import agent_from_row, load_agent
from hub.store.catalogue import load_queue, load_queues
from hub.store.routing import Released, RoutingRefused, release_agent
from hub.store.tables import (
    UTCDateTime,
    account_health,
    agent_queues,
    agents,
    auth_tokens,
    conversations,
    queues,
    statuses,
)

__all__ = [
    "AccountHealth",
    "AgentUpdate",
    "QueueFigures",
    "agent_loads",
    "agent_with_load",
    "create_queue",
    "create_status",
    "delete_queue",
    "delete_status",
    "get_queue",
    "list_account_health",
    "list_agents",
    "list_queues",
    "list_statuses",
    "queue_figures",
    "queue_members",
    "set_queue_members",
    "update_agent",
    "update_queue",
    "update_status",
]

_OPEN = (ConversationState.WAITING.value, ConversationState.OFFERED.value, ConversationState.ACTIVE.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFigures:
    """What a supervisor watches: customers waiting and who could answer them.

    ``ready`` agents have free capacity, ``busy`` ones are ready but full,
    ``paused`` and ``offline`` are by presence; deactivated agents are not counted."""

    waiting: int = 0
    offered: int = 0
    active: int = 0
    longest_wait_seconds: int | None = None
    ready: int = 0
    busy: int = 0
    paused: int = 0
    offline: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentUpdate:
    """An agent after ``update_agent``, and what a deactivation did on the way."""

    agent: Agent
    active: bool
    deactivated: bool = False  # this change made an active agent inactive
    went_offline: bool = False
    tokens_revoked: int = 0
    released: Released | None = None  # their work given back (deactivation only)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountHealth:
    account_id: str
    last_webhook_at: datetime | None = None
    last_send_at: datetime | None = None
    last_send_error: str | None = None
    last_send_error_at: datetime | None = None


# ------------------------------------------------------------------- queues


async def list_queues(store: Store) -> list[Queue]:
    async with store.read() as connection:
        found = await load_queues(connection)
    return sorted(found.values(), key=lambda q: (q.number, q.id))


async def get_queue(store: Store, queue_id: str) -> Queue | None:
    async with store.read() as connection:
        return await load_queue(connection, queue_id)


async def queue_members(store: Store) -> dict[str, list[int]]:
    """queue id -> ids of its active member agents."""
    query = (
        select(agent_queues.c.queue_id, agent_queues.c.agent_id)
        .join(agents, agents.c.id == agent_queues.c.agent_id)
        .where(agents.c.active.is_(True))
        .order_by(agent_queues.c.queue_id, agent_queues.c.agent_id)
    )
    members: dict[str, list[int]] = {}
    async with store.read() as connection:
        for row in await connection.execute(query):
            members.setdefault(row.queue_id, []).append(int(row.agent_id))
    return members


def _load_of(agent_id_column: Any) -> Any:
    """Active conversations owned plus offers pending: the same count routing holds against capacity."""
    owned = (
        select(func.count())
        .select_from(conversations)
        .where(conversations.c.owner_agent_id == agent_id_column, conversations.c.state == ConversationState.ACTIVE)
        .scalar_subquery()
    )
    offered = (
        select(func.count())
        .select_from(conversations)
        .where(conversations.c.offered_agent_id == agent_id_column, conversations.c.state == ConversationState.OFFERED)
        .scalar_subquery()
    )
    return owned + offered


async def agent_loads(store: Store) -> dict[int, int]:
    query = select(agents.c.id, _load_of(agents.c.id).label("load")).where(agents.c.active.is_(True))
    async with store.read() as connection:
        return {int(r.id): int(r.load) for r in await connection.execute(query)}


async def queue_figures(store: Store, now: datetime) -> dict[str, QueueFigures]:
    """Live figures per queue, from two grouped queries (independent of the number of conversations listed)."""
    waiting_state = ConversationState.WAITING.value
    offered_state = ConversationState.OFFERED.value
    conversation_query = (
        select(
            conversations.c.queue_id,
            func.sum(case((conversations.c.state == waiting_state, 1), else_=0)).label("waiting"),
            func.sum(case((conversations.c.state == offered_state, 1), else_=0)).label("offered"),
            func.sum(case((conversations.c.state == ConversationState.ACTIVE.value, 1), else_=0)).label("active"),
            type_coerce(
                func.min(
                    case(
                        (conversations.c.state.in_((waiting_state, offered_state)), conversations.c.waiting_since),
                        else_=None,
                    )
                ),
                UTCDateTime(),
            ).label("oldest"),
        )
        .where(conversations.c.state.in_(_OPEN))
        .group_by(conversations.c.queue_id)
    )
    load = _load_of(agents.c.id)
    agent_query = select(
        agent_queues.c.queue_id,
        agents.c.presence,
        (load >= agents.c.capacity).label("full"),
    ).join(agents, agents.c.id == agent_queues.c.agent_id)
    agent_query = agent_query.where(agents.c.active.is_(True))
    figures: dict[str, dict[str, Any]] = {}
    async with store.read() as connection:
        for row in await connection.execute(conversation_query):
            oldest = row.oldest
            figures.setdefault(row.queue_id, {}).update(
                waiting=int(row.waiting or 0),
                offered=int(row.offered or 0),
                active=int(row.active or 0),
                longest_wait_seconds=max(0, int((now - oldest).total_seconds())) if oldest else None,
            )
        for row in await connection.execute(agent_query):
            entry = figures.setdefault(row.queue_id, {})
            if row.presence == Presence.READY.value:
                key = "busy" if row.full else "ready"
            elif row.presence == Presence.PAUSED.value:
                key = "paused"
            else:
                key = "offline"
            entry[key] = entry.get(key, 0) + 1
    return {queue_id: QueueFigures(**values) for queue_id, values in figures.items()}


def _queue_values(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "number": queue.number,
        "offer_timeout": queue.offer_timeout,
        "url_template": queue.url_template,
        "statuses": list(queue.statuses),
        "transfer_back": queue.transfer_back,
    }


async def _check_statuses(connection: AsyncConnection, wanted: Iterable[str]) -> None:
    wanted = list(wanted)
    if not wanted:
        return
    known = set((await connection.execute(select(statuses.c.id).where(statuses.c.id.in_(wanted)))).scalars())
    missing = [s for s in wanted if s not in known]
    if missing:
        raise Invalid("statuses", f"unknown status {missing[0]!r}")


async def create_queue(store: Store, queue: Queue) -> Queue:
    try:
        async with store.write() as connection:
            await _check_statuses(connection, queue.statuses)
            await connection.execute(queues.insert().values(id=queue.id, **_queue_values(queue)))
    except IntegrityError:
        raise Conflict("queue_exists", f"a queue with id {queue.id!r} already exists") from None
    return queue


async def update_queue(store: Store, queue_id: str, fields: Mapping[str, Any]) -> Queue | None:
    async with store.write() as connection:
        if "statuses" in fields:
            await _check_statuses(connection, fields["statuses"])
        values = dict(fields)
        if "statuses" in values:
            values["statuses"] = list(values["statuses"])
        if values:
            result = await connection.execute(update(queues).where(queues.c.id == queue_id).values(**values))
            if not result.rowcount:
                return None
        return await load_queue(connection, queue_id)


async def delete_queue(store: Store, queue_id: str, *, used_by_accounts: Collection[str]) -> bool:
    """Conflict while a channel account routes into it or a conversation in it is still open."""
    if used_by_accounts:
        raise Conflict(
            "queue_in_use",
            f"queue {queue_id!r} receives the traffic of account(s) {', '.join(sorted(used_by_accounts))}; "
            "change the configuration first",
            accounts=sorted(used_by_accounts),
        )
    async with store.write() as connection:
        open_count = (
            await connection.execute(
                select(func.count())
                .select_from(conversations)
                .where(conversations.c.queue_id == queue_id, conversations.c.state.in_(_OPEN))
            )
        ).scalar_one()
        if open_count:
            raise Conflict(
                "queue_in_use", f"queue {queue_id!r} still has {open_count} open conversation(s)", open=int(open_count)
            )
        result = await connection.execute(delete(queues).where(queues.c.id == queue_id))
        if not result.rowcount:
            return False
        await connection.execute(delete(agent_queues).where(agent_queues.c.queue_id == queue_id))
    return True


async def set_queue_members(store: Store, queue_id: str, agent_ids: Collection[int]) -> list[int] | None:
    """Replace the queue's members. None: no such queue; Invalid: an agent does not exist or is deactivated."""
    wanted = sorted(set(agent_ids))
    async with store.write() as connection:
        if await load_queue(connection, queue_id) is None:
            return None
        if wanted:
            known = set(
                (
                    await connection.execute(
                        select(agents.c.id).where(agents.c.id.in_(wanted), agents.c.active.is_(True))
                    )
                ).scalars()
            )
            missing = [a for a in wanted if a not in known]
            if missing:
                raise Invalid("agents", f"agent {missing[0]} does not exist or is deactivated")
        await connection.execute(delete(agent_queues).where(agent_queues.c.queue_id == queue_id))
        if wanted:
            await connection.execute(agent_queues.insert(), [{"agent_id": a, "queue_id": queue_id} for a in wanted])
    return wanted


# ----------------------------------------------------------------- statuses


async def list_statuses(store: Store) -> list[Status]:
    async with store.read() as connection:
        rows = (await connection.execute(select(statuses).order_by(statuses.c.id))).all()
    return [Status(id=r.id, name=r.name) for r in rows]


async def create_status(store: Store, status: Status) -> Status:
    try:
        async with store.write() as connection:
            await connection.execute(statuses.insert().values(id=status.id, name=status.name))
    except IntegrityError:
        raise Conflict("status_exists", f"a status with id {status.id!r} already exists") from None
    return status


async def update_status(store: Store, status_id: str, name: str) -> Status | None:
    async with store.write() as connection:
        result = await connection.execute(update(statuses).where(statuses.c.id == status_id).values(name=name))
    return Status(id=status_id, name=name) if result.rowcount else None


async def delete_status(store: Store, status_id: str) -> bool:
    """Conflict while a queue allows it at close (remove it from the queue first).
    Closed conversations keep the id they were closed with."""
    async with store.write() as connection:
        users = [q.id for q in (await load_queues(connection)).values() if status_id in q.statuses]
        if users:
            raise Conflict(
                "status_in_use", f"status {status_id!r} is allowed in queue(s) {', '.join(sorted(users))}", queues=users
            )
        result = await connection.execute(delete(statuses).where(statuses.c.id == status_id))
    return bool(result.rowcount)


# ------------------------------------------------------------------- agents


async def list_agents(store: Store, *, include_inactive: bool = False) -> list[tuple[Agent, bool]]:
    """(agent, active) ordered by login; two queries whatever the number of agents."""
    query = select(agents).order_by(agents.c.login)
    if not include_inactive:
        query = query.where(agents.c.active.is_(True))
    memberships: dict[int, list[str]] = {}
    async with store.read() as connection:
        rows = (await connection.execute(query)).all()
        for row in await connection.execute(select(agent_queues)):
            memberships.setdefault(int(row.agent_id), []).append(row.queue_id)
    return [(agent_from_row(row, memberships.get(int(row.id), [])), bool(row.active)) for row in rows]


async def agent_with_load(store: Store, agent_id: int) -> tuple[Agent, bool, int] | None:
    """One agent, active or not: (agent, active, load), in one read; ``load`` as ``agent_loads`` counts it (0 for
    an agent who is not active). None when there is no such agent."""
    query = select(agents.c.active, _load_of(agents.c.id).label("load")).where(agents.c.id == agent_id)
    async with store.read() as connection:
        row = (await connection.execute(query)).first()
        agent = await load_agent(connection, agent_id) if row is not None else None
    if row is None or agent is None:
        return None
    return agent, bool(row.active), int(row.load) if row.active else 0


_RACE_ATTEMPTS = 3


def _lost_race(exc: BaseException) -> bool:
    """A hand-off on one of the agent's conversations committed first (or PostgreSQL chose this transaction as
    a deadlock's victim): nothing of ours was committed, and trying again sees the conversation as it is now."""
    if isinstance(exc, RoutingRefused):
        return exc.code == "conflict"
    return lost_to_a_concurrent_change(exc)


async def update_agent(
    store: Store,
    agent_id: int,
    fields: Mapping[str, Any],
    *,
    now: datetime,
    queue_ids: Collection[str] | None = None,
    password_hash: str | None = None,
    actor_id: int | None = None,
) -> AgentUpdate | None:
    """Change an agent's profile, in one transaction.

    A new password revokes every live token. A deactivation (``active: False``)
    also sets them offline and gives back their work (``hub.store.routing.release_agent``):
    all of it commits together or not at all, so no conversation is left with an
    owner who can no longer log in. Deactivating an inactive agent again changes
    nothing (it only releases what an older hub may have left behind).

    A transaction that loses a race with a concurrent hand-off is tried again (up to three times in all),
    here rather than in each caller, so the admin API and ``channelhub agents`` behave alike; after that the
    last error is raised (``RoutingRefused`` with code ``conflict``, or the database's)."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(_lost_race), stop=stop_after_attempt(_RACE_ATTEMPTS), reraise=True
    )
    async for attempt in retrying:
        with attempt:
            return await _update_agent_once(
                store, agent_id, fields, now=now, queue_ids=queue_ids, password_hash=password_hash, actor_id=actor_id
            )
    raise AssertionError("unreachable")  # pragma: no cover


async def _update_agent_once(
    store: Store,
    agent_id: int,
    fields: Mapping[str, Any],
    *,
    now: datetime,
    queue_ids: Collection[str] | None,
    password_hash: str | None,
    actor_id: int | None,
) -> AgentUpdate | None:
    values = dict(fields)
    deactivating = values.get("active") is False
    if password_hash is not None:
        values["password_hash"] = password_hash
    async with store.write() as connection:
        # lock the agent first: the sweeper, take and transfers check this row, so nothing new
        # reaches them once it is inactive
        query = select(agents.c.active, agents.c.presence).where(agents.c.id == agent_id)
        if store.dialect == "postgresql":
            query = query.with_for_update()
        before = (await connection.execute(query)).first()
        if before is None:
            return None
        if deactivating and before.presence != Presence.OFFLINE.value:
            values.update(presence=Presence.OFFLINE.value, presence_since=now, pause_reason=None, pause_paid=None)
        if queue_ids is not None:
            wanted = sorted(set(queue_ids))
            known = set((await connection.execute(select(queues.c.id).where(queues.c.id.in_(wanted)))).scalars())
            missing = [q for q in wanted if q not in known]
            if missing:
                raise Invalid("queues", f"unknown queue {missing[0]!r}")
            await connection.execute(delete(agent_queues).where(agent_queues.c.agent_id == agent_id))
            if wanted:
                await connection.execute(agent_queues.insert(), [{"agent_id": agent_id, "queue_id": q} for q in wanted])
        if values:
            await connection.execute(update(agents).where(agents.c.id == agent_id).values(**values))
        revoked = 0
        if password_hash is not None or deactivating:
            result = await connection.execute(
                update(auth_tokens)
                .where(auth_tokens.c.agent_id == agent_id, auth_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            revoked = int(result.rowcount)
        released = (
            await release_agent(connection, store.dialect, agent_id, now=now, actor_id=actor_id)
            if deactivating
            else None
        )
        agent = await load_agent(connection, agent_id)
        active = (await connection.execute(select(agents.c.active).where(agents.c.id == agent_id))).scalar_one()
    assert agent is not None
    return AgentUpdate(
        agent=agent,
        active=bool(active),
        deactivated=deactivating and bool(before.active),
        went_offline=deactivating and before.presence != Presence.OFFLINE.value,
        tokens_revoked=revoked,
        released=released,
    )


# ---------------------------------------------------------- account health


async def list_account_health(store: Store) -> dict[str, AccountHealth]:
    async with store.read() as connection:
        rows = (await connection.execute(select(account_health))).all()
    return {
        r.account_id: AccountHealth(
            account_id=r.account_id,
            last_webhook_at=r.last_webhook_at,
            last_send_at=r.last_send_at,
            last_send_error=r.last_send_error,
            last_send_error_at=r.last_send_error_at,
        )
        for r in rows
    }
