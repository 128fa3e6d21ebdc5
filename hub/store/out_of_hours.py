"""Whether the hub already answered a conversation outside its queue's business hours (once per conversation):
the answer leaves a timeline row ``out_of_hours`` beside the message it sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from hub.model import EventKind
from hub.store import Store
from hub.store.tables import timeline_events

__all__ = ["out_of_hours_answered", "record_out_of_hours"]


async def out_of_hours_answered(store: Store, conversation_id: int) -> bool:
    """Whether the conversation already got its out-of-hours answer."""
    async with store.read() as connection:
        found = await connection.execute(
            select(timeline_events.c.id)
            .where(
                timeline_events.c.conversation_id == conversation_id,
                timeline_events.c.kind == EventKind.OUT_OF_HOURS.value,
            )
            .limit(1)
        )
        return found.first() is not None


async def record_out_of_hours(
    store: Store, conversation_id: int, *, message_id: int, opening: str, now: datetime
) -> None:
    """The answer was queued (``message_id``); ``opening`` is the opening it named, as the customer read it."""
    async with store.write() as connection:
        await connection.execute(
            timeline_events.insert().values(
                conversation_id=conversation_id,
                kind=EventKind.OUT_OF_HOURS.value,
                agent_id=None,
                data={"opening": opening, "message_id": message_id},
                created_at=now,
            )
        )
