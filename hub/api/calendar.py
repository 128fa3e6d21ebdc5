"""The agent's calendar: events (follow-ups) and the secret iCalendar feed.

``/api/v1/events`` are the caller's own events only. ``GET /api/v1/me/calendar-feed`` gives the URL of
the caller's feed (``POST .../rotate`` replaces its secret); the feed itself, ``/calendar/{secret}.ics``,
needs no login (a calendar app cannot log in): the secret in the URL is the credential.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import MISSING, given, integer, invalid, json_ok, only_fields, path_id, query_time_text, text
from hub.api._hub import actor, hub_of
from hub.api.errors import ApiError
from hub.api.openapi import documented, ref, schema
from hub.calendar_feed import feed
from hub.usecases import calendar as calendar_usecases

__all__ = ["FEED_PATH", "setup"]

routes = web.RouteTableDef()

FEED_PATH = "/calendar/{token}.ics"
_FEED_PAST = timedelta(days=90)  # how far back the feed reaches

_EVENT_PROPS: dict[str, Any] = {
    "title": {"type": "string", "maxLength": 300},
    "starts_at": {"type": "string", "format": "date-time", "description": "with its UTC offset"},
    "ends_at": {"type": ["string", "null"], "format": "date-time"},
    "note": {"type": ["string", "null"], "maxLength": 5000},
    "conversation": {"type": ["integer", "null"], "description": "the conversation it follows up"},
    "ticket": {"type": ["integer", "null"], "description": "the ticket it follows up"},
}
EVENT_INPUT = schema(
    "EventInput",
    {
        "type": "object",
        "properties": _EVENT_PROPS,
        "required": ["title", "starts_at"],
        "additionalProperties": False,
        "description": "On PUT every field is optional: the fields given replace the stored ones; null clears.",
    },
)
_WARNING = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "enum": ["window_closed"]},
        "message": {"type": "string"},
        "identity": {"type": "integer"},
        "rule": {"type": ["string", "null"]},
        "window_closed_at": {"type": ["string", "null"], "format": "date-time"},
    },
    "required": ["code", "message"],
}
_EVENT_OUT: dict[str, Any] = {
    "id": {"type": "integer"},
    "title": {"type": "string"},
    "note": {"type": ["string", "null"]},
    "starts_at": {"type": "string", "format": "date-time"},
    "ends_at": {"type": ["string", "null"], "format": "date-time"},
    "conversation": {"type": ["integer", "null"]},
    "ticket": {"type": ["integer", "null"]},
    "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"},
}
EVENT = schema(
    "CalendarEvent",
    {"type": "object", "properties": _EVENT_OUT, "required": ["id", "title", "starts_at"]},
)
SCHEDULED = schema(
    "ScheduledEvent",
    {
        "type": "object",
        "properties": {**_EVENT_OUT, "warnings": {"type": "array", "items": _WARNING}},
        "required": ["id", "title", "starts_at", "warnings"],
        "description": "The event, with `warnings` (e.g. `window_closed`: the customer's messaging window "
        "will be closed at `starts_at`).",
    },
)
FEED = schema(
    "CalendarFeed",
    {
        "type": "object",
        "properties": {"url": {"type": "string", "format": "uri", "description": "secret: whoever has it reads"}},
        "required": ["url"],
    },
)


def _moment(raw: Any, key: str, *, query: bool = False) -> datetime:
    """An ISO 8601 time with its offset (``Z`` allowed)."""
    if isinstance(raw, str) and 10 <= len(raw) <= 40:
        try:
            value = datetime.fromisoformat(raw)
            if value.tzinfo is not None:
                return value.astimezone(UTC)  # year 1 or 9999 with an offset may not fit: refused below
        except (ValueError, OverflowError):
            pass
    message = f"{key!r} must be an ISO 8601 date and time with its UTC offset, e.g. 2026-03-03T10:00:00+01:00"
    if query:
        raise ApiError(422, "invalid_query", message, field=key)
    raise invalid(key, message)


def _parse(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    only_fields(body, tuple(_EVENT_PROPS))
    fields = given(
        title=text(body, "title", required=creating, nullable=False, max_length=300),
        note=text(body, "note", max_length=5000),
        conversation_id=integer(body, "conversation", minimum=1, nullable=True),
        ticket_id=integer(body, "ticket", minimum=1, nullable=True),
    )
    if creating and "starts_at" not in body:
        raise invalid("starts_at", "'starts_at' is required", "missing_field")
    if "starts_at" in body:
        fields["starts_at"] = _moment(body["starts_at"], "starts_at")
    ends_at = body.get("ends_at", MISSING)
    if ends_at is not MISSING:
        fields["ends_at"] = None if ends_at is None else _moment(ends_at, "ends_at")
    return fields


@routes.get("/api/v1/events")
@documented(
    "My calendar events",
    description="The caller's own events starting in [`from`, `to`) (both optional), earliest first, at most 500.",
    query={"from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"}},
    ok=(200, {"type": "object", "properties": {"items": {"type": "array", "items": ref("CalendarEvent")}}}),
    errors=(422,),
    tag="calendar",
)
async def events_index(request: web.Request) -> web.Response:
    principal = await actor(request)
    start = _moment(query_time_text(request.query["from"]), "from", query=True) if request.query.get("from") else None
    end = _moment(query_time_text(request.query["to"]), "to", query=True) if request.query.get("to") else None
    items = await calendar_usecases.events(hub_of(request), principal, start, end)
    return json_ok({"items": items})


@routes.post("/api/v1/events")
@documented(
    "Schedule an event (a follow-up)",
    description="`conversation` must be one the caller may see. The answer's `warnings` say when the customer "
    "behind the conversation or ticket could not be sent free text at `starts_at`.",
    body=EVENT_INPUT,
    ok=(201, SCHEDULED),
    errors=(400, 403, 404, 422),
    tag="calendar",
)
async def events_create(request: web.Request) -> web.Response:
    principal = await actor(request)
    fields = _parse(await json_body(request), creating=True)
    scheduled = await calendar_usecases.create(hub_of(request), principal, fields)
    return json_ok(scheduled.to_json(), status=201)


@routes.put("/api/v1/events/{id}")
@documented("Edit one of my events", body=EVENT_INPUT, ok=(200, SCHEDULED), errors=(400, 403, 404, 422), tag="calendar")
async def events_update(request: web.Request) -> web.Response:
    principal = await actor(request)
    event_id = path_id(request)
    fields = _parse(await json_body(request), creating=False)
    scheduled = await calendar_usecases.update(hub_of(request), principal, event_id, fields)
    return json_ok(scheduled.to_json())


@routes.delete("/api/v1/events/{id}")
@documented("Delete one of my events", ok=(204, None), errors=(404,), tag="calendar")
async def events_delete(request: web.Request) -> web.Response:
    principal = await actor(request)
    await calendar_usecases.delete(hub_of(request), principal, path_id(request))
    return json_ok(None, status=204)


def _feed_url(request: web.Request, token: str) -> str:
    base = hub_of(request).settings.server.public_url.rstrip("/")
    return base + FEED_PATH.format(token=token)


@routes.get("/api/v1/me/calendar-feed")
@documented(
    "The URL of my iCalendar feed",
    description="A secret URL (made on first use) that a calendar app subscribes to; served as `text/calendar`.",
    ok=(200, FEED),
    tag="calendar",
)
async def calendar_feed_url(request: web.Request) -> web.Response:
    principal = await actor(request)
    token = await calendar_usecases.feed_secret(hub_of(request), principal)
    return json_ok({"url": _feed_url(request, token)})


@routes.post("/api/v1/me/calendar-feed/rotate")
@documented(
    "Replace the secret of my iCalendar feed",
    description="The old URL stops working at once; the answer is the new one.",
    ok=(200, FEED),
    errors=(400,),
    tag="calendar",
)
async def calendar_feed_rotate(request: web.Request) -> web.Response:
    principal = await actor(request)
    token = await calendar_usecases.feed_secret(hub_of(request), principal, rotate=True)
    return json_ok({"url": _feed_url(request, token)})


@routes.get(FEED_PATH)
async def calendar_feed(request: web.Request) -> web.Response:
    """The feed: no login, the secret in the path is the credential (unknown or rotated: 404)."""
    hub = hub_of(request)
    agent_id = await calendar_usecases.feed_owner(hub, request.match_info["token"])
    items = await calendar_usecases.events_of(hub, agent_id, hub.clock() - _FEED_PAST)
    body = feed(items, name="channelhub", public_url=hub.settings.server.public_url)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Cache-Control": "private, no-cache", "Referrer-Policy": "no-referrer"},
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
