"""The hub's own answer outside a queue's business hours, for a queue without a bot.

A customer who writes while their conversation waits in a closed queue (``[queues.hours]``) is told once per
conversation when the queue opens: the queue's ``template`` (with the variable ``opening``) or its ``message``.
It is the closed queue's answer (hub/usecases/closed_queue.py), sent as any reply is (hub/usecases/outbound.py:
policy, outbox), by the hub itself (author ``system``).
A queue with a bot leaves this to its bot (hub/bots/runner.py); the router offers the conversation at the
opening (hub/router.py).
"""

from __future__ import annotations

from hub.hours import opening_text
from hub.model import ConversationState
from hub.store.conversations import get_conversation
from hub.store.out_of_hours import claim_out_of_hours, out_of_hours_answered, release_out_of_hours
from hub.usecases._parts import HubParts
from hub.usecases.bots import bot_of_queue
from hub.usecases.closed_queue import closed_now
from hub.usecases.outbound import Replied, reply
from hub.usecases.principal import Principal

__all__ = ["answer_out_of_hours"]


async def answer_out_of_hours(hub: HubParts, conversation_id: int) -> Replied | None:
    """Answer a customer who wrote to a waiting conversation of a closed queue without a bot, once per
    conversation; None when there is nothing to say (open, a bot's queue, with an agent, answered before).

    The conversation is claimed first (hub/store/out_of_hours.py), so two processes answer once; a refusal
    (the policy, the template) gives the claim back and is raised to the caller as for any reply."""
    found = await get_conversation(hub.store, conversation_id)
    if found is None:
        return None
    conversation = found[0]
    hours = hub.settings.queue_hours.get(conversation.queue_id)
    now = hub.clock()
    if (
        hours is None
        or conversation.state is not ConversationState.WAITING
        or bot_of_queue(hub, conversation.queue_id) is not None
    ):
        return None
    answer = closed_now(hours, now)  # None while the queue is open
    if answer is None or await out_of_hours_answered(hub.store, conversation_id):
        return None
    claim = await claim_out_of_hours(hub.store, conversation_id, opening=opening_text(hours, now), now=now)
    if claim is None:  # another process answered meanwhile
        return None
    try:
        return await reply(hub, Principal.system(), conversation_id, answer)
    except Exception:  # refused (the policy, the template) or failed: a later message may try again
        await release_out_of_hours(hub.store, claim)
        raise
