"""What a send reads before it is accepted: the customer's identity, their open conversation, a stored message."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.model import Conversation, ConversationState, Identity, Message
from hub.store._db import Store
from hub.store._rows import identity_from_row, message_from_row
from hub.store.conversations import conversation_from_row
from hub.store.tables import conversations, identities, messages, participants

__all__ = ["get_message", "load_identity", "open_conversation_of"]


async def load_identity(store: Store, identity_id: int) -> Identity | None:
    async with store.read() as connection:
        row = (await connection.execute(select(identities).where(identities.c.id == identity_id))).first()
    return None if row is None else identity_from_row(row)


async def get_message(store: Store, message_id: int) -> tuple[Message, dict[str, Any] | None, str | None] | None:
    """The message, its send plan and its tag."""
    async with store.read() as connection:
        row = (await connection.execute(select(messages).where(messages.c.id == message_id))).first()
    return None if row is None else (message_from_row(row), row.send_plan, row.tag)


async def open_conversation_of(store: Store, identity_id: int) -> tuple[Conversation, dict[int, str]] | None:
    """The identity's open conversation and its current participants, if any."""
    async with store.read() as connection:
        row = (
            await connection.execute(
                select(conversations).where(
                    conversations.c.identity_id == identity_id,
                    conversations.c.state != ConversationState.CLOSED.value,
                )
            )
        ).first()
        if row is None:
            return None
        people = await connection.execute(
            select(participants.c.agent_id, participants.c.role).where(
                participants.c.conversation_id == row.id, participants.c.left_at.is_(None)
            )
        )
        return conversation_from_row(row), {int(p.agent_id): str(p.role) for p in people}
