"""Logging out: the session or token ends, and the agent leaves the desk.

An agent who logged out sees no offers, so one made to them would only run out and pause them (unpaid,
"missed offer") while the customer waited the queue's whole offer time. Logging out therefore sets them
offline, as choosing *Offline* does: their open offers go back at once and on to the next agent. The
conversations they own stay theirs, as they do for an agent who goes offline.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.audit import record
from hub.bus import BusEvent
from hub.events import AgentPresence
from hub.model import Agent
from hub.store.agents import end_session
from hub.store.offers import withdraw_offers
from hub.usecases._parts import HubParts
from hub.usecases.principal import Principal
from hub.views import agent_json

__all__ = ["LoggedOut", "log_out"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedOut:
    """The agent as the logout left them (None: they were offline already) and the events published."""

    offline: Agent | None
    events: list[BusEvent]


def _presence_of(agent: Agent) -> dict[str, object]:
    return {"state": agent.presence.value, "reason": agent.pause_reason, "paid": agent.pause_paid}


async def log_out(hub: HubParts, actor: Principal, token: str) -> LoggedOut:
    """End the session (or revoke the bearer token) ``token`` of the acting agent, set them offline and give
    back their open offers."""
    agent_id = actor.agent_id()
    now = hub.clock()
    ended = await end_session(hub.store, token, agent_id, now=now)
    await record(hub.store, "auth.logout", actor=actor, at=now)
    events: list[BusEvent] = []
    if ended.offline is not None and ended.before is not None:
        await record(
            hub.store,
            "presence.changed",
            actor=actor,
            at=now,
            target=f"agent:{ended.offline.login}",
            before=_presence_of(ended.before),
            after=_presence_of(ended.offline),
        )
        events.append(AgentPresence(agent_id=agent_id, agent=agent_json(ended.offline)))
        events.extend(await withdraw_offers(hub.store, agent_id, now=now))
    hub.bus.publish_all(events)
    if events and hub.router is not None:
        await hub.router.sweep()  # the offers they gave back go to the next agent now
    return LoggedOut(offline=ended.offline, events=events)
