"""Calendar: an agent's scheduled events (follow-ups) and the secret of their iCalendar feed.

Every read and write names the agent: an event is only ever its owner's, so a query for
another agent's event finds nothing (the API answers 404, never 403, and leaks nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store._crud import Invalid
from hub.store._db import Store
from hub.store.tables import calendar_events, calendar_feeds, conversations, tickets

__all__ = [
    "EVENT_FIELDS",
    "create_event",
    "delete_event",
    "feed_agent",
    "feed_token",
    "get_event",
    "identities_of_event",
    "list_events",
    "set_feed_token",
    "update_event",
]

EVENT_FIELDS = ("title", "note", "starts_at", "ends_at", "conversation_id", "ticket_id")


def _event(row: RowMapping) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "title": row["title"],
        "note": row["note"],
        "starts_at": row["starts_at"],
        "ends_at": row["ends_at"],
        "conversation": row["conversation_id"],
        "ticket": row["ticket_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def _get(connection: AsyncConnection, agent_id: int, event_id: int) -> dict[str, Any] | None:
    query = select(calendar_events).where(calendar_events.c.id == event_id, calendar_events.c.agent_id == agent_id)
    row = (await connection.execute(query)).mappings().first()
    return _event(row) if row else None


async def get_event(store: Store, agent_id: int, event_id: int) -> dict[str, Any] | None:
    async with store.read() as connection:
        return await _get(connection, agent_id, event_id)


async def list_events(
    store: Store,
    agent_id: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The agent's events that start in ``[start, end)`` (either bound optional), earliest first."""
    query = select(calendar_events).where(calendar_events.c.agent_id == agent_id)
    if start is not None:
        query = query.where(calendar_events.c.starts_at >= start)
    if end is not None:
        query = query.where(calendar_events.c.starts_at < end)
    query = query.order_by(calendar_events.c.starts_at, calendar_events.c.id).limit(limit)
    async with store.read() as connection:
        rows = (await connection.execute(query)).mappings().all()
    return [_event(r) for r in rows]


async def _check_references(connection: AsyncConnection, values: Mapping[str, Any]) -> None:
    """An unknown ticket is Invalid (conversations are checked, with access, by the use case)."""
    ticket_id = values.get("ticket_id")
    if ticket_id is None:
        return
    if (await connection.execute(select(tickets.c.id).where(tickets.c.id == ticket_id))).first() is None:
        raise Invalid("ticket", f"ticket {ticket_id} does not exist")


async def create_event(store: Store, agent_id: int, fields: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    values = {k: v for k, v in fields.items() if k in EVENT_FIELDS}
    async with store.write() as connection:
        await _check_references(connection, values)
        event_id = (
            await connection.execute(
                calendar_events.insert()
                .values(**values, agent_id=agent_id, created_at=now, updated_at=now)
                .returning(calendar_events.c.id)
            )
        ).scalar_one()
        event = await _get(connection, agent_id, int(event_id))
    assert event is not None
    return event


async def update_event(
    store: Store, agent_id: int, event_id: int, fields: Mapping[str, Any], now: datetime
) -> dict[str, Any] | None:
    """The given fields replace the stored ones; None when the agent has no such event."""
    values = {k: v for k, v in fields.items() if k in EVENT_FIELDS}
    async with store.write() as connection:
        await _check_references(connection, values)
        result = await connection.execute(
            update(calendar_events)
            .where(calendar_events.c.id == event_id, calendar_events.c.agent_id == agent_id)
            .values(**values, updated_at=now)
        )
        if not result.rowcount:
            return None
        return await _get(connection, agent_id, event_id)


async def delete_event(store: Store, agent_id: int, event_id: int) -> bool:
    async with store.write() as connection:
        result = await connection.execute(
            delete(calendar_events).where(calendar_events.c.id == event_id, calendar_events.c.agent_id == agent_id)
        )
    return bool(result.rowcount)


async def identities_of_event(store: Store, conversation_id: int | None, ticket_id: int | None) -> list[int]:
    """The customers an event is about: its conversation's identity, and those of the ticket's conversations."""
    found: set[int] = set()
    async with store.read() as connection:
        if conversation_id is not None:
            query = select(conversations.c.identity_id).where(conversations.c.id == conversation_id)
            found.update(int(i) for i in (await connection.execute(query)).scalars())
        if ticket_id is not None:
            query = select(conversations.c.identity_id).where(conversations.c.ticket_id == ticket_id).distinct()
            found.update(int(i) for i in (await connection.execute(query)).scalars())
    return sorted(found)


# ------------------------------------------------------------------------ feed


async def feed_token(store: Store, agent_id: int) -> str | None:
    async with store.read() as connection:
        query = select(calendar_feeds.c.token).where(calendar_feeds.c.agent_id == agent_id)
        return (await connection.execute(query)).scalar_one_or_none()


async def set_feed_token(store: Store, agent_id: int, token: str, now: datetime, *, replace: bool) -> str:
    """Store ``token`` as the agent's feed secret; without ``replace``, an existing one is kept and returned."""
    async with store.write() as connection:
        query = select(calendar_feeds.c.token).where(calendar_feeds.c.agent_id == agent_id)
        current = (await connection.execute(query)).scalar_one_or_none()
        if current is not None and not replace:
            return str(current)
        if current is not None:
            await connection.execute(delete(calendar_feeds).where(calendar_feeds.c.agent_id == agent_id))
        await connection.execute(calendar_feeds.insert().values(agent_id=agent_id, token=token, created_at=now))
    return token


async def feed_agent(store: Store, token: str) -> int | None:
    """Whose feed ``token`` opens, or None."""
    async with store.read() as connection:
        query = select(calendar_feeds.c.agent_id).where(calendar_feeds.c.token == token)
        found = (await connection.execute(query)).scalar_one_or_none()
    return int(found) if found is not None else None
