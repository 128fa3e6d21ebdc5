"""Queues: list them with members and live figures (every agent), create, change and delete them (admins),
set their members (supervisors and admins)."""

from __future__ import annotations

from string import Formatter
from typing import Any

from aiohttp import web

from hub.api._admin import ADMIN, ID, SUPERVISION, acting_as, new_id, string_list
from hub.api._body import json_body
from hub.api._fields import MISSING, boolean, given, integer, invalid, json_ok, only_fields, text
from hub.api._hub import hub_of
from hub.api.auth import authenticated
from hub.api.openapi import documented, list_schema, schema
from hub.model import Queue
from hub.usecases import queues as queue_usecases
from hub.usecases.queues import HoursNow, QueueFigures, QueueOverview

__all__ = ["setup"]

routes = web.RouteTableDef()

#: what ``{...}`` may name in a queue's URL template (hub.routing.open_url fills them)
URL_PLACEHOLDERS = frozenset(
    {
        "conversation_id",
        "identity_id",
        "external_id",
        "channel",
        "account_id",
        "queue_id",
        "contact_id",
        "display_name",
        "phone",
    }
)

_QUEUE_PROPS: dict[str, Any] = {
    "id": {"type": "string", "pattern": ID.pattern},
    "name": {"type": "string", "maxLength": 200},
    "number": {"type": "integer", "minimum": 0},
    "offer_timeout": {"type": "integer", "minimum": 1, "maximum": 3600, "description": "seconds"},
    "statuses": {
        "type": "array",
        "items": {"type": "string"},
        "description": "allowed at close; empty means the whole catalogue",
    },
    "url_template": {
        "type": ["string", "null"],
        "description": "http(s) URL; placeholders: " + ", ".join(f"{{{p}}}" for p in sorted(URL_PLACEHOLDERS)),
    },
    "transfer_back": {
        "type": "boolean",
        "description": "a conversation transferred here may be offered back to the agent who transferred it "
        "when they are the queue's only member (default false: it waits for another member)",
    },
}
QUEUE_INPUT = schema(
    "QueueInput",
    {
        "type": "object",
        "properties": _QUEUE_PROPS,
        "required": ["id", "name", "number"],
        "additionalProperties": False,
        "description": "On PUT `id` is not accepted and every other field is optional.",
    },
)
QUEUE = schema(
    "Queue",
    {
        "type": "object",
        "properties": {
            **_QUEUE_PROPS,
            "members": {"type": "array", "items": {"type": "integer"}, "description": "active member agent ids"},
            "figures": {
                "type": "object",
                "properties": {
                    "waiting": {"type": "integer"},
                    "bot": {"type": "integer", "description": "conversations the queue's bot is answering"},
                    "offered": {"type": "integer"},
                    "active": {"type": "integer"},
                    "longest_wait_seconds": {"type": ["integer", "null"]},
                    "agents": {
                        "type": "object",
                        "properties": {
                            "ready": {"type": "integer", "description": "ready with free capacity"},
                            "busy": {"type": "integer", "description": "ready, at capacity"},
                            "paused": {"type": "integer"},
                            "offline": {"type": "integer"},
                        },
                    },
                },
            },
        },
        "required": ["id", "name", "number", "offer_timeout", "statuses", "url_template"],
    },
)


def _queue_json(seen: QueueOverview) -> dict[str, Any]:
    queue, f = seen.queue, seen.figures or QueueFigures()
    return {
        "id": queue.id,
        "name": queue.name,
        "number": queue.number,
        "offer_timeout": queue.offer_timeout,
        "statuses": list(queue.statuses),
        "url_template": queue.url_template,
        "transfer_back": queue.transfer_back,
        "members": seen.members,
        "figures": {
            "waiting": f.waiting,
            "offered": f.offered,
            "active": f.active,
            "longest_wait_seconds": f.longest_wait_seconds,
            "agents": {"ready": f.ready, "busy": f.busy, "paused": f.paused, "offline": f.offline},
            "bot": seen.with_bot,
        },
        "hours": _hours_json(seen.hours),
    }


def _hours_json(hours: HoursNow | None) -> dict[str, Any] | None:
    if hours is None:
        return None
    return {
        "open": hours.open,
        "opens_at": hours.opens_at.isoformat() if hours.opens_at is not None else None,
        "time_zone": hours.time_zone,
    }


def _url_template(value: Any) -> Any:
    if value is MISSING or value is None:
        return value
    if not value.startswith(("http://", "https://")):
        raise invalid("url_template", "'url_template' must be an http(s) URL")
    try:
        names = {name for _, name, _, _ in Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise invalid("url_template", f"'url_template' is not a valid template: {exc}") from None
    unknown = sorted(names - URL_PLACEHOLDERS)
    if unknown:
        raise invalid(
            "url_template",
            f"unknown placeholder {{{unknown[0]}}}; known: {', '.join(sorted(URL_PLACEHOLDERS))}",
        )
    return value


def _queue_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    only_fields(body, tuple(_QUEUE_PROPS) if creating else tuple(k for k in _QUEUE_PROPS if k != "id"))
    return given(
        name=text(body, "name", required=creating, nullable=False),
        number=integer(body, "number", required=creating, minimum=0, maximum=999_999),
        offer_timeout=integer(body, "offer_timeout", minimum=1, maximum=3600),
        statuses=string_list(body, "statuses"),
        url_template=_url_template(text(body, "url_template", max_length=2000)),
        transfer_back=boolean(body, "transfer_back"),
    )


@routes.get("/api/v1/queues")
@documented(
    "List queues with members and live figures",
    description="Figures: conversations waiting / offered / active, the longest wait in seconds, and member "
    "agents ready (free capacity), busy (ready, full), paused and offline.",
    ok=(200, list_schema(QUEUE)),
    tag="admin",
)
async def queues_index(request: web.Request) -> web.Response:
    await authenticated(request)
    return json_ok({"items": [_queue_json(seen) for seen in await queue_usecases.overview(hub_of(request))]})


@routes.post("/api/v1/queues")
@documented("Create a queue (admin)", body=QUEUE_INPUT, ok=(201, QUEUE), errors=(400, 403, 409, 422), tag="admin")
async def queues_create(request: web.Request) -> web.Response:
    acting = await acting_as(request, *ADMIN)
    body = await json_body(request)
    queue_id = new_id(body)
    fields = _queue_fields(body, creating=True)
    queue = Queue(
        id=queue_id,
        name=fields["name"],
        number=fields["number"],
        offer_timeout=fields.get("offer_timeout", 30),
        statuses=tuple(fields.get("statuses", ())),
        url_template=fields.get("url_template"),
        transfer_back=fields.get("transfer_back", False),
    )
    return json_ok(_queue_json(await queue_usecases.create_queue(hub_of(request), acting, queue)), status=201)


@routes.get("/api/v1/queues/{id}")
@documented("One queue with members and live figures", ok=(200, QUEUE), errors=(404,), tag="admin")
async def queues_show(request: web.Request) -> web.Response:
    await authenticated(request)
    return json_ok(_queue_json(await queue_usecases.queue_overview(hub_of(request), request.match_info["id"])))


@routes.put("/api/v1/queues/{id}")
@documented("Change a queue (admin)", body=QUEUE_INPUT, ok=(200, QUEUE), errors=(400, 403, 404, 422), tag="admin")
async def queues_update(request: web.Request) -> web.Response:
    acting = await acting_as(request, *ADMIN)
    fields = _queue_fields(await json_body(request), creating=False)
    return json_ok(
        _queue_json(await queue_usecases.update_queue(hub_of(request), acting, request.match_info["id"], fields))
    )


@routes.delete("/api/v1/queues/{id}")
@documented(
    "Delete a queue (admin)",
    description="409 `queue_in_use` while a channel account routes into it or a conversation in it is open.",
    ok=(204, None),
    errors=(403, 404, 409),
    tag="admin",
)
async def queues_delete(request: web.Request) -> web.Response:
    acting = await acting_as(request, *ADMIN)
    await queue_usecases.delete_queue(hub_of(request), acting, request.match_info["id"])
    return json_ok(None, status=204)


@routes.put("/api/v1/queues/{id}/members")
@documented(
    "Replace a queue's members (supervisor, admin)",
    body={
        "type": "object",
        "properties": {"agents": {"type": "array", "items": {"type": "integer"}}},
        "required": ["agents"],
        "additionalProperties": False,
    },
    ok=(200, QUEUE),
    errors=(400, 403, 404, 422),
    tag="admin",
)
async def queues_members(request: web.Request) -> web.Response:
    acting = await acting_as(request, *SUPERVISION)
    body = await json_body(request)
    only_fields(body, ("agents",))
    agent_ids = body.get("agents")
    if not isinstance(agent_ids, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in agent_ids):
        raise invalid(
            "agents",
            "'agents' must be a list of agent ids",
            "missing_field" if "agents" not in body else "invalid_field",
        )
    changed = await queue_usecases.set_members(hub_of(request), acting, request.match_info["id"], agent_ids)
    return json_ok(_queue_json(changed))


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
