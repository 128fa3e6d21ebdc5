"""Who may see and act on a conversation, for the HTTP routes: the rules are hub.usecases.access.

An agent sees conversations offered to them, owned by them or shared with them
(an active participant), and the waiting conversations of their own queues;
they act only on those they own or take part in. Supervisors and admins see
and act on everything.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.keys import STORE
from hub.model import Agent, Conversation
from hub.usecases import access
from hub.usecases.permissions import can_act, can_see, can_take, is_supervisor

__all__ = ["can_act", "can_see", "can_take", "conversation_for", "is_supervisor"]


async def conversation_for(
    request: web.Request, agent: Agent, conversation_id: int, *, act: bool, take: bool = False
) -> Conversation:
    """The conversation if ``agent`` may see it (``act``: act on it; ``take``: try to take it); else 404 / 403."""
    return await access.conversation_for(request.app[STORE], agent, conversation_id, act=act, take=take)
