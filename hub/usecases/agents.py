"""Create an agent, or change their account: role, queues, capacity, name, password, (de)activation.

A deactivation gives back the agent's work in the same transaction
(hub.store.admin.update_agent); this module adds who may ask, and the events that
tell the consoles and the router, so the admin API and ``channelhub agents`` do
exactly the same thing. Nobody changes their own role or deactivates themselves.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from hub.audit import record
from hub.bus import BusEvent
from hub.errors import Conflict, Forbidden, Invalid, NotFound
from hub.events import AgentDeactivated, AgentPresence, QueueChanged
from hub.model import Agent, Role
from hub.passwords import hash_password
from hub.store import agents as agent_store
from hub.store.admin import AgentUpdate, agent_loads, list_agents, list_queues, update_agent
from hub.store.admin import agent_with_load as store_agent_with_load
from hub.store.agents import AgentExists, get_agent
from hub.store.routing import Released, RoutingRefused
from hub.usecases._parts import HubParts
from hub.usecases._store_refusals import store_refusals
from hub.usecases.permissions import require_role
from hub.usecases.principal import Principal
from hub.views import agent_json

__all__ = [
    "AgentChange",
    "AgentChanged",
    "AgentUpdate",
    "ListedAgent",
    "NewAgent",
    "Released",
    "agent_with_load",
    "agents_with_loads",
    "change_agent",
    "create_agent",
    "deactivate_agent",
    "reactivate_agent",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ListedAgent:
    """An agent as supervisors list them: whether the account is active, and their load (active conversations
    owned plus offers pending)."""

    agent: Agent
    active: bool
    load: int


async def agents_with_loads(hub: HubParts, *, include_inactive: bool) -> list[ListedAgent]:
    """Every agent ordered by login (the deactivated ones too when asked), each with their load."""
    loads = await agent_loads(hub.store)
    found = await list_agents(hub.store, include_inactive=include_inactive)
    return [ListedAgent(agent=a, active=active, load=loads.get(a.id, 0)) for a, active in found]


async def agent_with_load(hub: HubParts, agent_id: int) -> ListedAgent:
    """One agent, active or not, with their load."""
    found = await store_agent_with_load(hub.store, agent_id)
    if found is None:
        raise NotFound("not_found", f"no agent {agent_id}")
    agent, active, load = found
    return ListedAgent(agent=agent, active=active, load=load)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAgent:
    """An agent to create; ``password`` in clear, hashed by the store."""

    login: str
    password: str
    role: Role = Role.AGENT
    display_name: str | None = None
    capacity: int = 2
    queues: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentChange:
    """What to change; None leaves a field as it is. ``queues`` replaces the memberships."""

    role: Role | None = None
    display_name: str | None = None
    capacity: int | None = None
    queues: tuple[str, ...] | None = None
    password: str | None = None
    active: bool | None = None

    def fields(self) -> dict[str, Any]:
        """The profile fields ``update_agent`` takes (queues and password go separately)."""
        given = {
            "role": self.role.value if self.role is not None else None,
            "display_name": self.display_name,
            "capacity": self.capacity,
            "active": self.active,
        }
        return {k: v for k, v in given.items() if v is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentChanged:
    """The agent after the change (``update.released``: what a deactivation gave back), their load now,
    and the events published."""

    update: AgentUpdate
    load: int
    events: list[BusEvent]


async def create_agent(hub: HubParts, actor: Principal, new: NewAgent, *, also_known: Collection[str] = ()) -> Agent:
    """Create the agent as an admin (active, offline). Raises Forbidden (not an admin), Invalid (an unknown
    queue) or Conflict (``agent_exists``: the login is taken).

    ``also_known``: queue ids that exist besides the database's. ``channelhub agents create`` passes the
    configuration file's, which reach the database only when the hub starts."""
    require_role(actor, Role.ADMIN)
    await _require_known_queues(hub, new.queues, also_known)
    try:
        agent = await agent_store.create_agent(
            hub.store,
            login=new.login,
            password=new.password,
            role=new.role,
            now=hub.clock(),
            display_name=new.display_name,
            capacity=new.capacity,
            queues=list(new.queues),
        )
    except AgentExists:
        raise Conflict("agent_exists", f"an agent with login {new.login!r} already exists") from None
    await record(
        hub.store,
        "agent.created",
        actor=actor,
        at=hub.clock(),
        target=f"agent:{agent.login}",
        after={"role": agent.role.value, "capacity": agent.capacity, "queues": sorted(agent.queues)},
    )
    return agent


async def _require_known_queues(hub: HubParts, wanted: tuple[str, ...], also_known: Collection[str] = ()) -> None:
    known = {q.id for q in await list_queues(hub.store)} | set(also_known)
    missing = [q for q in wanted if q not in known]
    if missing:
        raise Invalid("unknown_queue", f"unknown queue {missing[0]!r}", field="queues")


async def change_agent(hub: HubParts, actor: Principal, agent_id: int, change: AgentChange) -> AgentChanged:
    """Apply the change as an admin, tell the consoles and the router, and return the agent as it is now.

    Raises Forbidden (not an admin; their own role or deactivation), Invalid (an unknown queue), NotFound (no
    such agent) or Conflict (hand-offs on the agent's conversations kept getting there first)."""
    require_role(actor, Role.ADMIN)
    if agent_id == actor.id:
        if change.role is not None and change.role is not actor.role:
            raise Forbidden("own_account", "nobody changes their own role")
        if change.active is False:
            raise Forbidden("own_account", "nobody deactivates themselves")
    if change.queues is not None:
        await _require_known_queues(hub, change.queues)
    password_hash = await hash_password(change.password) if change.password is not None else None
    before = await get_agent(hub.store, agent_id)
    try:  # a hand-off racing a deactivation is retried inside update_agent
        with store_refusals():
            updated = await update_agent(
                hub.store,
                agent_id,
                change.fields(),
                now=hub.clock(),
                queue_ids=list(change.queues) if change.queues is not None else None,
                password_hash=password_hash,
                actor_id=actor.id,
            )
    except RoutingRefused:
        raise Conflict("conflict", "the agent's conversations changed meanwhile; try again") from None
    if updated is None:
        raise NotFound("not_found", f"no agent {agent_id}")
    agent = updated.agent
    await _audit(hub, actor, change, before, updated)
    events: list[BusEvent] = [QueueChanged(queue_id=queue_id, action="members") for queue_id in change.queues or ()]
    if updated.released is not None:
        events.extend(updated.released.events)
    if updated.went_offline or updated.deactivated:
        events.append(AgentPresence(agent_id=agent.id, agent=agent_json(agent)))
    if updated.deactivated:  # the consoles the agent still has open are closed (hub.api.ws)
        events.append(AgentDeactivated(agent_id=agent.id))
    hub.bus.publish_all(events)
    if updated.released is not None and hub.router is not None:
        await hub.router.sweep()  # the next agent's offer exists when the admin gets the answer
    loads = await agent_loads(hub.store)
    return AgentChanged(update=updated, load=loads.get(agent.id, 0), events=events)


def _audited(agent: Agent) -> dict[str, Any]:
    return {
        "login": agent.login,
        "display_name": agent.display_name,
        "role": agent.role.value,
        "capacity": agent.capacity,
        "queues": sorted(agent.queues),
    }


async def _audit(
    hub: HubParts, actor: Principal, change: AgentChange, before: Agent | None, updated: AgentUpdate
) -> None:
    """``agent.updated`` (or ``agent.deactivated`` / ``agent.reactivated``) with the profile before and after;
    a new password is noted, never recorded."""
    if change.active is False:
        action = "agent.deactivated"
    elif change.active is True:
        action = "agent.reactivated"
    else:
        action = "agent.updated"
    after: dict[str, Any] = {**_audited(updated.agent), "active": updated.active}
    if change.password is not None:
        after["password_changed"] = True
    await record(
        hub.store,
        action,
        actor=actor,
        at=hub.clock(),
        target=f"agent:{updated.agent.login}",
        before=_audited(before) if before is not None else None,
        after=after,
    )


async def deactivate_agent(hub: HubParts, actor: Principal, agent_id: int) -> AgentChanged:
    """No more logins, sessions and tokens revoked, offline, their work given back. Repeating changes nothing."""
    return await change_agent(hub, actor, agent_id, AgentChange(active=False))


async def reactivate_agent(hub: HubParts, actor: Principal, agent_id: int) -> AgentChanged:
    """Let a deactivated agent log in again; they start offline."""
    return await change_agent(hub, actor, agent_id, AgentChange(active=True))
