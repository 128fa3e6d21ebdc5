"""The audit log's rows: appended, read newest first with filters, and swept after ``[audit] keep_days``.

Nothing here updates a row; the only delete is the retention sweep's (ADR 0033).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store._db import Store
from hub.store.tables import audit_log

__all__ = ["AuditFilter", "AuditRow", "append_entries", "append_entry", "delete_entries_before", "list_entries"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRow:
    """One recorded action, as stored."""

    id: int
    at: datetime
    actor: str | None
    actor_kind: str
    action: str
    address: str | None
    target: str | None
    conversation_id: int | None
    before: Any
    after: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    """What to list: every field that is set must match. ``action`` ending in ``.`` matches every action it
    begins (``conversation.``); ``since`` is inclusive, ``until`` exclusive; ``before_id`` pages on."""

    actor: str | None = None
    action: str | None = None
    conversation_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None


async def append_entry(store: Store, values: Mapping[str, Any], *, connection: AsyncConnection | None = None) -> int:
    """Append one entry; in ``connection``'s transaction when given (the change's own), else in its own."""
    statement = insert(audit_log).values(**values).returning(audit_log.c.id)
    if connection is not None:
        return int((await connection.execute(statement)).scalar_one())
    async with store.write() as own:
        return int((await own.execute(statement)).scalar_one())


async def append_entries(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append several entries in ``connection``'s transaction (the change's own), in one statement."""
    if rows:
        await connection.execute(insert(audit_log), [dict(row) for row in rows])


async def list_entries(store: Store, wanted: AuditFilter, *, limit: int) -> list[AuditRow]:
    """Up to ``limit`` entries that match, newest first (by id: the order they were appended in)."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if wanted.actor is not None:
        query = query.where(audit_log.c.actor == wanted.actor)
    if wanted.action is not None:
        if wanted.action.endswith("."):
            query = query.where(audit_log.c.action.startswith(wanted.action, autoescape=True))
        else:
            query = query.where(audit_log.c.action == wanted.action)
    if wanted.conversation_id is not None:
        query = query.where(audit_log.c.conversation_id == wanted.conversation_id)
    if wanted.since is not None:
        query = query.where(audit_log.c.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(audit_log.c.at < wanted.until)
    if wanted.before_id is not None:
        query = query.where(audit_log.c.id < wanted.before_id)
    async with store.read() as connection:
        rows = (await connection.execute(query)).all()
    return [
        AuditRow(
            id=int(row.id),
            at=row.at,
            actor=row.actor,
            actor_kind=row.actor_kind,
            action=row.action,
            address=row.address,
            target=row.target,
            conversation_id=int(row.conversation_id) if row.conversation_id is not None else None,
            before=row.before,
            after=row.after,
        )
        for row in rows
    ]


async def delete_entries_before(store: Store, cutoff: datetime) -> int:
    """The retention sweep: delete every entry recorded before ``cutoff``; returns how many."""
    async with store.write() as connection:
        result = await connection.execute(delete(audit_log).where(audit_log.c.at < cutoff))
        return int(result.rowcount or 0)
