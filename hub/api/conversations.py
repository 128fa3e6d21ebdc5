"""The conversation API: lists, one conversation, its history, and every hand-off action.

Each action is a use case in hub.usecases.conversations (one atomic change in
hub.store.routing, its events published for the router and the WebSocket); the
route answers with the conversation as it is now. Refusals change nothing: 404 (no such
conversation), 403 (not yours), 409 (someone got there first / wrong state),
422 (a wrong status, queue or agent).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hub.api._body import json_body, parse_json
from hub.api._fields import page_limit, parse_id
from hub.api._hub import actor, hub_of
from hub.api.auth import authenticated
from hub.api.errors import ApiError
from hub.api.openapi import PAGE_LIMIT, documented, page_schema, schema
from hub.model import ConversationState
from hub.usecases import HubParts, Principal
from hub.usecases.bots import close_as_actor
from hub.usecases.conversations import (
    Changed,
    HistoryCursor,
    Target,
    accept,
    conversation_page,
    history_of,
    invite_to,
    leave_conversation,
    mark_important,
    reject,
    show,
    take_over,
    transfer,
)
from hub.views import jsonable

__all__ = ["conversation_json", "jsonable", "setup"]

routes = web.RouteTableDef()

CONVERSATION = schema(
    "Conversation",
    {
        "type": "object",
        "required": ["id", "state", "queue", "channel", "account", "identity", "waiting_since", "important"],
        "properties": {
            "id": {"type": "integer"},
            "state": {"enum": [s.value for s in ConversationState]},
            "queue": {"type": "string"},
            "queue_name": {"type": "string"},
            "queue_number": {"type": ["integer", "null"]},
            "channel": {"type": "string"},
            "account": {"type": "string"},
            "identity": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "external_id": {"type": "string"},
                    "display_name": {"type": ["string", "null"]},
                },
            },
            "contact": {"type": ["object", "null"]},
            "waiting_since": {"type": ["string", "null"], "format": "date-time"},
            "important": {"type": "boolean"},
            "owner": {"type": ["integer", "null"]},
            "offered_to": {"type": ["integer", "null"]},
            "offer_deadline": {"type": ["string", "null"], "format": "date-time"},
            "participants": {"type": "array", "items": {"type": "object"}},
            "closed_parts": {
                "type": "array",
                "items": {"type": "object"},
                "description": "agents who closed their own part while colleagues went on: agent_id, status, closed_at",
            },
            "status": {"type": ["string", "null"]},
            "open_url": {"type": ["string", "null"]},
            "bot": {"type": ["string", "null"], "description": "the bot that has or had it (docs/bots.md)"},
            "handoff": {
                "type": ["object", "null"],
                "description": "why the bot handed it over: reason (bot_asked, customer_asked, bot_silent, "
                "bot_failed), note, at",
            },
            "variables": {"type": "object", "description": "fields a bot collected from the customer"},
        },
    },
)
PAGE = page_schema("ConversationPage", CONVERSATION)
HISTORY_MESSAGE = schema(
    "HistoryMessage",
    {
        "type": "object",
        "required": ["type", "id", "conversation_id", "direction", "kind", "created_at"],
        "properties": {
            "type": {"const": "message"},
            "id": {"type": "integer"},
            "conversation_id": {"type": "integer"},
            "direction": {"enum": ["in", "out"]},
            "author": {"type": "string"},
            "agent_id": {"type": ["integer", "null"]},
            "kind": {"type": "string"},
            "text": {"type": ["string", "null"]},
            "attachments": {"type": "array", "items": {"type": "object"}},
            "location": {
                "type": ["object", "null"],
                "description": "latitude, longitude, name, address, and url when the provider gives one",
            },
            "payload": {"type": ["string", "null"], "description": "the button, postback or quick reply payload"},
            "created_at": {"type": "string", "format": "date-time"},
            "sent_at": {"type": ["string", "null"], "format": "date-time"},
            "delivery_state": {"type": "string"},
            "error_code": {"type": ["string", "null"]},
            "error_reason": {"type": ["string", "null"]},
            "template_name": {"type": ["string", "null"]},
            "provider_message_id": {
                "type": ["string", "null"],
                "description": "the provider's id of the message (Messenger mid, WhatsApp wamid or SID, Viber token)",
            },
            "reply_to": {"type": ["string", "null"], "description": "the provider's id of the message it quotes"},
            "referral": {
                "type": ["object", "null"],
                "description": "the ad or link that brought the customer (source, type, ref, source_url, ...)",
                "additionalProperties": {"type": "string"},
            },
            "forwarded": {"type": "boolean", "description": "the customer forwarded it from another chat"},
        },
    },
)
HISTORY_EVENT = schema(
    "HistoryEvent",
    {
        "type": "object",
        "required": ["type", "id", "conversation_id", "kind", "created_at"],
        "properties": {
            "type": {"const": "event"},
            "id": {"type": "integer"},
            "conversation_id": {"type": "integer"},
            "kind": {"type": "string"},
            "agent_id": {"type": ["integer", "null"]},
            "data": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
)
HISTORY = page_schema(
    "HistoryPage",
    {"oneOf": [HISTORY_MESSAGE, HISTORY_EVENT]},
    description="messages (type=message) and timeline events (type=event), oldest to newest in the page",
)
TARGET = schema(
    "HandOffTarget",
    {
        "type": "object",
        "description": "one of: agent (id or login), queue (id)",
        "properties": {"agent": {"type": ["integer", "string"]}, "queue": {"type": "string"}},
    },
)
IDEMPOTENCY = {
    "Idempotency-Key": {"type": "string", "description": "a retry with the same key returns the first answer"}
}


def conversation_json(view: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(view)
    return out


def _conversation_id(request: web.Request) -> int:
    found = parse_id(request.match_info["id"])
    if found is None:
        raise ApiError(404, "not_found", "no such conversation")
    return found


def _encode(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = parse_json(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave out") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave out")
    return value


# ------------------------------------------------------------------ reading


@routes.get("/api/v1/conversations")
@documented(
    "List conversations",
    description="Newest first. Agents see their own conversations and the waiting list of their queues; "
    "supervisors and admins see all.",
    ok=(200, PAGE),
    errors=(400, 401, 422),
    query={
        "state": {"enum": [s.value for s in ConversationState]},
        "queue": {"type": "string"},
        "cursor": {"type": "string", "description": "the `next` cursor of the previous page"},
        "limit": PAGE_LIMIT,
    },
    tag="conversations",
)
async def list_(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    state = None
    if "state" in request.query:
        try:
            state = ConversationState(request.query["state"])
        except ValueError:
            raise ApiError(422, "invalid_state", "state must be bot, waiting, offered, active or closed") from None
    before = None
    if request.query.get("cursor"):
        before = _decode(request.query["cursor"]).get("before")
        if not isinstance(before, int) or isinstance(before, bool):  # True is an int to Python, not to SQL
            raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave out")
    items, last = await conversation_page(
        hub_of(request),
        agent,
        state=state,
        queue=request.query.get("queue") or None,
        before_id=before,
        limit=page_limit(request),
    )
    return web.json_response(
        {"items": [conversation_json(i) for i in items], "next": _encode({"before": last}) if last else None}
    )


@routes.get("/api/v1/conversations/{id}")
@documented("One conversation", ok=(200, CONVERSATION), errors=(401, 403, 404), tag="conversations")
async def get_one(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    view = await show(hub_of(request), agent, _conversation_id(request))
    return web.json_response(conversation_json(view))


@routes.get("/api/v1/conversations/{id}/messages")
@documented(
    "History: messages and timeline events",
    description="Newest page first; items in a page run oldest to newest. When the conversation is exhausted, "
    "pages continue into older closed conversations of the same identity or paired contact.",
    ok=(200, HISTORY),
    errors=(400, 401, 403, 404),
    query={"before": {"type": "string", "description": "the `next` cursor of the previous page"}, "limit": PAGE_LIMIT},
    tag="conversations",
)
async def history(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    conversation_id = _conversation_id(request)
    before = None
    if request.query.get("before"):
        raw = _decode(request.query["before"])
        numbers = [raw.get(key) for key in ("c", "r", "i")]
        # the cursor's numbers are the ones this API wrote (already bounded to 64 bits by the JSON reader)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave out")
        try:
            # with its offset, as written; in UTC, as the store compares it (year 1 with an offset may not fit)
            at = datetime.fromisoformat(raw["t"])
            if at.tzinfo is None:
                raise ValueError("a cursor's time has its offset")
            before = HistoryCursor(int(raw["c"]), at.astimezone(UTC), int(raw["r"]), int(raw["i"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave out") from None
    items, cursor = await history_of(hub_of(request), agent, conversation_id, before=before, limit=page_limit(request))
    next_cursor = None
    if cursor is not None:
        next_cursor = _encode(
            {"c": cursor.conversation_id, "t": cursor.created_at.isoformat(), "r": cursor.rank, "i": cursor.id}
        )
    return web.json_response({"items": jsonable(items), "next": next_cursor})


# ------------------------------------------------------------------ actions


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _action(
    summary: str, *, body: dict[str, Any] | None = None, errors: tuple[int, ...] = (401, 403, 404, 409)
) -> Callable[[Handler], Handler]:
    return documented(
        summary, body=body, ok=(200, CONVERSATION), errors=errors, headers=IDEMPOTENCY, tag="conversations"
    )


async def _changed(
    request: web.Request, action: Callable[[HubParts, Principal, int], Awaitable[Changed]]
) -> web.Response:
    by = await actor(request)
    changed = await action(hub_of(request), by, _conversation_id(request))
    return web.json_response(conversation_json(dict(changed.view)))


@routes.post("/api/v1/conversations/{id}/accept")
@_action("Accept the offer: you become the owner")
async def accept_(request: web.Request) -> web.Response:
    return await _changed(request, accept)


@routes.post("/api/v1/conversations/{id}/reject")
@_action("Reject the offer: it passes to the next agent")
async def reject_(request: web.Request) -> web.Response:
    return await _changed(request, reject)


@routes.post("/api/v1/conversations/{id}/take")
@_action("Take a conversation from your queue's waiting list (409 when someone else got it)")
async def take_(request: web.Request) -> web.Response:
    return await _changed(request, take_over)


@routes.post("/api/v1/conversations/{id}/leave")
@_action("Leave the conversation (the owner's part passes to another participant)")
async def leave_(request: web.Request) -> web.Response:
    return await _changed(request, leave_conversation)


@routes.post("/api/v1/conversations/{id}/important")
@_action(
    'Mark important (toggle, or set with {"important": true|false})',
    body={"type": "object", "properties": {"important": {"type": "boolean"}}},
    errors=(401, 403, 404, 422),
)
async def important(request: web.Request) -> web.Response:
    by = await actor(request)
    conversation_id = _conversation_id(request)
    body = await json_body(request, allow_empty=True)
    value = body.get("important")
    if value is not None and not isinstance(value, bool):
        raise ApiError(422, "invalid_field", "'important' must be true or false", field="important")
    changed = await mark_important(hub_of(request), by, conversation_id, value)
    return web.json_response(conversation_json(dict(changed.view)))


def _agent_value(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ApiError(422, "invalid_field", "'agent' must be an agent id or login", field="agent")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip():
        agent_id = parse_id(value)
        return agent_id if agent_id is not None else value  # a login (or no agent: the use case says so)
    raise ApiError(422, "invalid_field", "'agent' must be an agent id or login", field="agent")


async def _target(request: web.Request) -> Target:
    body = await json_body(request)
    agent_value, queue = body.get("agent"), body.get("queue")
    if (agent_value is None) == (queue is None):
        raise ApiError(422, "target_required", "give exactly one of 'agent' or 'queue'")
    if queue is not None:
        if not isinstance(queue, str) or not queue:
            raise ApiError(422, "invalid_field", "'queue' must be a queue id", field="queue")
        return Target(queue_id=queue)
    return Target(agent=_agent_value(agent_value))


@routes.post("/api/v1/conversations/{id}/transfer")
@_action(
    "Transfer to an agent (they own it at once) or a queue (it waits there)",
    body=TARGET,
    errors=(401, 403, 404, 409, 422),
)
async def transfer_(request: web.Request) -> web.Response:
    by = await actor(request)
    conversation_id = _conversation_id(request)
    changed = await transfer(hub_of(request), by, conversation_id, await _target(request))
    return web.json_response(conversation_json(dict(changed.view)))


@routes.post("/api/v1/conversations/{id}/invite")
@_action(
    "Invite an agent, or a free member of a queue, silently (the customer sees nothing)",
    body=TARGET,
    errors=(401, 403, 404, 409, 422),
)
async def invite_(request: web.Request) -> web.Response:
    by = await actor(request)
    conversation_id = _conversation_id(request)
    changed = await invite_to(hub_of(request), by, conversation_id, await _target(request))
    return web.json_response(conversation_json(dict(changed.view)))


@routes.post("/api/v1/conversations/{id}/close")
@_action(
    "Close with a status from the queue's allowed set (422 status_required / status_not_allowed); a bot (its "
    "token) closes a conversation it holds (403 not_with_bot once it is no longer with a bot)",
    body={"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    errors=(401, 403, 404, 409, 422),
)
async def close_(request: web.Request) -> web.Response:
    by = await actor(request)
    conversation_id = _conversation_id(request)
    body = await json_body(request, allow_empty=True)
    status = body.get("status")
    if status is not None and not isinstance(status, str):
        raise ApiError(422, "status_not_allowed", "'status' must be a status id", field="status")
    changed = await close_as_actor(hub_of(request), by, conversation_id, status or None)
    return web.json_response(conversation_json(dict(changed.view)))


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
