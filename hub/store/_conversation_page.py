"""One page of conversations as the CRM pages list them (a contact's, a ticket's): newest first by
(opened_at, id), with the customer's identity, under a keyset cursor. The caller says which conversations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from hub.store._crud import aware_datetime, decode_cursor, encode_cursor
from hub.store.tables import conversations, identities

__all__ = ["conversation_page"]


async def conversation_page(
    connection: AsyncConnection, which: ColumnElement[bool], *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The conversations ``which`` selects (it may name ``conversations`` and ``identities`` columns), newest
    first, and the cursor of the next page (None on the last). Raises BadCursor for a cursor not ours."""
    query = (
        select(
            conversations.c.id,
            conversations.c.state,
            conversations.c.queue_id,
            conversations.c.channel,
            conversations.c.account_id,
            conversations.c.opened_at,
            conversations.c.closed_at,
            conversations.c.status_id,
            conversations.c.ticket_id,
            conversations.c.important,
            conversations.c.owner_agent_id,
            conversations.c.last_message_at,
            identities.c.id.label("identity_id"),
            identities.c.external_id,
            identities.c.display_name,
        )
        .join(identities, identities.c.id == conversations.c.identity_id)
        .where(which)
    )
    if after:
        opened_at, last_id = decode_cursor(after, aware_datetime, int)
        query = query.where(
            or_(
                conversations.c.opened_at < opened_at,
                and_(conversations.c.opened_at == opened_at, conversations.c.id < last_id),
            )
        )
    query = query.order_by(conversations.c.opened_at.desc(), conversations.c.id.desc()).limit(limit + 1)
    rows = (await connection.execute(query)).mappings().all()
    items = [
        {
            "id": int(r["id"]),
            "state": r["state"],
            "queue": r["queue_id"],
            "channel": r["channel"],
            "account": r["account_id"],
            "identity": {
                "id": int(r["identity_id"]),
                "external_id": r["external_id"],
                "display_name": r["display_name"],
            },
            "opened_at": r["opened_at"],
            "closed_at": r["closed_at"],
            "last_message_at": r["last_message_at"],
            "status": r["status_id"],
            "ticket": r["ticket_id"],
            "important": bool(r["important"]),
            "owner": r["owner_agent_id"],
        }
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    cursor = encode_cursor(items[-1]["opened_at"].isoformat(), items[-1]["id"]) if more and items else None
    return items, cursor
