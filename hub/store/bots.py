"""A conversation's part with a bot: hand-off and return (the lifecycle's ``HandOff`` / ``ToBot``, applied as
every other action is, in one guarded update), and the bot's bookkeeping in ``bot_conversations``: which
bot, the customer's oldest message it has not answered (for the silence rule), failures in a row, a
rules bot's step and the variables it collected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import lifecycle
from hub.bus import BusEvent
from hub.events import (
    ConversationClosedByBot,
    ConversationHandedOff,
    ConversationLeftQueue,
    ConversationUpdated,
    ConversationWaiting,
    ConversationWithBot,
    OfferWithdrawn,
)
from hub.model import ConversationState
from hub.store._changes import Change, RoutingRefused, apply_change, load_facts  # the one way an action is applied
from hub.store._db import Store, upsert
from hub.store.catalogue import load_queue
from hub.store.conversations import conversation_view
from hub.store.history import _message as history_item  # a message as the history renders it
from hub.store.tables import bot_conversations, conversations, messages, statuses
from hub.store.webhooks_out import record_outgoing

__all__ = [
    "BotState",
    "answered",
    "bot_state",
    "close_by_bot",
    "count_with_bots",
    "delivery_of",
    "failed",
    "hand_off",
    "save_progress",
    "silent_since",
    "to_bot",
    "waiting_for_bot",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BotState:
    """``bot_conversations`` for one conversation."""

    conversation_id: int
    bot_id: str
    awaiting_since: datetime | None = None
    failures: int = 0
    step: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    handoff_reason: str | None = None
    handoff_note: str | None = None


def _state(row: Any) -> BotState:
    return BotState(
        conversation_id=int(row.conversation_id),
        bot_id=str(row.bot_id),
        awaiting_since=row.awaiting_since,
        failures=int(row.failures),
        step=row.step,
        variables=dict(row.variables or {}),
        handoff_reason=row.handoff_reason,
        handoff_note=row.handoff_note,
    )


async def bot_state(store: Store, conversation_id: int) -> BotState | None:
    async with store.read() as connection:
        row = (
            await connection.execute(
                select(bot_conversations).where(bot_conversations.c.conversation_id == conversation_id)
            )
        ).first()
    return _state(row) if row is not None else None


async def _put(connection: AsyncConnection, dialect: str, conversation_id: int, values: Mapping[str, Any]) -> None:
    """Insert or update the conversation's row (``bot_id`` is needed when it is new)."""
    row = {"conversation_id": conversation_id, "variables": {}, **values}
    changes = dict(values)
    stmt = upsert(dialect, bot_conversations, row)
    await connection.execute(stmt.on_conflict_do_update(index_elements=["conversation_id"], set_=changes))


async def waiting_for_bot(store: Store, conversation_id: int, bot_id: str, since: datetime, now: datetime) -> None:
    """The customer wrote at ``since`` and the bot has to answer: the silence clock runs from the oldest
    message not answered yet."""
    c = bot_conversations.c
    async with store.write() as connection:
        stmt = upsert(
            store.dialect,
            bot_conversations,
            {
                "conversation_id": conversation_id,
                "bot_id": bot_id,
                "awaiting_since": since,
                "variables": {},
                "updated_at": now,
            },
        )
        await connection.execute(
            stmt.on_conflict_do_update(
                index_elements=["conversation_id"],
                set_={"bot_id": bot_id, "awaiting_since": func.coalesce(c.awaiting_since, since), "updated_at": now},
            )
        )


async def answered(store: Store, conversation_id: int, now: datetime) -> None:
    """The bot answered: nothing is awaited, and its failures in a row are forgotten (a read first: most
    answers come in the turn itself, with nothing to forget, and need no write)."""
    c = bot_conversations.c
    async with store.read() as connection:
        pending = (
            await connection.execute(
                select(c.conversation_id).where(
                    c.conversation_id == conversation_id, (c.awaiting_since.is_not(None)) | (c.failures > 0)
                )
            )
        ).first()
    if pending is None:
        return
    async with store.write() as connection:
        await connection.execute(
            update(bot_conversations)
            .where(bot_conversations.c.conversation_id == conversation_id)
            .values(awaiting_since=None, failures=0, updated_at=now)
        )


async def failed(store: Store, conversation_id: int, now: datetime) -> int:
    """One more failed call to the bot; returns the failures in a row."""
    c = bot_conversations.c
    async with store.write() as connection:
        result = await connection.execute(
            update(bot_conversations)
            .where(c.conversation_id == conversation_id)
            .values(failures=c.failures + 1, updated_at=now)
            .returning(c.failures)
        )
        found = result.scalar_one_or_none()
    return int(found or 0)


async def save_progress(
    store: Store, conversation_id: int, bot_id: str, step: str | None, variables: Mapping[str, Any], now: datetime
) -> None:
    """A rules bot's place in its flow and what it has collected (the variables go to the agent)."""
    async with store.write() as connection:
        await _put(
            connection,
            store.dialect,
            conversation_id,
            {"bot_id": bot_id, "step": step, "variables": dict(variables), "updated_at": now},
        )


async def silent_since(store: Store, bot_id: str, before: datetime) -> list[int]:
    """Conversations still with ``bot_id`` whose customer has waited for an answer since ``before`` or longer."""
    c, b = conversations.c, bot_conversations.c
    query = (
        select(b.conversation_id)
        .join(conversations, c.id == b.conversation_id)
        .where(
            b.bot_id == bot_id,
            b.awaiting_since.is_not(None),
            b.awaiting_since <= before,
            c.state == ConversationState.BOT.value,
        )
        .order_by(b.awaiting_since)
    )
    async with store.read() as connection:
        return [int(i) for i in (await connection.execute(query)).scalars()]


async def count_with_bots(store: Store) -> dict[str, int]:
    """queue id -> conversations a bot has now (the supervisor overview counts them)."""
    c = conversations.c
    query = select(c.queue_id, func.count()).where(c.state == ConversationState.BOT.value).group_by(c.queue_id)
    async with store.read() as connection:
        return {str(queue): int(count) for queue, count in await connection.execute(query)}


# ------------------------------------------------------------------ hand-off and return


async def hand_off(
    store: Store,
    conversation_id: int,
    *,
    reason: str,
    bot_id: str,
    now: datetime,
    queue_id: str | None = None,
    note: str | None = None,
    by: int | None = None,
) -> Change:
    """The bot's part ends: the conversation waits in ``queue_id`` (its own when None) with the reason and
    the note kept for the agent; the transcript is simply its history."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        known = queue_id is None or await load_queue(connection, queue_id) is not None
        action = lifecycle.HandOff(reason=reason, bot_id=bot_id, queue_id=queue_id, queue_known=known, note=note, by=by)
        decision = lifecycle.transition(facts.conversation, facts.participants, action, now)
        if isinstance(decision, lifecycle.Refusal):
            raise RoutingRefused.of(decision)
        conversation = await apply_change(connection, store.dialect, facts, decision, now)
        values: dict[str, Any] = {
            "awaiting_since": None,
            "handoff_reason": reason,
            "handoff_note": note,
            "handed_off_at": now,
            "updated_at": now,
        }
        await _put(connection, store.dialect, conversation_id, {"bot_id": bot_id, **values})
        events: list[BusEvent] = [
            ConversationHandedOff(
                conversation_id=conversation_id, queue_id=conversation.queue_id, reason=reason, bot=bot_id, note=note
            ),
            ConversationWaiting(conversation_id=conversation_id, queue_id=conversation.queue_id),
        ]
        await record_outgoing(connection, events, now=now)  # the integrations' deliveries, in this transaction
        return Change(conversation, events)


async def to_bot(
    store: Store, conversation_id: int, *, bot_id: str, bot_known: bool, by: int | None, now: datetime
) -> Change:
    """Hand the conversation (back) to ``bot_id``: every agent's part ends, an offer is withdrawn, and the
    bot starts afresh (nothing awaited, no failures, no step; collected variables are kept)."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        action = lifecycle.ToBot(by=by, bot_id=bot_id, bot_known=bot_known)
        decision = lifecycle.transition(before, facts.participants, action, now)
        if isinstance(decision, lifecycle.Refusal):
            raise RoutingRefused.of(decision)
        conversation = await apply_change(connection, store.dialect, facts, decision, now)
        await _put(
            connection,
            store.dialect,
            conversation_id,
            {
                "bot_id": bot_id,
                "awaiting_since": None,
                "failures": 0,
                "step": None,
                "handoff_reason": None,
                "handoff_note": None,
                "handed_off_at": None,
                "updated_at": now,
            },
        )
        events: list[BusEvent] = []
        if before.state is ConversationState.OFFERED and before.offered_agent_id is not None:
            events.append(
                OfferWithdrawn(conversation_id=conversation_id, agent_id=before.offered_agent_id, reason="to_bot")
            )
        if before.state in lifecycle.IN_QUEUE:
            events.append(ConversationLeftQueue(conversation_id=conversation_id, queue_id=before.queue_id))
        if by is not None:
            events.append(
                ConversationUpdated(
                    conversation_id=conversation_id,
                    action="to_bot",
                    by=by,
                    audience=tuple(facts.audience()),
                    details={"bot": bot_id},
                )
            )
        events.append(
            ConversationWithBot(conversation_id=conversation_id, queue_id=conversation.queue_id, bot=bot_id, by=by)
        )
        return Change(conversation, events)


async def delivery_of(
    store: Store, conversation_id: int, message_id: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The conversation and the customer's message, as the API renders them (datetimes still datetimes)."""
    async with store.read() as connection:
        view = await conversation_view(connection, conversation_id)
        row = (
            await connection.execute(
                select(messages).where(messages.c.id == message_id, messages.c.conversation_id == conversation_id)
            )
        ).first()
    if view is None or row is None:
        return None
    return view, history_item(row)


async def close_by_bot(store: Store, conversation_id: int, *, bot_id: str, status: str | None, now: datetime) -> Change:
    """The bot closes its conversation with a status its queue allows (``lifecycle.BotClose``)."""
    async with store.write() as connection:
        facts = await load_facts(connection, store.dialect, conversation_id)
        before = facts.conversation
        queue = await load_queue(connection, before.queue_id)
        catalogue = tuple((await connection.execute(select(statuses.c.id))).scalars())
        action = lifecycle.BotClose(bot_id=bot_id, status=status, queue=queue, catalogue=catalogue)
        decision = lifecycle.transition(before, facts.participants, action, now)
        if isinstance(decision, lifecycle.Refusal):
            raise RoutingRefused.of(decision)
        conversation = await apply_change(connection, store.dialect, facts, decision, now)
        await _put(
            connection, store.dialect, conversation_id, {"bot_id": bot_id, "awaiting_since": None, "updated_at": now}
        )
        events: list[BusEvent] = [
            ConversationClosedByBot(
                conversation_id=conversation_id, queue_id=before.queue_id, bot=bot_id, status=status
            )
        ]
        await record_outgoing(connection, events, now=now)  # the integrations' deliveries, in this transaction
        return Change(conversation, events)
