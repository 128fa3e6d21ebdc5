"""Identities as the API shows them: customers as one channel account knows them,
with the contact they are paired with, and pairing / unpairing.

Ingest (hub/store/ingest.py) creates and updates identities; this module only
reads them and changes ``contact_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from hub.store._crud import Invalid, decode_cursor, encode_cursor, like_pattern, normalise_phone
from hub.store._db import Store
from hub.store.contacts import CONTACT_FIELDS
from hub.store.tables import contacts, identities

__all__ = ["create_contact_and_pair", "get_identity", "list_identities", "pair_identity", "unpair_identity"]


def _query() -> Select[Any]:
    return select(
        identities,
        contacts.c.name.label("contact_name"),
        contacts.c.company.label("contact_company"),
    ).select_from(identities.outerjoin(contacts, contacts.c.id == identities.c.contact_id))


def _identity(row: RowMapping) -> dict[str, Any]:
    contact = None
    if row["contact_id"] is not None:
        contact = {"id": int(row["contact_id"]), "name": row["contact_name"], "company": row["contact_company"]}
    return {
        "id": int(row["id"]),
        "account": row["account_id"],
        "channel": row["channel"],
        "external_id": row["external_id"],
        "display_name": row["display_name"],
        "phone": row["phone"],
        "avatar_url": row["avatar_url"],
        "contact": contact,
        "first_inbound_at": row["first_inbound_at"],
        "last_inbound_at": row["last_inbound_at"],
        "subscription": row["subscription"],
    }


async def list_identities(
    store: Store,
    *,
    q: str | None = None,
    channel: str | None = None,
    account: str | None = None,
    contacted: bool = False,
    after: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first (by id). ``q`` matches display name, phone, external id or the paired
    contact's name; ``contacted`` keeps only identities that wrote to us (the outbound rule)."""
    query = _query()
    if q:
        text = q.strip()
        pattern = like_pattern(text)
        matches: list[ColumnElement[bool]] = [
            identities.c.display_name.ilike(pattern, escape="\\"),
            identities.c.phone.ilike(pattern, escape="\\"),
            identities.c.external_id.ilike(pattern, escape="\\"),
            contacts.c.name.ilike(pattern, escape="\\"),
        ]
        phone = normalise_phone(text)
        if phone and phone != text:
            phone_pattern = like_pattern(phone.lstrip("+"))
            matches.append(identities.c.phone.like(phone_pattern, escape="\\"))
            matches.append(identities.c.external_id.like(phone_pattern, escape="\\"))
        query = query.where(or_(*matches))
    if channel:
        query = query.where(identities.c.channel == channel)
    if account:
        query = query.where(identities.c.account_id == account)
    if contacted:
        query = query.where(identities.c.first_inbound_at.is_not(None))
    if after:
        (last_id,) = decode_cursor(after, int)
        query = query.where(identities.c.id < last_id)
    query = query.order_by(identities.c.id.desc()).limit(limit + 1)
    async with store.read() as connection:
        rows = (await connection.execute(query)).mappings().all()
    items = [_identity(r) for r in rows[:limit]]
    return items, encode_cursor(items[-1]["id"]) if len(rows) > limit and items else None


async def get_identity(store: Store, identity_id: int) -> dict[str, Any] | None:
    async with store.read() as connection:
        return await _get(connection, identity_id)


async def _get(connection: AsyncConnection, identity_id: int) -> dict[str, Any] | None:
    row = (await connection.execute(_query().where(identities.c.id == identity_id))).mappings().first()
    return _identity(row) if row else None


async def pair_identity(store: Store, identity_id: int, contact_id: int) -> dict[str, Any] | None:
    """Pair (or re-pair) an identity with a contact. None: no such identity; Invalid: no such contact."""
    async with store.write() as connection:
        found = (await connection.execute(select(contacts.c.id).where(contacts.c.id == contact_id))).first()
        if found is None:
            raise Invalid("contact", f"contact {contact_id} does not exist")
        result = await connection.execute(
            update(identities).where(identities.c.id == identity_id).values(contact_id=contact_id)
        )
        if not result.rowcount:
            return None
        return await _get(connection, identity_id)


async def unpair_identity(store: Store, identity_id: int) -> dict[str, Any] | None:
    async with store.write() as connection:
        result = await connection.execute(
            update(identities).where(identities.c.id == identity_id).values(contact_id=None)
        )
        if not result.rowcount:
            return None
        return await _get(connection, identity_id)


async def create_contact_and_pair(
    store: Store, identity_id: int, fields: Mapping[str, Any], now: datetime
) -> dict[str, Any] | None:
    """ "Add new contact": create it and pair the identity in one transaction (both or neither)."""
    values = {k: v for k, v in fields.items() if k in CONTACT_FIELDS}
    if values.get("phone"):
        values["phone"] = normalise_phone(values["phone"])
    async with store.write() as connection:
        exists = (await connection.execute(select(identities.c.id).where(identities.c.id == identity_id))).first()
        if exists is None:
            return None
        contact_id = (
            await connection.execute(
                contacts.insert().values(**values, created_at=now, updated_at=now).returning(contacts.c.id)
            )
        ).scalar_one()
        await connection.execute(update(identities).where(identities.c.id == identity_id).values(contact_id=contact_id))
        return await _get(connection, identity_id)
