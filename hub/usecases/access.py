"""Load a conversation for an actor, checked against hub.usecases.permissions."""

from __future__ import annotations

from hub.model import Conversation
from hub.store import Store
from hub.store.conversations import get_conversation
from hub.usecases.permissions import Actor, permitted

__all__ = ["conversation_for"]


async def conversation_for(
    store: Store, actor: Actor, conversation_id: int, *, act: bool, take: bool = False
) -> Conversation:
    """The conversation if ``actor`` may see it (``act``: act on it; ``take``: try to take it).

    Raises NotFound (no such conversation) or Forbidden (not theirs)."""
    return permitted(actor, await get_conversation(store, conversation_id), conversation_id, act=act, take=take)
