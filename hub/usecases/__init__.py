"""Use cases: what an actor can do to the hub, whoever the actor and however they ask.

Plain async functions, one small module per area, that take the hub's parts (``HubParts``), typed
input and the acting ``Principal``, and return a typed outcome or raise a ``hub.errors.Refusal``.
The HTTP API, the CLI and (later) bots call them; none of them imports aiohttp.
"""

from __future__ import annotations

from hub.usecases._parts import HubParts, OutboxPort, Parts, RouterPort
from hub.usecases.principal import ActorKind, Principal

__all__ = ["ActorKind", "HubParts", "OutboxPort", "Parts", "Principal", "RouterPort"]
