"""Tickets (lite): create, search (mine, a contact's, a company's, favourites), edit,
favourite per agent, assign to a conversation (with a timeline event), and the conversations
a ticket is assigned to.

"Mine" means assigned to me, or created by me and assigned to nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from hub.model import EventKind
from hub.store._conversation_page import conversation_page
from hub.store._crud import Invalid, decode_cursor, encode_cursor, like_pattern, upsert_ignore
from hub.store._db import Store
from hub.store.tables import agents, contacts, conversations, ticket_favourites, tickets, timeline_events

__all__ = [
    "TICKET_FIELDS",
    "TICKET_STATES",
    "assign_ticket",
    "create_ticket",
    "get_ticket",
    "list_tickets",
    "set_favourite",
    "ticket_conversations",
    "update_ticket",
]

TICKET_FIELDS = ("title", "description", "state", "contact_id", "company", "assignee_agent_id")
TICKET_STATES = ("open", "pending", "closed")
_NO_ID = 2**63  # ids are 64-bit signed integers: nothing at or past this


def _query(agent_id: int) -> Select[Any]:
    favourite = exists().where(
        and_(ticket_favourites.c.ticket_id == tickets.c.id, ticket_favourites.c.agent_id == agent_id)
    )
    return select(
        tickets,
        contacts.c.name.label("contact_name"),
        favourite.label("favourite"),
    ).select_from(tickets.outerjoin(contacts, contacts.c.id == tickets.c.contact_id))


def _ticket(row: RowMapping) -> dict[str, Any]:
    contact = None
    if row["contact_id"] is not None:
        contact = {"id": int(row["contact_id"]), "name": row["contact_name"]}
    return {
        "id": int(row["id"]),
        "title": row["title"],
        "description": row["description"],
        "state": row["state"],
        "contact": contact,
        "company": row["company"],
        "assignee": row["assignee_agent_id"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "favourite": bool(row["favourite"]),
    }


async def list_tickets(
    store: Store,
    agent_id: int,
    *,
    q: str | None = None,
    mine: bool = False,
    contact_id: int | None = None,
    company: str | None = None,
    favourite: bool = False,
    state: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; every filter given narrows the list (they combine, as in the ticket widget)."""
    query = _query(agent_id)
    if q:
        text = q.strip()
        pattern = like_pattern(text)
        matches: list[ColumnElement[bool]] = [
            tickets.c.title.ilike(pattern, escape="\\"),
            tickets.c.description.ilike(pattern, escape="\\"),
        ]
        number = text.lstrip("#")
        # "#42" finds ticket 42; "²" (a digit to isdigit, not to int) or 2^70 can name no ticket
        if number.isascii() and number.isdigit() and int(number) < _NO_ID:
            matches.append(tickets.c.id == int(number))
        query = query.where(or_(*matches))
    if mine:
        query = query.where(
            or_(
                tickets.c.assignee_agent_id == agent_id,
                and_(tickets.c.assignee_agent_id.is_(None), tickets.c.created_by == agent_id),
            )
        )
    if contact_id is not None:
        query = query.where(tickets.c.contact_id == contact_id)
    if company:
        query = query.where(func.lower(tickets.c.company) == company.strip().lower())
    if favourite:
        query = query.where(
            tickets.c.id.in_(select(ticket_favourites.c.ticket_id).where(ticket_favourites.c.agent_id == agent_id))
        )
    if state:
        query = query.where(tickets.c.state == state)
    if after:
        (last_id,) = decode_cursor(after, int)
        query = query.where(tickets.c.id < last_id)
    query = query.order_by(tickets.c.id.desc()).limit(limit + 1)
    async with store.read() as connection:
        rows = (await connection.execute(query)).mappings().all()
    items = [_ticket(r) for r in rows[:limit]]
    return items, encode_cursor(items[-1]["id"]) if len(rows) > limit and items else None


async def _get(connection: AsyncConnection, ticket_id: int, agent_id: int) -> dict[str, Any] | None:
    row = (await connection.execute(_query(agent_id).where(tickets.c.id == ticket_id))).mappings().first()
    return _ticket(row) if row else None


async def get_ticket(store: Store, ticket_id: int, agent_id: int) -> dict[str, Any] | None:
    async with store.read() as connection:
        return await _get(connection, ticket_id, agent_id)


async def _check_references(connection: AsyncConnection, values: Mapping[str, Any]) -> dict[str, Any]:
    """Unknown contact or agent -> Invalid; the company defaults to the contact's."""
    values = dict(values)
    contact_id = values.get("contact_id")
    if contact_id is not None:
        row = (await connection.execute(select(contacts.c.company).where(contacts.c.id == contact_id))).first()
        if row is None:
            raise Invalid("contact", f"contact {contact_id} does not exist")
        if "company" not in values and row.company:
            values["company"] = row.company
    assignee = values.get("assignee_agent_id")
    if assignee is not None:
        row = (
            await connection.execute(select(agents.c.id).where(agents.c.id == assignee, agents.c.active.is_(True)))
        ).first()
        if row is None:
            raise Invalid("assignee", f"agent {assignee} does not exist or is deactivated")
    return values


async def create_ticket(store: Store, fields: Mapping[str, Any], agent_id: int, now: datetime) -> dict[str, Any]:
    async with store.write() as connection:
        values = await _check_references(connection, {k: v for k, v in fields.items() if k in TICKET_FIELDS})
        values.setdefault("state", "open")
        ticket_id = (
            await connection.execute(
                tickets.insert()
                .values(**values, created_by=agent_id, created_at=now, updated_at=now)
                .returning(tickets.c.id)
            )
        ).scalar_one()
        ticket = await _get(connection, int(ticket_id), agent_id)
    assert ticket is not None
    return ticket


async def update_ticket(
    store: Store, ticket_id: int, fields: Mapping[str, Any], agent_id: int, now: datetime
) -> dict[str, Any] | None:
    async with store.write() as connection:
        values = await _check_references(connection, {k: v for k, v in fields.items() if k in TICKET_FIELDS})
        result = await connection.execute(
            update(tickets).where(tickets.c.id == ticket_id).values(**values, updated_at=now)
        )
        if not result.rowcount:
            return None
        return await _get(connection, ticket_id, agent_id)


async def set_favourite(store: Store, ticket_id: int, agent_id: int, favourite: bool) -> dict[str, Any] | None:
    """Idempotent both ways; None when there is no such ticket."""
    async with store.write() as connection:
        if (await connection.execute(select(tickets.c.id).where(tickets.c.id == ticket_id))).first() is None:
            return None
        if favourite:
            await connection.execute(
                upsert_ignore(store.dialect, ticket_favourites, {"agent_id": agent_id, "ticket_id": ticket_id})
            )
        else:
            await connection.execute(
                delete(ticket_favourites).where(
                    ticket_favourites.c.agent_id == agent_id, ticket_favourites.c.ticket_id == ticket_id
                )
            )
        return await _get(connection, ticket_id, agent_id)


async def ticket_conversations(
    store: Store, ticket_id: int, *, after: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], str | None] | None:
    """The conversations the ticket is assigned to, newest first (by opened_at, id), as a contact's are
    listed; None when there is no such ticket. Raises BadCursor for a cursor not ours."""
    async with store.read() as connection:
        if (await connection.execute(select(tickets.c.id).where(tickets.c.id == ticket_id))).first() is None:
            return None
        return await conversation_page(connection, conversations.c.ticket_id == ticket_id, after=after, limit=limit)


async def assign_ticket(
    store: Store, conversation_id: int, ticket_id: int, agent_id: int, now: datetime
) -> dict[str, Any] | None:
    """Set the conversation's ticket and write a ``ticket_assigned`` timeline event, together.

    None when the conversation does not exist; Invalid when the ticket does not.
    Assigning the ticket it already has changes nothing and writes no event.
    """
    async with store.write() as connection:
        ticket = await _get(connection, ticket_id, agent_id)
        if ticket is None:
            raise Invalid("ticket", f"ticket {ticket_id} does not exist")
        current = (
            await connection.execute(select(conversations.c.ticket_id).where(conversations.c.id == conversation_id))
        ).first()
        if current is None:
            return None
        if current.ticket_id != ticket_id:
            await connection.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(ticket_id=ticket_id, version=conversations.c.version + 1)
            )
            await connection.execute(
                timeline_events.insert().values(
                    conversation_id=conversation_id,
                    kind=EventKind.TICKET_ASSIGNED.value,
                    agent_id=agent_id,
                    data={"ticket": ticket_id, "title": ticket["title"], "previous": current.ticket_id},
                    created_at=now,
                )
            )
    return ticket
