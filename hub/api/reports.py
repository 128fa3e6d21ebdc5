"""Reports routes: figures per queue, agent or channel and hour or day of a time zone (JSON and CSV), and
today's service level per queue. The handlers parse the query, call one use case and render."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.api._csv import as_text
from hub.api._fields import invalid, json_ok, query_instant
from hub.api._hub import actor, hub_of
from hub.api.openapi import documented, list_schema, schema
from hub.reports import Bucket
from hub.time_zones import named_zone
from hub.usecases import reports as report_usecases
from hub.usecases.reports import ReportKind, ReportQuery

__all__ = ["setup"]

routes = web.RouteTableDef()

DEFAULT_DAYS = 7

_FIGURES: dict[str, Any] = {
    "received": {"type": "integer", "description": "contacts a customer started in the bucket"},
    "handled": {"type": "integer", "description": "of those, accepted or taken by an agent"},
    "abandoned": {
        "type": "integer",
        "description": "closed before any agent accepted or took it, by someone other than a bot",
    },
    "missed_offers": {"type": "integer", "description": "offers rejected or left to time out"},
    "transfers": {"type": "integer"},
    "first_offer_p50_s": {
        "type": ["number", "null"],
        "description": "time to the first offer, from when the customer began to wait for people (the start, or a "
        "bot's hand-off)",
    },
    "first_offer_p90_s": {"type": ["number", "null"]},
    "wait_p50_s": {
        "type": ["number", "null"],
        "description": "wait until accepted, from when the customer began to wait for people (a bot's time is no wait)",
    },
    "wait_p90_s": {"type": ["number", "null"]},
    "first_response_p50_s": {
        "type": ["number", "null"],
        "description": "from when the customer began to wait for people to the first agent message",
    },
    "first_response_p90_s": {"type": ["number", "null"]},
    "handle_p50_s": {"type": ["number", "null"], "description": "accepted to closed"},
    "handle_p90_s": {"type": ["number", "null"]},
    "sla_met_share": {"type": ["number", "null"], "description": "accepted within the queue's target, 0..1"},
    "sla_first_response_met_share": {"type": ["number", "null"]},
    "by_status": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "closed, by status"},
    "bot_resolved": {
        "type": "integer",
        "description": "closed by the queue's bot before any agent accepted or took it (never abandoned)",
    },
    "handed_off": {"type": "integer", "description": "handed off by a bot to people (once a contact, however often)"},
    "handed_off_by_reason": {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "description": "handed off, by the reason of the first hand-off (bot_asked, customer_asked, bot_silent, "
        "bot_failed)",
    },
}
# the CSV's columns: the first figures in their order, then by_status, then the figures added later, so a
# spreadsheet that reads a column by its place still finds it
_CSV_LATER = ["bot_resolved", "handed_off", "handed_off_by_reason"]
_CSV_FIRST = [name for name in _FIGURES if name != "by_status" and name not in _CSV_LATER]


def _report_schema(kind: ReportKind) -> dict[str, Any]:
    key = {"type": "integer" if kind is ReportKind.AGENTS else "string"}
    extra: dict[str, Any] = (
        {"agent_login": {"type": ["string", "null"]}, "agent_name": {"type": ["string", "null"]}}
        if kind is ReportKind.AGENTS
        else {}
    )
    start = {
        "type": "string",
        "format": "date-time",
        "description": "the hour's or day's start in the report's zone, with its offset (2026-03-02T00:00:00+01:00)",
    }
    item = {
        "type": "object",
        "properties": {kind.value: key, "bucket_start": start, **extra, **_FIGURES},
        "required": [kind.value, "bucket_start", *_FIGURES],
    }
    listed = list_schema(item)
    listed["properties"]["tz"] = {"type": "string", "description": "the time zone of the buckets (IANA name)"}
    listed["required"].append("tz")
    return schema(f"Report{kind.value.title()}s", listed)


_TZ: dict[str, Any] = {
    "type": "string",
    "description": "IANA time zone, e.g. Europe/Prague; default: the configured `[reports] timezone` (UTC)",
}
_QUERY: dict[str, dict[str, Any]] = {
    "from": {
        "type": "string",
        "format": "date-time",
        "description": f"default: {DEFAULT_DAYS} days before 'to'; a date or a time without an offset is read in "
        "the report's zone",
    },
    "to": {"type": "string", "format": "date-time", "description": "default: now"},
    "bucket": {"type": "string", "enum": [b.value for b in Bucket], "default": "day"},
    "queue": {"type": "string", "description": "only the contacts that started in this queue"},
    "tz": _TZ,
}
SLA_TODAY = schema(
    "SlaToday",
    {
        "type": "object",
        "properties": {
            "tz": {"type": "string", "description": "the zone whose midnight 'today' starts at (IANA name)"},
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
            },
        },
        "required": ["items", "tz"],
    },
)


def _zone(request: web.Request) -> ZoneInfo:
    """``?tz=``, an IANA name (422 ``invalid_tz`` when unknown), else the configured ``[reports] timezone``."""
    raw = request.query.get("tz")
    if raw is None or raw == "":
        return hub_of(request).settings.reports.zone
    try:
        return named_zone(raw)
    except ValueError as exc:
        raise invalid("tz", str(exc), code="invalid_tz") from None


def _instant(request: web.Request, name: str, zone: ZoneInfo) -> datetime | None:
    """An ISO 8601 date or date-time; one without an offset (a date too) is read in ``zone``, in UTC after."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return query_instant(raw, zone)
    except (ValueError, OverflowError):
        raise invalid(name, f"{name!r} must be an ISO 8601 date or date-time", code="invalid_date") from None


def _query(request: web.Request, kind: ReportKind) -> ReportQuery:
    zone = _zone(request)
    raw_bucket = request.query.get("bucket", Bucket.DAY.value)
    try:
        bucket = Bucket(raw_bucket)
    except ValueError:
        raise invalid("bucket", "'bucket' must be 'hour' or 'day'", code="invalid_bucket") from None
    end = _instant(request, "to", zone) or hub_of(request).clock()
    try:
        start = _instant(request, "from", zone) or end - timedelta(days=DEFAULT_DAYS)
    except OverflowError:  # the default 'from' would be before year 1
        raise invalid(
            "to", "'to' is too early: the default 'from', seven days before it, is before year 1", code="invalid_date"
        ) from None
    queue = request.query.get("queue") or None
    return ReportQuery(kind=kind, start=start, end=end, bucket=bucket, queue=queue, zone=zone)


async def _items(request: web.Request, query: ReportQuery) -> list[dict[str, Any]]:
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
    columns += ["bucket_start", *_CSV_FIRST, "by_status", *_CSV_LATER]
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
        query = _query(request, kind)
        return json_ok({"items": await _items(request, query), "tz": str(query.zone)})

    return handler


def _csv_route(kind: ReportKind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return _csv(kind, await _items(request, _query(request, kind)))

    return handler


_DESCRIPTION = (
    "Per {key} and hour or day (of `tz`, by default the configured `[reports] timezone`, UTC unless set) of the "
    "contacts customers started in [from, to): read from the stored timeline, so any process answers the same. "
    "Supervisors and admins. Percentiles are nearest-rank, in seconds; the waits run from when the customer began "
    "to wait for people (a bot's hand-off, for a contact a bot answered first). 422 codes: `invalid_date`, "
    "`invalid_bucket`, `invalid_tz`, `bad_range`, `range_too_long`, `too_many_buckets`."
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
            description="The same rows as the JSON report, as text/csv; `by_status` and `handed_off_by_reason` as "
            "`name=count;...`; the figures added later come after `by_status`.",
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
    "share met since midnight in `tz` (by default the configured `[reports] timezone`), read live from the "
    "timeline. 422 `invalid_tz`.",
    ok=(200, SLA_TODAY),
    errors=(422,),
    query={"tz": _TZ},
    tag="reports",
)
async def sla_today(request: web.Request) -> web.Response:
    zone = _zone(request)
    items = await report_usecases.sla_today(hub_of(request), await actor(request), zone)
    return json_ok({"items": items, "tz": str(zone)})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
