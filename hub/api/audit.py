"""Admin API: the audit log (hub/audit.py), searched and exported; read-only by design (ADR 0033).

``GET /api/v1/audit`` lists entries newest first with filters (``actor``, ``action``, ``conversation``,
``from``, ``to``) and ``next`` cursor paging; ``/api/v1/audit.csv`` and ``/api/v1/audit.jsonl`` export every
entry that matches the same filters, streamed page by page. There is no route that changes an entry.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from hub.api._csv import as_text
from hub.api._fields import json_ok, page, query_instant
from hub.api._hub import hub_of
from hub.api.auth import authenticated, require_role
from hub.api.errors import ApiError
from hub.api.openapi import PAGE_QUERY, documented, page_schema, schema
from hub.audit import ACTOR_KINDS
from hub.model import Role
from hub.usecases.audit import AuditFilter, AuditRow, audit_page, every_entry

__all__ = ["audit_json", "setup"]

routes = web.RouteTableDef()

_COLUMNS = ("id", "at", "actor", "actor_kind", "action", "address", "target", "conversation", "before", "after")
AUDIT_ENTRY = schema(
    "AuditEntry",
    {
        "type": "object",
        "required": ["id", "at", "actor", "actor_kind", "action", "address", "target", "before", "after"],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": {"type": ["string", "null"], "description": "the acting login; null for the system"},
            "actor_kind": {"enum": list(ACTOR_KINDS)},
            "action": {"type": "string", "description": "dotted: auth.login, presence.changed, conversation.closed"},
            "address": {"type": ["string", "null"], "description": "the client's address"},
            "target": {"type": ["string", "null"], "description": "what changed: conversation:12, queue:support"},
            "conversation": {"type": ["integer", "null"]},
            "before": {"description": "the settings or template before the change (or null)"},
            "after": {"description": "what the change set (or null)"},
        },
    },
)
AUDIT_PAGE = page_schema("AuditPage", AUDIT_ENTRY)
_FILTERS: dict[str, dict[str, Any]] = {
    "actor": {"type": "string", "description": "the acting login"},
    "action": {"type": "string", "description": "an action, or a prefix ending in '.' (conversation.)"},
    "conversation": {"type": "integer", "description": "entries about this conversation"},
    "from": {"type": "string", "format": "date-time", "description": "at or after (ISO 8601)"},
    "to": {"type": "string", "format": "date-time", "description": "before (ISO 8601)"},
}
_QUERY: dict[str, Mapping[str, Any]] = {**_FILTERS, **PAGE_QUERY}


def audit_json(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "actor": row.actor,
        "actor_kind": row.actor_kind,
        "action": row.action,
        "address": row.address,
        "target": row.target,
        "conversation": row.conversation_id,
        "before": row.before,
        "after": row.after,
    }


def _when(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        return query_instant(value)  # in UTC, as the store compares it
    except (ValueError, OverflowError):
        raise ApiError(422, "invalid_query", f"'{name}' must be an ISO 8601 date or time", field=name) from None


def _filters(request: web.Request) -> AuditFilter:
    conversation = request.query.get("conversation")
    if conversation is not None and not (conversation.isdigit() and 0 < len(conversation) <= 18):
        raise ApiError(422, "invalid_query", "'conversation' must be a conversation id", field="conversation")
    since, until = _when(request, "from"), _when(request, "to")
    if since is not None and until is not None and until < since:
        raise ApiError(422, "invalid_query", "'to' must not be before 'from'", field="to")
    return AuditFilter(
        actor=request.query.get("actor") or None,
        action=request.query.get("action") or None,
        conversation_id=int(conversation) if conversation else None,
        since=since,
        until=until,
    )


async def _admin(request: web.Request) -> None:
    require_role(await authenticated(request), Role.ADMIN)


@routes.get("/api/v1/audit")
@documented(
    "The audit log: who changed what, when and from where (admins)",
    description="Newest first. Entries are appended by the actions themselves and can never be changed or "
    "deleted through the API; they are kept for `[audit] keep_days`.",
    query=_QUERY,
    ok=(200, AUDIT_PAGE),
    errors=(401, 403, 422),
    tag="admin",
)
async def audit_index(request: web.Request) -> web.Response:
    await _admin(request)
    wanted = _filters(request)
    after, limit = page(request)
    rows, cursor = await audit_page(hub_of(request), wanted, after=after, limit=limit)
    return json_ok({"items": [audit_json(row) for row in rows], "next": cursor})


async def _export(request: web.Request, content_type: str, filename: str, lines: Any) -> web.StreamResponse:
    await _admin(request)
    wanted = _filters(request)
    response = web.StreamResponse(
        headers={"Content-Type": content_type, "Content-Disposition": f'attachment; filename="{filename}"'}
    )
    await response.prepare(request)
    for line in lines(None):
        await response.write(line)
    async for row in every_entry(hub_of(request), wanted):
        for line in lines(row):
            await response.write(line)
    await response.write_eof()
    return response


def _cell(value: Any) -> str:
    """One CSV cell; text a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return as_text(text)


def _csv_lines(row: AuditRow | None) -> list[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if row is None:
        writer.writerow(_COLUMNS)
    else:
        entry = audit_json(row)
        writer.writerow([_cell(entry[column]) if column != "id" else str(row.id) for column in _COLUMNS])
    return [buffer.getvalue().encode("utf-8")]


def _json_lines(row: AuditRow | None) -> list[bytes]:
    if row is None:
        return []
    return [(json.dumps(audit_json(row), ensure_ascii=False) + "\n").encode("utf-8")]


@routes.get("/api/v1/audit.csv")
@documented(
    "The audit log as CSV (admins)",
    description="Every entry that matches the filters, newest first; before and after as JSON text.",
    query=_FILTERS,
    ok=(200, None),
    errors=(401, 403, 422),
    tag="admin",
)
async def audit_csv(request: web.Request) -> web.StreamResponse:
    return await _export(request, "text/csv; charset=utf-8", "audit.csv", _csv_lines)


@routes.get("/api/v1/audit.jsonl")
@documented(
    "The audit log as JSON lines (admins)",
    description="Every entry that matches the filters, newest first, one JSON object per line.",
    query=_FILTERS,
    ok=(200, None),
    errors=(401, 403, 422),
    tag="admin",
)
async def audit_jsonl(request: web.Request) -> web.StreamResponse:
    return await _export(request, "application/x-ndjson; charset=utf-8", "audit.jsonl", _json_lines)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
