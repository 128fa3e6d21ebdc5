"""A conversation's part with a bot: hand-off and return (the lifecycle's ``HandOff`` / ``ToBot``, applied as
every other action is, in one guarded update), and the bot's bookkeeping in ``bot_conversations``: which
bot, the customer's oldest message it has not answered (for the silence rule), failures in a row, a
rules bot's step and the variables it collected. A bot's turn reads what it needs once (``turn_of``); its
replies are checked and its silence clock stopped in the transaction that queues them (``with_bots``,
``answered``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
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
from hub.model import Conversation, ConversationState, Identity
from hub.store._changes import Change, RoutingRefused, apply_change, load_facts  # the one way an action is applied
from hub.store._db import DIALECTS, Store, one_of, upsert
from hub.store._per_row import PerRow
from hub.store._rows import identity_from_row
from hub.store.catalogue import load_queue
from hub.store.conversations import (  # a conversation as the API renders it
    conversation_from_row,
    view_query,
    views_of_rows,
)
from hub.store.history import message_view as history_item  # a message as the history renders it
from hub.store.tables import UTCDateTime, bot_conversations, conversations, identities, messages, statuses
from hub.store.templates import current_templates
from hub.store.webhooks_out import record_outgoing
from hub.templates import TemplateVersion

__all__ = [
    "BotState",
    "BotTurn",
    "answered",
    "bot_state",
    "close_by_bot",
    "count_with_bots",
    "failed",
    "hand_off",
    "save_progress",
    "silent_since",
    "to_bot",
    "turn_of",
    "waiting_for_bot",
    "with_bots",
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


def _state(row: Any, *, conversation_id: str = "conversation_id", variables: str = "variables") -> BotState:
    """A ``bot_conversations`` row as BotState; a joined row names its two clashing columns."""
    return BotState(
        conversation_id=int(getattr(row, conversation_id)),
        bot_id=str(row.bot_id),
        awaiting_since=row.awaiting_since,
        failures=int(row.failures),
        step=row.step,
        variables=dict(getattr(row, variables) or {}),
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
    message not answered yet. A conversation given to another bot meanwhile is left as it is: a late turn of
    its former bot never makes it that bot's again."""
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
                set_={"awaiting_since": func.coalesce(c.awaiting_since, since), "updated_at": now},
                where=c.bot_id == bot_id,
            )
        )


_ANSWERED_AT = bindparam("answered_at", type_=UTCDateTime())
_ANSWERED = PerRow(
    update(bot_conversations)
    .where(
        bot_conversations.c.conversation_id == bindparam("answered_id"),
        bot_conversations.c.awaiting_since.is_not(None) | (bot_conversations.c.failures > 0),
    )
    .values(awaiting_since=None, failures=0, updated_at=_ANSWERED_AT),
    ("answered_id", "answered_at"),
)


async def answered(connection: AsyncConnection, conversation_ids: Collection[int], now: datetime) -> None:
    """The bot answered: nothing is awaited, and its failures in a row are forgotten. Run in the transaction
    that queues the bot's reply (``hub.store.outbound``), so the reply and the stopped clock are one change;
    a conversation with nothing to forget (most answers come in the turn itself) is left unwritten."""
    await _ANSWERED.run(connection, [(conversation_id, now) for conversation_id in sorted(set(conversation_ids))])


def _with_bots(ids: Any) -> Any:
    return (
        select(conversations.c.id, conversations.c.queue_id, conversations.c.state)
        .where(ids)
        .order_by(conversations.c.id)
        .with_for_update(key_share=True)  # PostgreSQL: until the replies are written, no hand-off or take commits
    )


# the ids as one parameter, so one statement text (and one prepared statement) whatever their number
_WITH_BOTS = {dialect: _with_bots(one_of(conversations.c.id, "with_bots_ids", dialect)) for dialect in DIALECTS}


async def with_bots(connection: AsyncConnection, replies: Sequence[tuple[int, Sequence[str]]]) -> list[str | None]:
    """For each bot's reply about to be written (its conversation, the bot's queues), None when the bot may still
    answer, else why not: ``not_found`` (gone, or no longer in one of its queues: a bot never sees a
    conversation outside them) or ``not_with_bot`` (an agent has it now). Run in the transaction that writes
    the replies, so what it finds holds until they are written (on PostgreSQL the rows stay locked)."""
    if not replies:
        return []
    ids = sorted({conversation_id for conversation_id, _ in replies})
    found = await connection.execute(_WITH_BOTS[connection.dialect.name], {"with_bots_ids": ids})
    rows = {int(row.id): row for row in found}
    refused: list[str | None] = []
    for conversation_id, queues in replies:
        row = rows.get(conversation_id)
        if row is None or row.queue_id not in queues:
            refused.append("not_found")
        elif row.state != ConversationState.BOT.value:
            refused.append("not_with_bot")
        else:
            refused.append(None)
    return refused


async def failed(store: Store, conversation_id: int, bot_id: str, now: datetime) -> int:
    """One more failed call to ``bot_id``; returns its failures in a row (0: the conversation is another bot's
    now, and that bot's count is left alone)."""
    c = bot_conversations.c
    async with store.write() as connection:
        result = await connection.execute(
            update(bot_conversations)
            .where(c.conversation_id == conversation_id, c.bot_id == bot_id)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class BotTurn:
    """What one turn of a bot reads, once, before the bot is asked: the conversation and the customer's message
    as the API renders them (what the bot is sent), the bot's bookkeeping, and the conversation and its identity
    as the reply needs them (its policy and its template context)."""

    view: dict[str, Any]
    message: dict[str, Any]
    state: BotState | None
    conversation: Conversation
    identity: Identity
    #: the current version of every template, when the turn asked for them (what a webhook bot is told it
    #: may send now names them)
    templates: list[TemplateVersion] | None = None


_TURN_CONVERSATION = (
    view_query()
    .add_columns(
        identities.c.account_id.label("identity_account_id"),
        identities.c.channel.label("identity_channel"),
        identities.c.first_inbound_at,
        identities.c.last_inbound_at,
        identities.c.subscription,
        identities.c.subscription_changed_at,
        identities.c.welcome_sent,
        bot_conversations.c.awaiting_since,
        bot_conversations.c.failures,
        bot_conversations.c.step,
    )
    .where(conversations.c.id == bindparam("turn_conversation_id"))
)
_TURN_MESSAGE = select(messages).where(
    messages.c.id == bindparam("turn_message_id"), messages.c.conversation_id == bindparam("turn_conversation_id")
)


async def turn_of(
    store: Store, conversation_id: int, message_id: int, *, with_templates: bool = False
) -> BotTurn | None:
    """Everything a bot's turn reads, in one read (None: no such conversation or message); ``with_templates``:
    the current templates too."""
    ids = {"turn_conversation_id": conversation_id, "turn_message_id": message_id}
    async with store.read(brief=True) as connection:
        row = (await connection.execute(_TURN_CONVERSATION, ids)).first()
        if row is None:
            return None
        message = (await connection.execute(_TURN_MESSAGE, ids)).first()
        if message is None:
            return None
        (view,) = await views_of_rows(connection, [row])
        templates = await current_templates(connection) if with_templates else None
    state = _state(row, conversation_id="id", variables="bot_variables") if row.bot_id is not None else None
    identity = identity_from_row(
        row, id_column="identity_id", account_column="identity_account_id", channel_column="identity_channel"
    )
    return BotTurn(
        view=view,
        message=history_item(message),
        state=state,
        conversation=conversation_from_row(row),
        identity=identity,
        templates=templates,
    )


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
