"""Admin API of the outgoing webhooks (integrations): parse, call one use case (hub/usecases/webhooks_out.py),
render. Admins only; the signing secret is shown once, in the answer that created it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import json_ok, only_fields, page_limit, parse_id
from hub.api._hub import actor, hub_of
from hub.api.errors import ApiError
from hub.api.openapi import PAGE_QUERY, documented, list_schema, page_schema, ref, schema
from hub.usecases import webhooks_out as usecases
from hub.usecases.webhooks_out import Delivery, Subscription
from hub.webhooks_out import delivery_number, webhook_id
from hub.webhooks_out_config import EVENT_TYPES

__all__ = ["setup"]

routes = web.RouteTableDef()

_FIELDS = ("id", "url", "secret", "events", "queues", "pause_after")
_INPUT_PROPS: dict[str, Any] = {
    "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
    "url": {"type": "string", "format": "uri"},
    "secret": {"type": "string", "description": "whsec_<base64>; left out on create, the hub makes one"},
    "events": {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}, "minItems": 1},
    "queues": {"type": ["array", "null"], "items": {"type": "string"}, "description": "null: every queue"},
    "pause_after": {"type": "integer", "minimum": 1, "maximum": 10000},
}
WEBHOOK_INPUT = schema(
    "WebhookOutInput",
    {
        "type": "object",
        "properties": _INPUT_PROPS,
        "additionalProperties": False,
        "description": "On create id, url and events are required; on PUT every field is optional (not id).",
    },
)
WEBHOOK = schema(
    "WebhookOut",
    {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "queues": {"type": ["array", "null"], "items": {"type": "string"}},
            "source": {"type": "string", "enum": ["config", "admin"]},
            "pause_after": {"type": "integer"},
            "consecutive_failures": {"type": "integer"},
            "paused": {"type": "boolean"},
            "paused_at": {"type": ["string", "null"], "format": "date-time"},
            "paused_reason": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "secret": {"type": "string", "description": "only in the answer to a create"},
        },
        "required": ["id", "url", "events", "queues", "source", "paused"],
    },
)
WEBHOOK_LIST = schema("WebhookOutList", list_schema(ref("WebhookOut")))
DELIVERY = schema(
    "WebhookDelivery",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "webhook_id": {"type": "string", "description": "the webhook-id header: the same on every attempt"},
            "type": {"type": "string"},
            "conversation_id": {"type": ["integer", "null"]},
            "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer"},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "delivered_at": {"type": ["string", "null"], "format": "date-time"},
            "created_at": {"type": "string", "format": "date-time"},
            "payload": {"type": "object"},
            "attempt_log": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "status_code": {"type": ["integer", "null"]},
                        "error": {"type": ["string", "null"]},
                        "duration_ms": {"type": "integer"},
                    },
                },
            },
        },
        "required": ["id", "webhook_id", "type", "status", "attempts"],
    },
)
DELIVERY_PAGE = page_schema("WebhookDeliveryPage", ref("WebhookDelivery"))


def webhook_json(found: Subscription) -> dict[str, Any]:
    """An integration as admins see it (never its secret)."""
    return {
        "id": found.id,
        "url": found.url,
        "events": list(found.events),
        "queues": list(found.queues) if found.queues is not None else None,
        "source": found.source,
        "pause_after": found.pause_after,
        "consecutive_failures": found.consecutive_failures,
        "paused": found.paused_at is not None,
        "paused_at": found.paused_at,
        "paused_reason": found.paused_reason,
        "created_at": found.created_at,
        "updated_at": found.updated_at,
    }


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook_id": webhook_id(delivery.id),
        "type": delivery.event_type,
        "conversation_id": delivery.conversation_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "delivered_at": delivery.delivered_at,
        "created_at": delivery.created_at,
        "payload": delivery.payload,
        "attempt_log": [
            {"at": a.attempted_at, "status_code": a.status_code, "error": a.error, "duration_ms": a.duration_ms}
            for a in delivery.history
        ],
    }


def _draft(body: dict[str, Any]) -> usecases.WebhookDraft:
    only_fields(body, _FIELDS)
    for key in ("id", "url", "secret"):
        if key in body and not isinstance(body[key], str):
            raise ApiError(422, "invalid_field", f"'{key}' must be a string", field=key)
    return usecases.WebhookDraft(
        id=body.get("id"),
        url=body.get("url"),
        secret=body.get("secret"),
        events=body.get("events"),
        queues=body.get("queues"),
        pause_after=body.get("pause_after"),
        given=frozenset(body),
    )


def _webhook(request: web.Request) -> str:
    return request.match_info["id"]


@routes.get("/api/v1/webhooks-out")
@documented("Outgoing webhooks (admins)", ok=(200, WEBHOOK_LIST), errors=(401, 403), tag="webhooks-out")
async def webhooks_out_index(request: web.Request) -> web.Response:
    found = await usecases.list_all(hub_of(request), await actor(request))
    return json_ok({"items": [webhook_json(s) for s in found]})


@routes.post("/api/v1/webhooks-out")
@documented(
    "Subscribe a URL to hub events (admins)",
    description="Without `secret` the hub makes one; the answer shows it this once.",
    body=WEBHOOK_INPUT,
    ok=(201, WEBHOOK),
    errors=(400, 401, 403, 409, 422),
    tag="webhooks-out",
)
async def webhooks_out_create(request: web.Request) -> web.Response:
    principal = await actor(request)
    body = await json_body(request)
    for key in ("id", "url", "events"):
        if key not in body:
            raise ApiError(422, "invalid_field", f"'{key}' is required", field=key)
    created = await usecases.create(hub_of(request), principal, _draft(body))
    return json_ok({**webhook_json(created.subscription), "secret": created.secret}, status=201)


@routes.get("/api/v1/webhooks-out/{id}")
@documented("One outgoing webhook (admins)", ok=(200, WEBHOOK), errors=(401, 403, 404), tag="webhooks-out")
async def webhooks_out_show(request: web.Request) -> web.Response:
    found = await usecases.show(hub_of(request), await actor(request), _webhook(request))
    return json_ok(webhook_json(found))


@routes.put("/api/v1/webhooks-out/{id}")
@documented(
    "Change an outgoing webhook (admins)",
    description="Only those created through the API; configured ones answer 409 `defined_in_config`.",
    body=WEBHOOK_INPUT,
    ok=(200, WEBHOOK),
    errors=(400, 401, 403, 404, 409, 422),
    tag="webhooks-out",
)
async def webhooks_out_update(request: web.Request) -> web.Response:
    principal = await actor(request)
    body = await json_body(request)
    if "id" in body:
        raise ApiError(422, "invalid_field", "'id' cannot be changed", field="id")
    changed = await usecases.update(hub_of(request), principal, _webhook(request), _draft(body))
    return json_ok(webhook_json(changed))


@routes.delete("/api/v1/webhooks-out/{id}")
@documented(
    "Remove an outgoing webhook and its deliveries (admins)",
    ok=(204, None),
    errors=(401, 403, 404, 409),
    tag="webhooks-out",
)
async def webhooks_out_delete(request: web.Request) -> web.Response:
    await usecases.delete(hub_of(request), await actor(request), _webhook(request))
    return web.Response(status=204)


@routes.post("/api/v1/webhooks-out/{id}/resume")
@documented(
    "Resume a paused outgoing webhook (admins)",
    description="Its failure count starts over and every waiting delivery is due at once.",
    ok=(200, WEBHOOK),
    errors=(401, 403, 404),
    tag="webhooks-out",
)
async def webhooks_out_resume(request: web.Request) -> web.Response:
    resumed = await usecases.resume(hub_of(request), await actor(request), _webhook(request))
    return json_ok(webhook_json(resumed))


@routes.get("/api/v1/webhooks-out/{id}/deliveries")
@documented(
    "Deliveries of an outgoing webhook, newest first, with their attempts (admins)",
    query=PAGE_QUERY,
    ok=(200, DELIVERY_PAGE),
    errors=(401, 403, 404, 422),
    tag="webhooks-out",
)
async def webhooks_out_deliveries(request: web.Request) -> web.Response:
    principal = await actor(request)
    limit = page_limit(request)
    after = request.query.get("after")
    before = parse_id(after) if after else None
    if after and before is None:
        raise ApiError(422, "invalid_cursor", "'after' is not a cursor this API handed out", field="after")
    items, cursor = await usecases.deliveries(hub_of(request), principal, _webhook(request), before=before, limit=limit)
    return json_ok({"items": [delivery_json(d) for d in items], "next": str(cursor) if cursor else None})


@routes.post("/api/v1/webhooks-out/{id}/deliveries/{delivery}/replay")
@documented(
    "Send a delivery again, with the same webhook-id and body (admins)",
    description="`{delivery}` is the delivery's `id` in the listing, or the `webhook-id` its receiver saw (`dlv_12`).",
    ok=(202, DELIVERY),
    errors=(401, 403, 404),
    tag="webhooks-out",
)
async def webhooks_out_replay(request: web.Request) -> web.Response:
    principal = await actor(request)
    delivery_id = parse_id(delivery_number(request.match_info["delivery"]))  # the number, or the webhook-id
    if delivery_id is None:
        raise ApiError(404, "not_found", "no such delivery")
    replayed = await usecases.replay(hub_of(request), principal, _webhook(request), delivery_id)
    return json_ok(delivery_json(replayed), status=202)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
