"""Admin API: webhook deliveries that were correctly signed but can never be used (dead letters).

The webhook routes answer such a delivery 200 (a provider retries anything else)
and keep it with the reason (ADR 0024); this is where an admin reads them,
newest first. Admins only: a raw body may carry a customer's words.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from hub.api._fields import json_ok, page
from hub.api._hub import hub_of
from hub.api.auth import authenticated, require_role
from hub.api.openapi import PAGE_QUERY, documented, page_schema, schema
from hub.model import Role
from hub.usecases.dead_letters import DeadLetter, rejected_deliveries

__all__ = ["rejected_json", "setup"]

routes = web.RouteTableDef()

REJECTED_WEBHOOK = schema(
    "RejectedWebhook",
    {
        "type": "object",
        "required": ["id", "channel", "account", "received_at", "reason_code", "reason", "body"],
        "properties": {
            "id": {"type": "integer"},
            "channel": {"type": "string", "description": "messenger, whatsapp or viber"},
            "account": {"type": ["string", "null"], "description": "the channel account, when the delivery names it"},
            "received_at": {"type": "string", "format": "date-time"},
            "reason_code": {"type": "string", "description": "machine-readable: invalid_json, too_deep, ..."},
            "reason": {"type": "string"},
            "body": {
                "type": "string",
                "description": "the body as received, read as UTF-8 (bytes that are not are shown as U+FFFD)",
            },
            "body_base64": {
                "type": ["string", "null"],
                "description": "the exact bytes, base64, only when the body is not UTF-8",
            },
            "size": {"type": "integer", "description": "bytes received"},
        },
    },
)
REJECTED_PAGE = page_schema("RejectedWebhookPage", REJECTED_WEBHOOK)


def rejected_json(letter: DeadLetter) -> dict[str, Any]:
    try:
        text, exact = letter.body.decode("utf-8"), None
    except UnicodeDecodeError:
        text = letter.body.decode("utf-8", errors="replace")
        exact = base64.b64encode(letter.body).decode("ascii")
    return {
        "id": letter.id,
        "channel": letter.channel,
        "account": letter.account_id,
        "received_at": letter.received_at,
        "reason_code": letter.reason_code,
        "reason": letter.reason,
        "body": text,
        "body_base64": exact,
        "size": len(letter.body),
    }


@routes.get("/api/v1/webhooks/rejected")
@documented(
    "Rejected webhook deliveries (dead letters)",
    description="Correctly signed deliveries the hub could never use (not JSON, nested too deeply, an unknown "
    "shape, absurd values). Each was answered 200 so that the provider stops retrying it. Newest first. Admins only.",
    query=PAGE_QUERY,
    ok=(200, REJECTED_PAGE),
    errors=(401, 403, 422),
    tag="admin",
)
async def rejected_webhooks(request: web.Request) -> web.Response:
    require_role(await authenticated(request), Role.ADMIN)
    after, limit = page(request)
    letters, cursor = await rejected_deliveries(hub_of(request), after=after, limit=limit)
    return json_ok({"items": [rejected_json(letter) for letter in letters], "next": cursor})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
