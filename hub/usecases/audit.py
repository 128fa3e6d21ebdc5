"""The audit log as admins read it: one page at a time, or every entry that matches for an export.

Read-only by design (ADR 0033): the actions append entries (``hub.audit.record``); nothing here changes one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from hub.store._crud import decode_cursor, encode_cursor
from hub.store.audit import AuditFilter, AuditRow, list_entries
from hub.usecases._parts import HubParts
from hub.usecases._store_refusals import store_refusals

__all__ = ["EXPORT_PAGE", "AuditFilter", "AuditRow", "audit_page", "every_entry"]

#: how many entries an export reads at a time
EXPORT_PAGE = 500


async def audit_page(
    hub: HubParts, wanted: AuditFilter, *, after: str | None, limit: int
) -> tuple[list[AuditRow], str | None]:
    """One page of the entries that match, newest first, and the next page's cursor."""
    if after is not None:
        with store_refusals():
            (before_id,) = decode_cursor(after, int)
        wanted = replace(wanted, before_id=before_id)
    rows = await list_entries(hub.store, wanted, limit=limit + 1)
    cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], cursor


async def every_entry(hub: HubParts, wanted: AuditFilter) -> AsyncIterator[AuditRow]:
    """Every entry that matches, newest first, read ``EXPORT_PAGE`` at a time."""
    while True:
        rows = await list_entries(hub.store, wanted, limit=EXPORT_PAGE)
        for row in rows:
            yield row
        if len(rows) < EXPORT_PAGE:
            return
        wanted = replace(wanted, before_id=rows[-1].id)
