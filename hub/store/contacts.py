"""Contacts (CRM-lite): the people behind identities.

Search by name, phone or company, keyset pages ordered by name then id, and a
contact's past conversations through the identities paired with it. Each change
is one transaction; input is validated by the API before it gets here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from hub.events import ContactUpdated
from hub.model import Contact
from hub.store._conversation_page import conversation_page
from hub.store._crud import decode_cursor, encode_cursor, like_pattern, normalise_phone
from hub.store._db import Store
from hub.store.tables import contacts, identities, tickets
from hub.store.webhooks_out import record_outgoing

__all__ = [
    "CONTACT_FIELDS",
    "contact_conversations",
    "contact_identities",
    "count_contacts",
    "create_contact",
    "delete_contact",
    "get_contact",
    "identities_of_contacts",
    "list_contacts",
    "update_contact",
]

#: the columns a client may write
CONTACT_FIELDS = ("name", "company", "phone", "email", "notes", "time_zone")


def contact_from_row(row: RowMapping) -> Contact:
    return Contact(
        id=int(row["id"]),
        name=row["name"],
        company=row["company"],
        phone=row["phone"],
        email=row["email"],
        notes=row["notes"],
        time_zone=row["time_zone"],
    )


def _clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in fields.items() if k in CONTACT_FIELDS}
    if values.get("phone"):
        values["phone"] = normalise_phone(values["phone"])
    return values


async def list_contacts(
    store: Store, *, q: str | None = None, after: str | None = None, limit: int = 50
) -> tuple[list[Contact], str | None]:
    """One page ordered by (name, id); ``q`` matches name, company or phone (case-insensitive)."""
    query = select(contacts)
    if q:
        pattern = like_pattern(q.strip())
        matches: list[ColumnElement[bool]] = [
            contacts.c.name.ilike(pattern, escape="\\"),
            contacts.c.company.ilike(pattern, escape="\\"),
            contacts.c.phone.ilike(pattern, escape="\\"),
        ]
        phone = normalise_phone(q)
        if phone and phone != q.strip():
            matches.append(contacts.c.phone.like(like_pattern(phone), escape="\\"))
        query = query.where(or_(*matches))
    if after:
        name, last_id = decode_cursor(after, str, int)
        query = query.where(or_(contacts.c.name > name, and_(contacts.c.name == name, contacts.c.id > last_id)))
    query = query.order_by(contacts.c.name, contacts.c.id).limit(limit + 1)
    async with store.read() as connection:
        rows = (await connection.execute(query)).mappings().all()
    page = [contact_from_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return page, encode_cursor(page[-1].name, page[-1].id) if more and page else None


async def get_contact(store: Store, contact_id: int) -> Contact | None:
    async with store.read() as connection:
        row = (await connection.execute(select(contacts).where(contacts.c.id == contact_id))).mappings().first()
    return contact_from_row(row) if row else None


async def contact_identities(store: Store, contact_id: int) -> list[dict[str, Any]]:
    """The channel identities paired with a contact ("External contacts" in the CRM card)."""
    return (await identities_of_contacts(store, [contact_id]))[contact_id]


async def identities_of_contacts(store: Store, contact_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each contact's paired identities in one read, so that a page of contacts shows their channels at once."""
    paired: dict[int, list[dict[str, Any]]] = {contact_id: [] for contact_id in contact_ids}
    if not paired:
        return paired
    query = (
        select(
            identities.c.id,
            identities.c.contact_id,
            identities.c.account_id,
            identities.c.channel,
            identities.c.external_id,
            identities.c.display_name,
            identities.c.last_inbound_at,
        )
        .where(identities.c.contact_id.in_(list(paired)))
        .order_by(identities.c.id)
    )
    async with store.read() as connection:
        rows = (await connection.execute(query)).mappings().all()
    for r in rows:
        paired[int(r["contact_id"])].append(
            {
                "id": int(r["id"]),
                "account": r["account_id"],
                "channel": r["channel"],
                "external_id": r["external_id"],
                "display_name": r["display_name"],
                "last_inbound_at": r["last_inbound_at"],
            }
        )
    return paired


async def create_contact(store: Store, fields: Mapping[str, Any], now: datetime) -> Contact:
    values = _clean(fields)
    async with store.write() as connection:
        result = await connection.execute(
            contacts.insert().values(**values, created_at=now, updated_at=now).returning(contacts)
        )
        row = result.mappings().one()
    return contact_from_row(row)


async def update_contact(store: Store, contact_id: int, fields: Mapping[str, Any], now: datetime) -> Contact | None:
    """Replace the fields given (``None`` clears an optional one); None when there is no such contact."""
    values = _clean(fields)
    async with store.write() as connection:
        result = await connection.execute(
            update(contacts).where(contacts.c.id == contact_id).values(**values, updated_at=now).returning(contacts)
        )
        row = result.mappings().first()
        if row is not None:
            await record_outgoing(connection, [ContactUpdated(contact_id=contact_id)], now=now)
    return contact_from_row(row) if row else None


async def delete_contact(store: Store, contact_id: int) -> bool:
    """Identities paired with it are unpaired and tickets lose the reference (the foreign keys say SET NULL)."""
    async with store.write() as connection:
        # explicit, so the outcome does not depend on SQLite's foreign_keys pragma
        await connection.execute(
            update(identities).where(identities.c.contact_id == contact_id).values(contact_id=None)
        )
        await connection.execute(update(tickets).where(tickets.c.contact_id == contact_id).values(contact_id=None))
        result = await connection.execute(delete(contacts).where(contacts.c.id == contact_id))
    return bool(result.rowcount)


async def contact_conversations(
    store: Store, contact_id: int, *, after: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], str | None]:
    """A contact's conversations on every paired identity, newest first (by opened_at, id)."""
    async with store.read() as connection:
        return await conversation_page(connection, identities.c.contact_id == contact_id, after=after, limit=limit)


async def count_contacts(store: Store) -> int:
    async with store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(contacts))).scalar_one())
