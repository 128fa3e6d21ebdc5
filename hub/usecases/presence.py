"""An agent sets their own presence: ready, paused (with a reason, paid unless said otherwise) or offline.

The change and its ``presence.changed`` audit entry commit together. The consoles and the router are told
(``AgentPresence``); an agent who is no longer ready gives back their open offers at once, and the router runs
a pass so that an offer waiting for this agent is made, or moves on from them, before the answer.
"""

from __future__ import annotations

from typing import Any

from hub.audit import record
from hub.errors import Forbidden
from hub.events import AgentPresence
from hub.model import Agent, Presence
from hub.store.agents import set_presence
from hub.store.offers import withdraw_offers
from hub.usecases._parts import HubParts
from hub.usecases.principal import Principal

__all__ = ["DEFAULT_PAUSE_REASON", "set_my_presence"]

#: the reason a pause is given when the agent names none
DEFAULT_PAUSE_REASON = "pause"


async def set_my_presence(
    hub: HubParts, actor: Principal, presence: Presence, *, reason: str | None = None, paid: bool | None = None
) -> Agent | None:
    """The acting agent's presence, as it is now; None when the agent no longer exists."""
    agent = actor.agent
    if agent is None:
        raise Forbidden("agents_only", "only an agent has a presence")
    if presence is Presence.PAUSED and not reason:
        reason = DEFAULT_PAUSE_REASON
    now = hub.clock()
    async with hub.store.write() as connection:
        updated = await set_presence(connection, agent.id, presence, now=now, reason=reason, paid=paid)
        if updated is not None:  # in the same transaction as the change
            await record(
                hub.store,
                "presence.changed",
                actor=actor,
                at=now,
                target=f"agent:{agent.login}",
                before=_presence_of(agent),
                after=_presence_of(updated),
                connection=connection,
            )
    if updated is None:
        return None
    hub.bus.publish(AgentPresence(agent_id=agent.id))
    if presence is not Presence.READY:
        hub.bus.publish_all(await withdraw_offers(hub.store, agent.id, now=hub.clock()))
    if hub.router is not None:
        await hub.router.sweep()  # an offer may wait for this agent, or move on from them
    return updated


def _presence_of(agent: Agent) -> dict[str, Any]:
    return {"state": agent.presence.value, "reason": agent.pause_reason, "paid": agent.pause_paid}
