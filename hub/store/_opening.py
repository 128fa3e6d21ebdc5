"""Opening a conversation: the one statement that inserts open conversations, and which conversation a
customer's message goes to.

The webhook's per-row and bulk paths and an agent's new outbound conversation all insert through
``insert_open``: at most one open conversation per identity (a partial unique index), so a row whose
identity has one by now is skipped, and every conversation inserted gets its "opened" timeline event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus import BusEvent
from hub.events import ConversationWaiting, ConversationWithBot
from hub.model import ChannelAccount, ConversationState, EventKind
from hub.store._db import upsert
from hub.store.tables import bot_conversations, conversations, timeline_events

__all__ = ["add_timeline_event", "entered", "insert_open", "name_the_bot", "open_conversation", "waiting_row"]


@cache
def _insert(dialect: str) -> Any:
    """Built once per dialect, executed with a list of rows (one statement for the whole list)."""
    return (
        upsert(dialect, conversations)
        .on_conflict_do_nothing(index_elements=["identity_id"], index_where=text("state != 'closed'"))
        .returning(conversations.c.id, conversations.c.identity_id, conversations.c.queue_id)
    )


def waiting_row(account: ChannelAccount, identity_id: int, now: datetime) -> dict[str, Any]:
    """A customer wrote: a new conversation waits in the account's queue, or is its bot's first."""
    return {
        "account_id": account.id,
        "channel": account.channel.value,
        "identity_id": identity_id,
        "queue_id": account.queue,
        **_entry_state(account, now),
        "opened_at": now,
    }


def _entry_state(account: ChannelAccount, now: datetime) -> dict[str, Any]:
    """How a conversation (re)opened by a customer starts: with the queue's bot, else waiting in the queue."""
    if account.bot is not None:
        return {"state": ConversationState.BOT.value, "waiting_since": None}
    return {"state": ConversationState.WAITING.value, "waiting_since": now}


def entered(account: ChannelAccount, conversation_id: int, queue_id: str) -> BusEvent:
    """The event of a conversation a customer (re)opened: it waits in its queue, or is with the queue's bot."""
    if account.bot is not None:
        return ConversationWithBot(conversation_id=conversation_id, queue_id=queue_id, bot=account.bot)
    return ConversationWaiting(conversation_id=conversation_id, queue_id=queue_id)


# what a conversation's part with a bot starts from: nothing awaited, no failures, no step, no hand-off yet
_FRESH_PART = ("bot_id", "awaiting_since", "failures", "step", "handoff_reason", "handoff_note", "handed_off_at")


@cache
def _name_the_bot(dialect: str) -> Any:
    stmt = upsert(dialect, bot_conversations)
    changes = {column: stmt.excluded[column] for column in (*_FRESH_PART, "updated_at")}
    return stmt.on_conflict_do_update(index_elements=["conversation_id"], set_=changes)


async def name_the_bot(
    connection: AsyncConnection, dialect: str, opened: Sequence[tuple[int, str]], now: datetime
) -> None:
    """Conversations that (re)opened with their queue's bot, as (conversation id, bot id): the conversation's
    ``bot`` names it from now on, before its first turn, and a reopened one starts its part afresh (as a
    return to the bot does; the variables collected before are kept)."""
    if not opened:
        return
    rows: list[dict[str, Any]] = [
        {
            "conversation_id": conversation_id,
            "bot_id": bot_id,
            "awaiting_since": None,
            "failures": 0,
            "step": None,
            "variables": {},
            "handoff_reason": None,
            "handoff_note": None,
            "handed_off_at": None,
            "updated_at": now,
        }
        for conversation_id, bot_id in opened
    ]
    await connection.execute(_name_the_bot(dialect), rows)


async def insert_open(
    connection: AsyncConnection,
    dialect: str,
    rows: Sequence[dict[str, Any]],
    now: datetime,
    *,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
    bots: Mapping[int, str] | None = None,
) -> list[Any]:
    """Insert open conversations and their "opened" timeline events (by ``agent_id``, with ``data``; one that
    opens with its queue's bot, named in ``bots`` by identity id, says ``{"bot": id}``, as reports read).
    Returns (id, identity_id, queue_id) of those inserted; a row whose identity has an open conversation
    already (another writer opened it a moment ago) is left out."""
    inserted = list((await connection.execute(_insert(dialect), list(rows))).all())
    if inserted:
        bots = bots or {}
        await connection.execute(
            timeline_events.insert(),
            [
                {
                    "conversation_id": int(row.id),
                    "kind": EventKind.OPENED.value,
                    "agent_id": agent_id,
                    "data": data or _with_bot(bots.get(int(row.identity_id))),
                    "created_at": now,
                }
                for row in inserted
            ],
        )
    return inserted


def _with_bot(bot_id: str | None) -> dict[str, Any]:
    """The data of a start: the bot it starts with, if any."""
    return {} if bot_id is None else {"bot": bot_id}


async def open_conversation(
    connection: AsyncConnection,
    dialect: str,
    identity_id: int,
    account: ChannelAccount,
    now: datetime,
) -> tuple[int, str, bool]:
    """The identity's open conversation; else reopen the last one or open a new one (per account).

    Returns (conversation id, queue, whether it (re)entered the queue just now)."""
    open_row = (
        await connection.execute(
            select(conversations.c.id, conversations.c.queue_id).where(
                conversations.c.identity_id == identity_id, conversations.c.state != ConversationState.CLOSED.value
            )
        )
    ).first()
    if open_row is not None:
        return int(open_row.id), str(open_row.queue_id), False
    if account.reopen_after_close:
        last = (
            await connection.execute(
                select(conversations.c.id, conversations.c.queue_id)
                .where(conversations.c.identity_id == identity_id)
                .order_by(conversations.c.opened_at.desc(), conversations.c.id.desc())
                .limit(1)
            )
        ).first()
        if last is not None:
            await connection.execute(
                update(conversations)
                .where(conversations.c.id == last.id)
                .values(
                    **_entry_state(account, now),
                    closed_at=None,
                    status_id=None,
                    owner_agent_id=None,
                    offered_agent_id=None,
                    offer_deadline=None,
                    offered_at=None,
                    version=conversations.c.version + 1,
                )
            )
            await add_timeline_event(connection, int(last.id), EventKind.REOPENED, now, _with_bot(account.bot))
            if account.bot is not None:
                await name_the_bot(connection, dialect, [(int(last.id), account.bot)], now)
            return int(last.id), str(last.queue_id), True
    bots = {} if account.bot is None else {identity_id: account.bot}
    inserted = await insert_open(connection, dialect, [waiting_row(account, identity_id, now)], now, bots=bots)
    if not inserted:  # another writer opened it a moment ago
        row = (
            await connection.execute(
                select(conversations.c.id, conversations.c.queue_id).where(
                    conversations.c.identity_id == identity_id,
                    conversations.c.state != ConversationState.CLOSED.value,
                )
            )
        ).one()
        return int(row.id), str(row.queue_id), False
    if account.bot is not None:
        await name_the_bot(connection, dialect, [(int(inserted[0].id), account.bot)], now)
    return int(inserted[0].id), account.queue, True


async def add_timeline_event(
    connection: AsyncConnection,
    conversation_id: int,
    kind: EventKind,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    await connection.execute(
        timeline_events.insert().values(
            conversation_id=conversation_id, kind=kind.value, data=data or {}, created_at=now
        )
    )
