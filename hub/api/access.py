"""Who may see and act on a conversation. One place, so every route agrees.

An agent sees conversations offered to them, owned by them or shared with them
(an active participant), and the waiting conversations of their own queues;
they act only on those they own or take part in. Supervisors and admins see
and act on everything.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.errors import ApiError
from hub.api.keys import STORE
from hub.model import Agent, Conversation, ConversationState
from hub.store.conversations import get_conversation
from hub.views import is_supervisor

__all__ = ["can_act", "can_see", "can_take", "conversation_for", "is_supervisor"]


def can_see(
    agent: Agent,
    conversation: Conversation,
    participants: dict[int, str],
    former: set[int] | frozenset[int] = frozenset(),
) -> bool:
    if is_supervisor(agent) or agent.id in participants or agent.id in former:
        return True
    if conversation.state is ConversationState.OFFERED and conversation.offered_agent_id == agent.id:
        return True
    if conversation.owner_agent_id == agent.id and conversation.state is not ConversationState.CLOSED:
        return True
    waiting = conversation.state in (ConversationState.WAITING, ConversationState.OFFERED)
    return waiting and conversation.queue_id in agent.queues


def can_take(
    agent: Agent,
    conversation: Conversation,
    participants: dict[int, str],
    former: set[int] | frozenset[int] = frozenset(),
) -> bool:
    """Members of the conversation's queue may try, whatever state we read.

    The state can change between this read and the write that takes it; the
    write decides the race and answers 409, so a member who lost must not be
    told 403 because the read happened after the winner's commit.
    """
    return conversation.queue_id in agent.queues or can_see(agent, conversation, participants, former)


def can_act(agent: Agent, conversation: Conversation, participants: dict[int, str]) -> bool:
    return is_supervisor(agent) or agent.id in participants


async def conversation_for(
    request: web.Request, agent: Agent, conversation_id: int, *, act: bool, take: bool = False
) -> Conversation:
    """The conversation if ``agent`` may see it (``act``: act on it; ``take``: try to take it); else 404 / 403."""
    found = await get_conversation(request.app[STORE], conversation_id)
    if found is None:
        raise ApiError(404, "not_found", f"no conversation {conversation_id}")
    conversation, participants, former = found
    if act:
        allowed = can_act(agent, conversation, participants)
    elif take:
        allowed = can_take(agent, conversation, participants, former)
    else:
        allowed = can_see(agent, conversation, participants, former)
    if not allowed:
        raise ApiError(403, "forbidden", "this conversation is not yours")
    return conversation
