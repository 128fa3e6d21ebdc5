"""The out-of-hours answer is given once per conversation: a timeline row ``out_of_hours`` claims it.

``claim_out_of_hours`` checks and writes the row in one transaction with the conversation's row locked (on
PostgreSQL; SQLite has one writer), so that two processes that both see a customer's message answer once.
``release_out_of_hours`` gives the claim back when the answer could not be queued.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from hub.model import EventKind
from hub.store import Store
from hub.store._changes import locked_for_change
from hub.store.tables import conversations, timeline_events

__all__ = ["claim_out_of_hours", "out_of_hours_answered", "release_out_of_hours"]

_ANSWERED = (timeline_events.c.kind == EventKind.OUT_OF_HOURS.value,)


async def out_of_hours_answered(store: Store, conversation_id: int) -> bool:
    """Whether the conversation already got (or is getting) its out-of-hours answer."""
    async with store.read() as connection:
        found = await connection.execute(
            select(timeline_events.c.id)
            .where(timeline_events.c.conversation_id == conversation_id, *_ANSWERED)
            .limit(1)
        )
        return found.first() is not None


async def claim_out_of_hours(store: Store, conversation_id: int, *, opening: str, now: datetime) -> int | None:
    """The new timeline row's id when this caller is the one to answer (``opening`` as the customer reads it);
    None when the conversation was answered before or no longer exists."""
    async with store.write() as connection:
        lock = select(conversations.c.id).where(conversations.c.id == conversation_id)
        if store.dialect == "postgresql":
            lock = locked_for_change(lock)
        if (await connection.execute(lock)).first() is None:
            return None
        before = await connection.execute(
            select(timeline_events.c.id)
            .where(timeline_events.c.conversation_id == conversation_id, *_ANSWERED)
            .limit(1)
        )
        if before.first() is not None:
            return None
        inserted = await connection.execute(
            timeline_events.insert()
            .values(
                conversation_id=conversation_id,
                kind=EventKind.OUT_OF_HOURS.value,
                agent_id=None,
                data={"opening": opening},
                created_at=now,
            )
            .returning(timeline_events.c.id)
        )
        return int(inserted.scalar_one())


async def release_out_of_hours(store: Store, claim: int) -> None:
    """Give a claim back: the answer was refused, so a later message may try again."""
    async with store.write() as connection:
        await connection.execute(delete(timeline_events).where(timeline_events.c.id == claim))
