"""What a bot does in a conversation, and what people do with a bot's conversations.

A bot answers through the same calls as an agent: ``say`` is ``hub.usecases.outbound.reply`` (so the same
policy and outbox), with quick replies shown natively where the channel can and as numbered text where
it cannot. ``hand_off`` ends the bot's part (the bot asks, or the hub does when the customer asks for a
person, the bot falls silent or fails); ``return_to_bot`` gives a conversation (back) to a bot of its
queue. Each is one atomic change (hub/store/bots.py) checked against who may act.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from hub.errors import Forbidden, Invalid, Refusal
from hub.lifecycle import HANDOFF_REASONS
from hub.model import Button
from hub.store.bots import bot_state, close_by_bot, save_progress, to_bot
from hub.store.bots import hand_off as store_hand_off
from hub.usecases._parts import HubParts
from hub.usecases.access import conversation_for
from hub.usecases.closed_queue import closed_now
from hub.usecases.conversations import Changed, _done, _run, close
from hub.usecases.outbound import ReadByTurn, Replied, Send, reply
from hub.usecases.permissions import is_bot, is_supervisor
from hub.usecases.principal import Principal

__all__ = [
    "BotSay",
    "HandOffRequest",
    "bot_close",
    "bot_of_queue",
    "close_as_actor",
    "hand_off",
    "handoff_reason",
    "return_to_bot",
    "say",
]

#: where the last choices offered are remembered between a bot's message and the customer's answer
CHOICES_KEY = "_choices"


@dataclass(frozen=True, slots=True, kw_only=True)
class BotSay:
    """One message from a bot: text and/or a template, and the choices offered with it."""

    text: str | None = None
    buttons: tuple[Button, ...] = ()
    template: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOffRequest:
    """``reason`` one of bot_asked, customer_asked, bot_silent, bot_failed; ``queue`` where it waits (its own
    when None); ``note`` for the agent who takes it."""

    reason: str = "bot_asked"
    queue: str | None = None
    note: str | None = None


def handoff_reason(value: object) -> str:
    """``value`` when it is a hand-off reason; Invalid ``invalid_reason`` otherwise (the API checks a body's
    ``reason`` with it before anything else, the use case every request)."""
    if not isinstance(value, str) or value not in HANDOFF_REASONS:
        reasons = ", ".join(sorted(HANDOFF_REASONS))
        raise Invalid("invalid_reason", f"'reason' must be one of {reasons}", field="reason")
    return value


def bot_of_queue(hub: HubParts, queue_id: str) -> str | None:
    """The configured bot that answers ``queue_id`` first, if any."""
    for bot in hub.settings.bots:
        if queue_id in bot.queues:
            return bot.id
    return None


async def say(
    hub: HubParts, actor: Principal, conversation_id: int, message: BotSay, *, known: ReadByTurn | None = None
) -> Replied:
    """The bot's message, through the agents' reply (policy, outbox); its choices are remembered so that a
    customer who answers with a number or a title has chosen that button. ``known``: what the bot's turn read
    (hub/bots/runner.py), not read again."""
    if not is_bot(actor):
        raise Forbidden("forbidden", "only a bot speaks as a bot")
    send = Send(text=message.text, buttons=message.buttons)
    if message.template is not None:
        send = Send(template=message.template, variables=dict(message.variables))
    replied = await reply(hub, actor, conversation_id, send, known=known)
    if message.buttons:
        assert actor.bot_id is not None
        state = await bot_state(hub.store, conversation_id)
        variables = dict(state.variables) if state is not None else {}
        variables[CHOICES_KEY] = [b.to_json() for b in message.buttons]
        step = state.step if state is not None else None
        await save_progress(hub.store, conversation_id, actor.bot_id, step, variables, hub.clock())
    return replied


def offered_choices(variables: Mapping[str, Any]) -> Sequence[Button]:
    """The choices the bot offered last (see ``say``)."""
    found = variables.get(CHOICES_KEY) or []
    return [Button(title=str(c["title"]), payload=str(c["payload"])) for c in found if isinstance(c, dict)]


async def hand_off(hub: HubParts, actor: Principal, conversation_id: int, request: HandOffRequest) -> Changed:
    """The bot's part ends: the conversation waits in its queue (or ``request.queue``) with the reason and the
    note for the agent. A bot hands off its own conversations; supervisors and admins any bot's."""
    handoff_reason(request.reason)
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    if not is_bot(actor) and not is_supervisor(actor):
        raise Forbidden("forbidden", "only the bot, a supervisor or an admin hands a bot's conversation off")
    if is_bot(actor):
        with suppress(Refusal):  # a courtesy: the hand-off happens even when the policy refuses the message
            await _tell_if_closed(hub, actor, conversation.id, request.queue or conversation.queue_id)
    bot_id = actor.bot_id
    if bot_id is None:
        state = await bot_state(hub.store, conversation.id)
        bot_id = state.bot_id if state is not None else bot_of_queue(hub, conversation.queue_id) or "unknown"
    by = None if is_bot(actor) else actor.id
    now = hub.clock()
    change = await _run(
        lambda: store_hand_off(
            hub.store,
            conversation.id,
            reason=request.reason,
            bot_id=bot_id,
            now=now,
            queue_id=request.queue,
            note=request.note,
            by=by,
        )
    )
    return await _done(hub, actor, "handed_off", conversation, change, sweep=True)


async def _tell_if_closed(hub: HubParts, actor: Principal, conversation_id: int, queue_id: str) -> None:
    """Outside the receiving queue's business hours, the bot tells the customer when it opens (the queue's
    message or template, hub/usecases/closed_queue.py) before the conversation goes to wait there. Sent as the
    bot's reply; it offers no choices, so there are none to remember."""
    answer = closed_now(hub.settings.queue_hours.get(queue_id), hub.clock())
    if answer is not None:
        await reply(hub, actor, conversation_id, answer)


async def return_to_bot(hub: HubParts, actor: Principal, conversation_id: int, bot_id: str) -> Changed:
    """Give the conversation (back) to ``bot_id``, a bot that serves its queue; every agent's part ends."""
    if is_bot(actor):
        raise Forbidden("forbidden", "a bot does not hand conversations to bots")
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    known = any(b.id == bot_id and conversation.queue_id in b.queues for b in hub.settings.bots)
    now, by = hub.clock(), actor.id
    change = await _run(lambda: to_bot(hub.store, conversation.id, bot_id=bot_id, bot_known=known, by=by, now=now))
    return await _done(hub, actor, "to_bot", conversation, change)


async def bot_close(hub: HubParts, actor: Principal, conversation_id: int, status: str | None) -> Changed:
    """The bot closes its conversation with a status its queue allows (Invalid ``status_required`` /
    ``status_not_allowed`` otherwise, as for an agent)."""
    if not is_bot(actor):
        raise Forbidden("forbidden", "only a bot closes as a bot")
    assert actor.bot_id is not None
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    bot_id, now = actor.bot_id, hub.clock()
    change = await _run(lambda: close_by_bot(hub.store, conversation.id, bot_id=bot_id, status=status, now=now))
    return await _done(hub, actor, "closed", conversation, change)


async def close_as_actor(hub: HubParts, actor: Principal, conversation_id: int, status: str | None) -> Changed:
    """Close the conversation as the actor closes one: a bot as its answer's ``close`` action does
    (``bot_close``), an agent, supervisor or admin as an agent (``hub.usecases.conversations.close``)."""
    closing = bot_close if is_bot(actor) else close
    return await closing(hub, actor, conversation_id, status)
