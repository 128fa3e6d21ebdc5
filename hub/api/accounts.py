"""Channel accounts with their health (supervisors and admins). They come from the configuration file and
are read-only here; their secrets never leave the hub."""

from __future__ import annotations

from aiohttp import web

from hub.api._admin import SUPERVISION
from hub.api._fields import json_ok
from hub.api._hub import hub_of
from hub.api.auth import authenticated, require_role
from hub.api.openapi import documented, list_schema, schema
from hub.usecases.accounts import AccountHealth, accounts_with_health

__all__ = ["setup"]

routes = web.RouteTableDef()

ACCOUNT = schema(
    "ChannelAccountHealth",
    {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "channel": {"type": "string"},
            "provider": {"type": "string"},
            "queue": {"type": "string"},
            "address": {"type": ["string", "null"], "description": "page id, sender number or bot name"},
            "health": {
                "type": "object",
                "properties": {
                    "state": {"type": "string", "enum": ["ok", "silent", "failing"]},
                    "last_webhook_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_send_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_send_error": {"type": ["string", "null"]},
                    "last_send_error_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        },
    },
)


def _health_state(health: AccountHealth | None) -> str:
    if health is None or (health.last_webhook_at is None and health.last_send_at is None):
        return "silent"
    if health.last_send_error_at is not None and (
        health.last_send_at is None or health.last_send_error_at >= health.last_send_at
    ):
        return "failing"
    return "ok"


@routes.get("/api/v1/accounts")
@documented(
    "Channel accounts with their health (supervisor, admin)",
    description="From the configuration; no secret is ever included. Health: `failing` when the last send "
    "failed, `silent` before the first webhook or send, else `ok`.",
    ok=(200, list_schema(ACCOUNT)),
    errors=(403,),
    tag="admin",
)
async def accounts_index(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *SUPERVISION)
    items = []
    for seen in await accounts_with_health(hub_of(request)):
        account, h = seen.account, seen.health
        items.append(
            {
                "id": account.id,
                "channel": account.channel.value,
                "provider": account.provider,
                "queue": account.queue,
                "address": seen.address,
                "health": {
                    "state": _health_state(h),
                    "last_webhook_at": h.last_webhook_at if h else None,
                    "last_send_at": h.last_send_at if h else None,
                    "last_send_error": h.last_send_error if h else None,
                    "last_send_error_at": h.last_send_error_at if h else None,
                },
            }
        )
    return json_ok({"items": items})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
