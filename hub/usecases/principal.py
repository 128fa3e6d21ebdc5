"""Who is acting: the principal a use case checks and records. Not only a logged-in agent.

An agent acts through the console or the API; an operator acts through the CLI, with an admin's
rights and no agent id (the timeline then names nobody); a bot will act with its own id and role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hub.errors import Forbidden
from hub.model import Agent, Role

__all__ = ["ActorKind", "Principal"]


class ActorKind(StrEnum):
    AGENT = "agent"
    OPERATOR = "operator"  # someone at the hub's command line
    BOT = "bot"
    SYSTEM = "system"  # the hub itself (the out-of-hours answer, hub/out_of_hours.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The acting party. ``id`` is the agent id recorded as ``by`` (None: nobody to name)."""

    id: int | None
    kind: ActorKind
    role: Role
    queues: tuple[str, ...] = ()
    agent: Agent | None = field(default=None, compare=False, repr=False)  # the record, for templates
    address: str | None = None  # where the request came from (the audit log records it), when over HTTP
    bot_id: str | None = None  # a bot's principal: its configured id

    @classmethod
    def of_bot(cls, bot_id: str, queues: tuple[str, ...]) -> Principal:
        """A configured bot ([[bots]]): no agent id, an agent's rights in its own queues only, and only
        while a conversation is with a bot (hub/usecases/permissions.py)."""
        return cls(id=None, kind=ActorKind.BOT, role=Role.AGENT, queues=queues, bot_id=bot_id)

    @classmethod
    def of_agent(cls, agent: Agent, *, address: str | None = None) -> Principal:
        return cls(
            id=agent.id, kind=ActorKind.AGENT, role=agent.role, queues=tuple(agent.queues), agent=agent, address=address
        )

    @property
    def login(self) -> str | None:
        """The acting agent's login (a bot's id), as the audit log names them; None for the command line."""
        if self.bot_id is not None:
            return self.bot_id
        return self.agent.login if self.agent is not None else None

    @classmethod
    def operator(cls) -> Principal:
        """The CLI: an admin's rights, named by no agent id."""
        return cls(id=None, kind=ActorKind.OPERATOR, role=Role.ADMIN)

    @classmethod
    def system(cls) -> Principal:
        """The hub itself, answering on its own (author ``system``): an admin's reach, no agent id."""
        return cls(id=None, kind=ActorKind.SYSTEM, role=Role.ADMIN)

    @property
    def supervises(self) -> bool:
        """Supervisors and admins see and act on every conversation."""
        return self.role in (Role.SUPERVISOR, Role.ADMIN) and self.kind is not ActorKind.BOT

    def agent_id(self) -> int:
        """The id of an actor that must be an agent to do this (it takes part in conversations)."""
        if self.kind is ActorKind.BOT:  # a refusal, not a fault: a bot's token reached an agent's action
            raise Forbidden("agents_only", "a bot replies, hands off or closes; this action is for agents")
        if self.id is None:
            raise ValueError(f"a {self.kind.value} without an agent id cannot take part in a conversation")
        return self.id
