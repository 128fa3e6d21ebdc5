"""Reading conversations and who takes part in them (the API's access checks and views)."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Channel, Conversation, ConversationState
from hub.store._db import Store
from hub.store.tables import conversations, participants

__all__ = [
    "ConversationAccess",
    "conversation_from_row",
    "get_conversation",
    "load_conversation",
    "load_former_participants",
    "load_participants",
]


def conversation_from_row(row: Any) -> Conversation:
    return Conversation(
        id=int(row.id),
        account_id=row.account_id,
        channel=Channel(row.channel),
        identity_id=int(row.identity_id),
        queue_id=row.queue_id,
        state=ConversationState(row.state),
        waiting_since=row.waiting_since,
        opened_at=row.opened_at,
        owner_agent_id=row.owner_agent_id,
        offered_agent_id=row.offered_agent_id,
        offer_deadline=row.offer_deadline,
        offered_at=row.offered_at,
        important=bool(row.important),
        status_id=row.status_id,
        ticket_id=row.ticket_id,
        closed_at=row.closed_at,
        last_message_at=row.last_message_at,
    )


async def load_conversation(connection: AsyncConnection, conversation_id: int) -> Conversation | None:
    row = (await connection.execute(select(conversations).where(conversations.c.id == conversation_id))).first()
    return None if row is None else conversation_from_row(row)


async def load_participants(connection: AsyncConnection, conversation_id: int) -> dict[int, str]:
    """agent id -> role (owner | invited) of everyone currently in the conversation."""
    rows = await connection.execute(
        select(participants.c.agent_id, participants.c.role).where(
            participants.c.conversation_id == conversation_id, participants.c.left_at.is_(None)
        )
    )
    return {int(r.agent_id): str(r.role) for r in rows}


async def load_former_participants(connection: AsyncConnection, conversation_id: int) -> set[int]:
    """Agents who took part and left (they may still read the history)."""
    rows = await connection.execute(
        select(participants.c.agent_id).where(
            participants.c.conversation_id == conversation_id, participants.c.left_at.is_not(None)
        )
    )
    return {int(r) for r in rows.scalars()}


class ConversationAccess(NamedTuple):
    conversation: Conversation
    participants: dict[int, str]  # current: agent id -> owner | invited
    former: set[int]  # agents who took part earlier


async def get_conversation(store: Store, conversation_id: int) -> ConversationAccess | None:
    """The conversation and who takes (or took) part in it, or None."""
    async with store.read() as connection:
        conversation = await load_conversation(connection, conversation_id)
        if conversation is None:
            return None
        current = await load_participants(connection, conversation_id)
        former = await load_former_participants(connection, conversation_id)
        return ConversationAccess(conversation, current, former - set(current))
