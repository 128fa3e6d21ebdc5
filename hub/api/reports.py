"""Reports routes: figures per queue, agent or channel and hour or day (JSON and CSV), and today's
service level per queue. The handlers parse the query, call one use case and render."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from hub.api._csv import as_text
from hub.api._fields import invalid, json_ok, query_instant
from hub.api._hub import actor, hub_of
from hub.api.openapi import documented, list_schema, schema
from hub.reports import Bucket
from hub.usecases import reports as report_usecases
from hub.usecases.reports import ReportKind, ReportQuery

__all__ = ["setup"]

routes = web.RouteTableDef()

DEFAULT_DAYS = 7

_FIGURES: dict[str, Any] = {
    "received": {"type": "integer", "description": "contacts a customer started in the bucket"},
    "handled": {"type": "integer", "description": "of those, accepted or taken by an agent"},
    "abandoned": {"type": "integer", "description": "closed before any agent accepted or took it"},
    "missed_offers": {"type": "integer", "description": "offers rejected or left to time out"},
    "transfers": {"type": "integer"},
    "first_offer_p50_s": {"type": ["number", "null"], "description": "time to the first offer"},
    "first_offer_p90_s": {"type": ["number", "null"]},
    "wait_p50_s": {"type": ["number", "null"], "description": "wait until accepted"},
    "wait_p90_s": {"type": ["number", "null"]},
    "first_response_p50_s": {"type": ["number", "null"], "description": "start to the first agent message"},
    "first_response_p90_s": {"type": ["number", "null"]},
    "handle_p50_s": {"type": ["number", "null"], "description": "accepted to closed"},
    "handle_p90_s": {"type": ["number", "null"]},
    "sla_met_share": {"type": ["number", "null"], "description": "accepted within the queue's target, 0..1"},
    "sla_first_response_met_share": {"type": ["number", "null"]},
    "by_status": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "closed, by status"},
}
_CSV_FIGURES = [name for name in _FIGURES if name != "by_status"]


def _report_schema(kind: ReportKind) -> dict[str, Any]:
    key = {"type": "integer" if kind is ReportKind.AGENTS else "string"}
    extra: dict[str, Any] = (
        {"agent_login": {"type": ["string", "null"]}, "agent_name": {"type": ["string", "null"]}}
        if kind is ReportKind.AGENTS
        else {}
    )
    item = {
        "type": "object",
        "properties": {kind.value: key, "bucket_start": {"type": "string", "format": "date-time"}, **extra, **_FIGURES},
        "required": [kind.value, "bucket_start", *_FIGURES],
    }
    return schema(f"Report{kind.value.title()}s", list_schema(item))


_QUERY: dict[str, dict[str, Any]] = {
    "from": {"type": "string", "format": "date-time", "description": f"default: {DEFAULT_DAYS} days before 'to'"},
    "to": {"type": "string", "format": "date-time", "description": "default: now"},
    "bucket": {"type": "string", "enum": [b.value for b in Bucket], "default": "day"},
    "queue": {"type": "string", "description": "only the contacts that started in this queue"},
}
SLA_TODAY = schema(
    "SlaToday",
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "queue": {"type": "string"},
                        "since": {"type": "string", "format": "date-time"},
                        "sla_accept_seconds": {"type": ["integer", "null"]},
                        "sla_accept_share": {"type": ["number", "null"]},
                        "sla_first_response_seconds": {"type": ["integer", "null"]},
                        "received": {"type": "integer"},
                        "sla_met_share": {"type": ["number", "null"]},
                        "sla_first_response_met_share": {"type": ["number", "null"]},
                    },
                },
            }
        },
        "required": ["items"],
    },
)


def _instant(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return query_instant(raw)
    except (ValueError, OverflowError):
        raise invalid(name, f"{name!r} must be an ISO 8601 date or date-time", code="invalid_date") from None


def _query(request: web.Request, kind: ReportKind) -> ReportQuery:
    raw_bucket = request.query.get("bucket", Bucket.DAY.value)
    try:
        bucket = Bucket(raw_bucket)
    except ValueError:
        raise invalid("bucket", "'bucket' must be 'hour' or 'day'", code="invalid_bucket") from None
    end = _instant(request, "to") or hub_of(request).clock()
    try:
        start = _instant(request, "from") or end - timedelta(days=DEFAULT_DAYS)
    except OverflowError:  # the default 'from' would be before year 1
        raise invalid(
            "to", "'to' is too early: the default 'from', seven days before it, is before year 1", code="invalid_date"
        ) from None
    queue = request.query.get("queue") or None
    return ReportQuery(kind=kind, start=start, end=end, bucket=bucket, queue=queue)


async def _items(request: web.Request, kind: ReportKind) -> list[dict[str, Any]]:
    query = _query(request, kind)
    return await report_usecases.report(hub_of(request), await actor(request), query)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        value = ";".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, str):
        return as_text(value)  # an agent's or a queue's name is text, never a formula
    return "" if value is None else value


def _csv(kind: ReportKind, items: list[dict[str, Any]]) -> web.Response:
    columns = [kind.value]
    if kind is ReportKind.AGENTS:
        columns += ["agent_login", "agent_name"]
    columns += ["bucket_start", *_CSV_FIGURES, "by_status"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for item in items:
        writer.writerow([_csv_cell(item.get(column)) for column in columns])
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="report-{kind.value}s.csv"'},
    )


def _json_route(kind: ReportKind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return json_ok({"items": await _items(request, kind)})

    return handler


def _csv_route(kind: ReportKind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return _csv(kind, await _items(request, kind))

    return handler


_DESCRIPTION = (
    "Per {key} and hour or day (UTC) of the contacts customers started in [from, to): read from the stored "
    "timeline, so any process answers the same. Supervisors and admins. Percentiles are nearest-rank, in "
    "seconds. 422 codes: `invalid_date`, `invalid_bucket`, `bad_range`, `range_too_long`, `too_many_buckets`."
)

for _kind in ReportKind:
    _path = f"/api/v1/reports/{_kind.value}s"
    routes.get(_path)(
        documented(
            f"Report per {_kind.value}",
            description=_DESCRIPTION.format(key=_kind.value),
            ok=(200, _report_schema(_kind)),
            errors=(403, 422),
            query=_QUERY,
            tag="reports",
        )(_json_route(_kind))
    )
    routes.get(f"{_path}.csv")(
        documented(
            f"Report per {_kind.value} as CSV",
            description="The same rows as the JSON report, as text/csv; `by_status` as `status=count;...`.",
            ok=(200, None),
            errors=(403, 422),
            query=_QUERY,
            tag="reports",
        )(_csv_route(_kind))
    )


@routes.get("/api/v1/reports/sla")
@documented(
    "Today's service level per queue",
    description="Per queue with SLA targets (`[[queues]] sla_*`; an agent: their own queues), the targets and the "
    "share met since midnight UTC, read live from the timeline.",
    ok=(200, SLA_TODAY),
    tag="reports",
)
async def sla_today(request: web.Request) -> web.Response:
    return json_ok({"items": await report_usecases.sla_today(hub_of(request), await actor(request))})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
