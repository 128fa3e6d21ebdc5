"""Co-browsing rooms: the agent makes one from a conversation, the hub sends the customer its link.

Only two parties ever join a room: the agent who made it (logged in) and whoever holds the customer's
token (the link the hub sent). Both links stop working at ``expires_at``. The invitation goes out as an
ordinary reply (``hub.usecases.outbound.reply``), so the outbound policy applies to it as to any reply;
when it refuses (the customer's window has closed, the conversation is closed), the room is made all the
same and the refusal comes back as a warning: the agent may give the link another way (ADR 0032).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from hub.errors import Conflict, Forbidden, NotFound, Refusal
from hub.model import Message
from hub.store.rooms import StoredRoom, create_room, get_room
from hub.usecases._parts import HubParts
from hub.usecases.access import conversation_for
from hub.usecases.outbound import Send, reply
from hub.usecases.principal import Principal

__all__ = [
    "ROOM_PATH",
    "Opened",
    "Side",
    "StoredRoom",
    "admit_agent",
    "admit_customer",
    "create",
    "invitation_text",
]

ROOM_PATH = "/rooms/{id}"


class Side(StrEnum):
    AGENT = "agent"
    CUSTOMER = "customer"


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened:
    """A new room: its links, and what became of the invitation (``message`` sent, or ``warnings``)."""

    room: StoredRoom
    agent_url: str
    customer_url: str
    message: Message | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.room.id,
            "agent_url": self.agent_url,
            "customer_url": self.customer_url,
            "expires_at": self.room.expires_at,
            "conversation": self.room.conversation_id,
            "message": self.message.id if self.message is not None else None,
            "warnings": self.warnings,
        }


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_text(url: str, minutes: int) -> str:
    """What the customer receives: one line and the link."""
    return f"Join me in a video room to look at this together (the link works for {minutes} minutes): {url}"


def _warning(refusal: Refusal) -> dict[str, Any]:
    return {"code": refusal.code, "message": f"the link was not sent: {refusal.message}", **refusal.fields}


async def create(hub: HubParts, actor: Principal, conversation_id: int) -> Opened:
    """A room for the conversation (the actor must be able to act on it), its link sent to the customer."""
    await conversation_for(hub.store, actor, conversation_id, act=True)
    now = hub.clock()
    token = secrets.token_urlsafe(24)
    room = StoredRoom(
        id=secrets.token_urlsafe(12),
        conversation_id=conversation_id,
        agent_id=actor.agent_id(),
        customer_token_hash=_hash(token),
        created_at=now,
        expires_at=now + timedelta(minutes=hub.settings.rooms.link_minutes),
    )
    await create_room(hub.store, room)
    base = hub.settings.server.public_url.rstrip("/") + ROOM_PATH.format(id=room.id)
    agent_url, customer_url = base, f"{base}?token={token}"
    text = invitation_text(customer_url, hub.settings.rooms.link_minutes)
    try:
        replied = await reply(hub, actor, conversation_id, Send(text=text))
    except Refusal as refusal:
        return Opened(room=room, agent_url=agent_url, customer_url=customer_url, warnings=[_warning(refusal)])
    return Opened(room=room, agent_url=agent_url, customer_url=customer_url, message=replied.message)


async def _live_room(hub: HubParts, room_id: str, now: datetime) -> StoredRoom:
    room = await get_room(hub.store, room_id) if 0 < len(room_id) <= 32 else None
    if room is None:
        raise NotFound("not_found", "no such room")
    if now >= room.expires_at:
        raise Conflict("room_expired", "this room's links have expired", expired_at=room.expires_at)
    return room


async def admit_agent(hub: HubParts, actor: Principal, room_id: str) -> StoredRoom:
    """The room, for the agent who made it; Forbidden for any other agent, Conflict once it has expired."""
    room = await _live_room(hub, room_id, hub.clock())
    if actor.id != room.agent_id:
        raise Forbidden("forbidden", "this room belongs to another agent")
    return room


async def admit_customer(hub: HubParts, room_id: str, token: str) -> StoredRoom:
    """The room, for whoever holds its customer token; Forbidden for a wrong token."""
    room = await _live_room(hub, room_id, hub.clock())
    if not hmac.compare_digest(_hash(token).encode(), room.customer_token_hash.encode()):
        raise Forbidden("forbidden", "this link does not open this room")
    return room
