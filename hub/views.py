"""What an agent's console is sent: JSON shapes shared by the REST API and the event stream.

Plain functions over the model (no aiohttp), so the notifier, which logs events for the consoles outside any
HTTP request, words an agent or a conversation exactly as the API does.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from hub.model import Agent, Identity, Role
from hub.policy import Eligibility

__all__ = ["agent_json", "eligibility_json", "is_supervisor", "jsonable"]


def is_supervisor(agent: Agent) -> bool:
    """Supervisors and admins see and act on every conversation, and hear of every agent's presence."""
    return agent.role in (Role.SUPERVISOR, Role.ADMIN)


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "login": agent.login,
        "display_name": agent.display_name,
        "role": agent.role.value,
        "capacity": agent.capacity,
        "queues": list(agent.queues),
        "presence": {
            "state": agent.presence.value,
            "reason": agent.pause_reason,
            "paid": agent.pause_paid,
            "since": agent.presence_since.isoformat() if agent.presence_since else None,
        },
    }


def eligibility_json(identity: Identity, allowed: Eligibility, queue: str | None) -> dict[str, Any]:
    """What may be sent to ``identity`` now, as ``GET /api/v1/identities/{id}/eligibility`` answers and a webhook
    bot is told with each message; ``queue``: the queue a message to them goes in (its statuses are the ones a
    send-and-close may use)."""
    blocking = allowed.blocking
    return {
        "identity": identity.id,
        "channel": identity.channel.value,
        "account": identity.account_id,
        **allowed.to_json(),
        "alternatives": [a.to_json() for a in blocking.alternatives] if blocking else [],
        "queue": queue,
    }


def jsonable(value: Any) -> Any:
    """``value`` with its dates and datetimes as ISO strings and its tuples as lists, ready for ``json.dumps``."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
