"""Who may see and act on a conversation, and who may do admin work, for the API's principals (agents, bots,
operators). Pure rules: no I/O.

The access rule itself is ``hub.lifecycle.allowed``, the one the conversation's state machine asks too, so every
actor and every route agrees: an agent sees conversations offered to them, owned by them or shared with them, and
the waiting conversations of their own queues; they act only on those they take part in. Supervisors and admins
see and act on everything. What is added here is the principals' side: a bot sees only its queues' conversations
while they are with a bot, and a refusal's error.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from hub.errors import Forbidden, NotFound
from hub.lifecycle import Verb, allowed
from hub.model import Conversation, ConversationState, Role

__all__ = ["Actor", "Found", "can_act", "can_see", "can_take", "is_bot", "is_supervisor", "permitted", "require_role"]

Found = tuple[Conversation, Collection[int], Collection[int]]
"""A conversation as read for a permission check: it, its participants, and its former participants."""


class Actor(Protocol):
    """An ``Agent`` or a ``Principal``: an id (None for an operator), a role and queues."""

    @property
    def id(self) -> int | None: ...

    @property
    def role(self) -> Role: ...

    @property
    def queues(self) -> tuple[str, ...]: ...


def require_role(actor: Actor, *roles: Role) -> None:
    """Forbidden unless the actor has one of ``roles``."""
    if actor.role not in roles:
        raise Forbidden("forbidden", f"this needs the role {' or '.join(r.value for r in roles)}")


def is_supervisor(actor: Actor) -> bool:
    return actor.role in (Role.SUPERVISOR, Role.ADMIN) and not is_bot(actor)


def is_bot(actor: Actor) -> bool:
    """A bot's principal (hub/usecases/principal.py): it sees and acts only in its queues, only while the
    conversation is with a bot."""
    return getattr(actor, "bot_id", None) is not None


def can_see(
    actor: Actor,
    conversation: Conversation,
    participants: Collection[int],
    former: Collection[int] = frozenset(),
) -> bool:
    return _allowed(Verb.SEE, actor, conversation, participants, former)


def can_take(
    actor: Actor,
    conversation: Conversation,
    participants: Collection[int],
    former: Collection[int] = frozenset(),
) -> bool:
    """Members of the conversation's queue may try, whatever state we read.

    The state can change between this read and the write that takes it; the
    write decides the race and answers 409, so a member who lost must not be
    told 403 because the read happened after the winner's commit.
    """
    return _allowed(Verb.TAKE, actor, conversation, participants, former)


def can_act(actor: Actor, conversation: Conversation, participants: Collection[int]) -> bool:
    return _allowed(Verb.ACT, actor, conversation, participants, frozenset())


def _allowed(
    verb: Verb, actor: Actor, conversation: Conversation, participants: Collection[int], former: Collection[int]
) -> bool:
    return allowed(
        verb,
        conversation,
        agent_id=actor.id,
        supervises=is_supervisor(actor),
        queues=actor.queues,
        present=participants,
        former=former,
    )


def permitted(
    actor: Actor, found: Found | None, conversation_id: int, *, act: bool, take: bool = False
) -> Conversation:
    """The conversation if ``actor`` may see it (``act``: act on it; ``take``: try to take it).

    Raises NotFound (``found`` is None: no such conversation) or Forbidden (not theirs)."""
    if found is None:
        raise NotFound("not_found", f"no conversation {conversation_id}")
    conversation, participants, former = found
    if is_bot(actor):
        # a bot never sees a conversation outside its queues: not even that it exists
        if conversation.queue_id not in actor.queues:
            raise NotFound("not_found", f"no conversation {conversation_id}")
        if (act or take) and conversation.state is not ConversationState.BOT:
            raise Forbidden("not_with_bot", "the conversation is no longer with a bot")
        return conversation
    if act:
        allowed = can_act(actor, conversation, participants)
    elif take:
        allowed = can_take(actor, conversation, participants, former)
    else:
        allowed = can_see(actor, conversation, participants, former)
    if not allowed:
        raise Forbidden("forbidden", "this conversation is not yours")
    return conversation
