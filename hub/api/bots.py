"""Bots' routes: a bot (by its token) or a supervisor hands a bot's conversation to people; an agent hands
one (back) to a bot. Each calls one use case of hub/usecases/bots.py and answers with the conversation."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._hub import actor, hub_of
from hub.api.conversations import CONVERSATION, IDEMPOTENCY, _conversation_id, conversation_json
from hub.api.errors import ApiError
from hub.api.openapi import documented
from hub.lifecycle import HANDOFF_REASONS
from hub.usecases.bots import HandOffRequest, hand_off, handoff_reason, return_to_bot

__all__ = ["setup"]

routes = web.RouteTableDef()

HANDOFF_BODY = {
    "type": "object",
    "required": ["reason"],
    "properties": {
        "reason": {"enum": sorted(HANDOFF_REASONS)},
        "queue": {"type": "string", "description": "where it waits (its own queue when left out)"},
        "note": {"type": "string", "description": "for the agent who takes it"},
    },
}


def _optional_text(body: dict[str, Any], key: str, most: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise ApiError(
            422, "invalid_field", f"'{key}' must be a non-empty string of at most {most} characters", field=key
        )
    return value.strip()


@routes.post("/api/v1/conversations/{id}/handoff")
@documented(
    "Hand a bot's conversation to people: it waits in its queue (or `queue`) with the reason and a note",
    description="For the conversation's bot (its bearer token) and supervisors. 409 not_with_bot when it is "
    "no longer with a bot.",
    body=HANDOFF_BODY,
    ok=(200, CONVERSATION),
    errors=(400, 401, 403, 404, 409, 422),
    headers=IDEMPOTENCY,
    tag="bots",
)
async def post_handoff(request: web.Request) -> web.Response:
    by = await actor(request)
    conversation_id = _conversation_id(request)
    body = await json_body(request)
    unknown = sorted(set(body) - {"reason", "queue", "note"})
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field {unknown[0]!r}", field=unknown[0])
    reason = handoff_reason(body.get("reason"))
    request_ = HandOffRequest(
        reason=reason, queue=_optional_text(body, "queue", 64), note=_optional_text(body, "note", 2000)
    )
    changed = await hand_off(hub_of(request), by, conversation_id, request_)
    return web.json_response(conversation_json(dict(changed.view)))


@routes.post("/api/v1/conversations/{id}/bot")
@documented(
    "Hand the conversation (back) to a bot that serves its queue; every agent's part ends",
    body={"type": "object", "required": ["bot"], "properties": {"bot": {"type": "string"}}},
    ok=(200, CONVERSATION),
    errors=(400, 401, 403, 404, 409, 422),
    headers=IDEMPOTENCY,
    tag="bots",
)
async def post_bot(request: web.Request) -> web.Response:
    by = await actor(request)
    conversation_id = _conversation_id(request)
    body = await json_body(request)
    unknown = sorted(set(body) - {"bot"})
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field {unknown[0]!r}", field=unknown[0])
    bot = body.get("bot")
    if not isinstance(bot, str) or not bot.strip():
        raise ApiError(422, "invalid_field", "'bot' must be a bot id", field="bot")
    changed = await return_to_bot(hub_of(request), by, conversation_id, bot.strip())
    return web.json_response(conversation_json(dict(changed.view)))


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
