"""Lock order on PostgreSQL between a conversation's change and the rows that reference the conversation.

A change (hand-off, take, close...) locks the conversation's row, then writes rows that reference it, such as the
bot's bookkeeping. A bot runner inserting that bookkeeping row at the same moment checks its foreign key, which
locks the conversation's row ``FOR KEY SHARE``. Had the change locked ``FOR UPDATE``, the two would wait for each
other (PostgreSQL then aborts one with "deadlock detected"); ``FOR NO KEY UPDATE`` lets the insert through.
SQLite has one writer at a time, so the case cannot arise there.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub.store import Store
from hub.store._changes import load_facts
from hub.store.bots import hand_off, waiting_for_bot
from hub.store.tables import bot_conversations, conversations, identities

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _conversation_with_a_bot(store: Store, n: int) -> int:
    async with store.write() as connection:
        identity = await connection.execute(
            identities.insert()
            .values(account_id="wa-test", channel="whatsapp", external_id=f"+4206000{n:05d}", created_at=NOW)
            .returning(identities.c.id)
        )
        result = await connection.execute(
            conversations.insert()
            .values(
                channel="whatsapp",
                account_id="wa-test",
                identity_id=identity.scalar_one(),
                queue_id="support",
                state="bot",
                opened_at=NOW,
            )
            .returning(conversations.c.id)
        )
        return int(result.scalar_one())


async def test_a_bots_bookkeeping_row_is_inserted_while_a_change_holds_the_conversation(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises every writer")
    conversation_id = await _conversation_with_a_bot(store, 0)
    async with store.write() as connection:
        await load_facts(connection, store.dialect, conversation_id)  # a change holds the conversation now
        inserting = asyncio.create_task(waiting_for_bot(store, conversation_id, "faq", NOW, NOW))
        await asyncio.wait_for(inserting, timeout=10)  # FOR UPDATE would keep it waiting until this commits
    async with store.read() as connection:
        row = (await connection.execute(select(bot_conversations))).one()
    assert (row.conversation_id, row.bot_id, row.awaiting_since) == (conversation_id, "faq", NOW)


async def test_a_hand_off_racing_the_bots_first_bookkeeping_both_commit(store: Store) -> None:
    """The race as the bot runner and the hand-off API meet it: many rounds, no deadlock, one hand-off."""
    for n in range(1, 21):
        conversation_id = await _conversation_with_a_bot(store, n)
        await asyncio.gather(
            waiting_for_bot(store, conversation_id, "faq", NOW, NOW),
            hand_off(store, conversation_id, reason="bot_asked", bot_id="faq", now=NOW),
        )
        async with store.read() as connection:
            state = (
                await connection.execute(select(conversations.c.state).where(conversations.c.id == conversation_id))
            ).scalar_one()
        assert state == "waiting"
