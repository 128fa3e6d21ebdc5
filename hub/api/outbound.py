"""Replies and new outbound messages: checked by hub.policy, queued in the durable outbox.

Routes: ``GET /api/v1/identities/{id}/eligibility``, ``POST /api/v1/conversations/{id}/messages``,
``POST /api/v1/outbound``. A refusal is 422 (404 for an unknown identity) with
``{"error": {"code", "message", "rule", "window_closed_at", "alternatives"}}`` and
queues nothing. The delivery workers run as this module's cleanup context.
The "send a new message" search is ``GET /api/v1/identities?q=&channel=&contacted=1``
(hub/api/contacts.py).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import json_ok, only_fields, path_id
from hub.api._hub import actor, hub_of
from hub.api.auth import authenticated
from hub.api.errors import ApiError
from hub.api.keys import OUTBOX
from hub.api.openapi import documented, schema
from hub.model import Attachment, Button, Conversation, Message, MessageKind
from hub.usecases.media import attachments_of, render_attachments
from hub.usecases.outbound import Send, check_eligibility, reply, send_new, start_chat
from hub.views import eligibility_json

__all__ = ["OUTBOX", "message_json", "setup"]

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

_ATTACHMENT_KINDS = {k.value: k for k in (MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.FILE)}

REFUSAL = schema(
    "OutboundRefusal",
    {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "rule", "window_closed_at", "alternatives"],
                "properties": {
                    "code": {"type": "string", "description": "the rule, e.g. window_closed, tag_retired"},
                    "message": {"type": "string"},
                    "rule": {"type": "string"},
                    "window_closed_at": {"type": ["string", "null"], "format": "date-time"},
                    "alternatives": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "kind": {"enum": ["template", "tag", "wait_for_customer"]},
                                "name": {"type": "string"},
                                "until": {"type": ["string", "null"], "format": "date-time"},
                            },
                        },
                    },
                },
            }
        },
    },
)
MESSAGE = schema(
    "OutboundMessage",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "conversation_id": {"type": "integer"},
            "direction": {"const": "out"},
            "kind": {"type": "string"},
            "text": {"type": ["string", "null"]},
            "attachments": {"type": "array"},
            "delivery_state": {"enum": ["queued", "sent", "delivered", "read", "failed"]},
            "provider_message_id": {"type": ["string", "null"], "description": "the provider's id, once sent"},
            "reply_to": {"type": ["string", "null"]},
            "referral": {"type": ["object", "null"]},
            "forwarded": {"type": "boolean"},
            "template": {"type": ["object", "null"]},
            "tag": {"type": ["string", "null"]},
            "plan": {"type": "object", "description": "what the policy decided (messaging_type, tag, template)"},
        },
    },
)
ELIGIBILITY = schema(
    "Eligibility",
    {
        "type": "object",
        "properties": {
            "identity": {"type": "integer"},
            "channel": {"type": "string"},
            "account": {"type": "string"},
            "free_text": {"type": "boolean"},
            "free_text_until": {"type": ["string", "null"], "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "object"}},
            "templates": {"type": "array", "items": {"type": "string"}},
            "rule": {"type": ["string", "null"]},
            "message": {"type": ["string", "null"]},
            "window_closed_at": {"type": ["string", "null"], "format": "date-time"},
            "billable": {"type": "boolean"},
            "queue": {
                "type": ["string", "null"],
                "description": "the queue a new message goes in (the customer's open conversation's, else the "
                "account's): send and close takes a status that queue allows",
            },
        },
    },
)
STARTED = schema(
    "ChatStarted",
    {
        "type": "object",
        "required": ["conversation", "message"],
        "description": "a chat started without a message: nothing was sent",
        "properties": {"conversation": {"type": "object"}, "message": {"type": "null"}},
    },
)
SEND_PROPERTIES: dict[str, Any] = {
    "text": {"type": "string"},
    "template": {"type": "string"},
    "variables": {"type": "object"},
    "tag": {"type": "string", "description": "Messenger message tag, e.g. HUMAN_AGENT"},
    "attachments": {
        "type": "array",
        "items": {
            "type": "object",
            "description": "either a file uploaded with POST /api/v1/uploads (`upload`), or a public `url` and `kind`",
            "properties": {
                "upload": {"type": "string", "description": "an upload's id (POST /api/v1/uploads)"},
                "url": {"type": "string"},
                "kind": {"enum": list(_ATTACHMENT_KINDS)},
                "file_name": {"type": "string"},
                "mime_type": {"type": "string"},
                "size": {"type": "integer"},
            },
        },
    },
}
SEND_PROPERTIES["buttons"] = {
    "type": "array",
    "description": "quick replies / buttons, shown natively where the channel can (within its limits, else 422), "
    "else listed as numbered text",
    "items": {
        "type": "object",
        "required": ["title"],
        "properties": {"title": {"type": "string"}, "payload": {"type": "string"}},
    },
}
SEND_BODY = {"type": "object", "properties": SEND_PROPERTIES}
IDEMPOTENCY = {
    "Idempotency-Key": {"type": "string", "description": "a retry with the same key returns the first answer"}
}


# ------------------------------------------------------------------ views


def message_json(
    message: Message,
    *,
    plan: dict[str, Any] | None = None,
    tag: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A queued message as the API answers it; ``attachments`` as the message JSON gives them (with their
    ids and the hub's own URLs) when the caller read them back, else from the message itself."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction.value,
        "author": message.author.value,
        "agent_id": message.agent_id,
        "kind": message.kind.value,
        "text": message.text,
        "attachments": attachments
        if attachments is not None
        else render_attachments([a.to_json() for a in message.attachments], None),
        "created_at": message.created_at,
        "delivery_state": message.delivery_state.value,
        "provider_message_id": message.provider_message_id,
        "reply_to": None,  # the same fields as the history's messages; an agent's reply quotes nothing yet
        "referral": None,
        "forwarded": False,
        "error_code": message.error_code,
        "error_reason": message.error_reason,
        "template": (
            {"name": message.template_name, "version": message.template_version} if message.template_name else None
        ),
        "tag": tag,
        "plan": (plan or {}).get("decision"),
    }


def _conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "state": conversation.state.value,
        "account": conversation.account_id,
        "channel": conversation.channel.value,
        "identity": conversation.identity_id,
        "queue": conversation.queue_id,
        "owner": conversation.owner_agent_id,
        "opened_at": conversation.opened_at,
        "closed_at": conversation.closed_at,
        "status": conversation.status_id,
    }


# ---------------------------------------------------------------- parsing


def _is_empty(body: dict[str, Any]) -> bool:
    """Nothing to send: no text, template or attachment given at all ("start chat" without a message)."""
    return all(body.get(key) is None for key in ("text", "template", "variables", "tag")) and not body.get(
        "attachments"
    )


def _parse_send(body: dict[str, Any]) -> Send:
    text = body.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise ApiError(422, "invalid_field", "'text' must be a non-empty string", field="text")
    template = body.get("template")
    if template is not None and (not isinstance(template, str) or not template.strip()):
        raise ApiError(422, "invalid_field", "'template' must be a template name", field="template")
    variables = body.get("variables", {})
    if not isinstance(variables, dict):
        raise ApiError(422, "invalid_field", "'variables' must be an object", field="variables")
    if variables and template is None:
        raise ApiError(422, "invalid_field", "'variables' go with 'template'", field="variables")
    tag = body.get("tag")
    if tag is not None and (not isinstance(tag, str) or not tag.strip()):
        raise ApiError(422, "invalid_field", "'tag' must be a message tag name", field="tag")
    if text is not None and template is not None:
        raise ApiError(422, "invalid_field", "send either 'text' or 'template', not both", field="template")
    raw_attachments = body.get("attachments", [])
    if not isinstance(raw_attachments, list):
        raise ApiError(422, "invalid_field", "'attachments' must be a list", field="attachments")
    attachments = tuple(_attachment(item, i) for i, item in enumerate(raw_attachments))
    if text is None and template is None and not attachments:
        raise ApiError(422, "empty_message", "send 'text', a 'template' or 'attachments'")
    return Send(
        text=text,
        template=template.strip() if template else None,
        variables=variables,
        tag=tag.strip().upper() if tag else None,
        attachments=attachments,
        buttons=_buttons(body.get("buttons", [])),
    )


def _buttons(value: Any) -> tuple[Button, ...]:
    """Quick replies: each ``{"title", "payload"?}`` (the payload defaults to the title)."""
    if not isinstance(value, list):
        raise ApiError(422, "invalid_field", "'buttons' must be a list", field="buttons")
    found = []
    for i, item in enumerate(value):
        title = item.get("title") if isinstance(item, dict) else None
        payload = item.get("payload", title) if isinstance(item, dict) else None
        if not isinstance(title, str) or not isinstance(payload, str) or set(item) - {"title", "payload"}:
            raise ApiError(422, "invalid_field", f"buttons[{i}] must be {{title, payload?}} strings", field="buttons")
        found.append(Button(title=title, payload=payload))
    return tuple(found)


def _attachment(item: Any, index: int) -> Attachment:
    where = f"attachments[{index}]"
    if not isinstance(item, dict):
        raise ApiError(422, "invalid_field", f"{where} must be an object", field=where)
    if "upload" in item:
        upload = item["upload"]
        if set(item) != {"upload"}:
            raise ApiError(422, "unknown_field", f"{where}: an upload takes no other field", field=where)
        if not isinstance(upload, str) or not upload.strip() or len(upload) > 64:
            raise ApiError(422, "invalid_field", f"{where}.upload must be an upload's id", field=f"{where}.upload")
        return Attachment(kind=MessageKind.FILE, upload_id=upload)  # its kind comes from the upload's bytes
    unknown = set(item) - {"url", "kind", "file_name", "mime_type", "size"}
    if unknown:
        raise ApiError(422, "unknown_field", f"{where}: unknown field {sorted(unknown)[0]!r}", field=where)
    url = item.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ApiError(422, "invalid_field", f"{where}.url must be an http(s) URL", field=f"{where}.url")
    kind = item.get("kind")
    if kind not in _ATTACHMENT_KINDS:
        raise ApiError(
            422,
            "attachment_not_supported",
            f"{where}.kind must be one of {', '.join(_ATTACHMENT_KINDS)}",
            rule="attachment_not_supported",
            window_closed_at=None,
            alternatives=[],
        )
    size = item.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ApiError(422, "invalid_field", f"{where}.size must be a number of bytes", field=f"{where}.size")
    for key in ("file_name", "mime_type"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise ApiError(422, "invalid_field", f"{where}.{key} must be a string", field=f"{where}.{key}")
    return Attachment(
        kind=_ATTACHMENT_KINDS[kind],
        url=url,
        file_name=item.get("file_name"),
        mime_type=item.get("mime_type"),
        size=size,
    )


# ------------------------------------------------------------------ routes


@routes.get("/api/v1/identities/{id}/eligibility")
@documented(
    "What may be sent to this identity now",
    description="Free text allowed until when (or not), the Messenger tags still valid and until when, the "
    "templates usable, and the rule that blocks, if any. Windows run from the customer's last inbound "
    "message by the provider's clock.",
    ok=(200, ELIGIBILITY),
    errors=(401, 404, 422),
    tag="outbound",
)
async def get_eligibility(request: web.Request) -> web.Response:
    await authenticated(request)
    checked = await check_eligibility(hub_of(request), path_id(request))
    return json_ok(eligibility_json(checked.identity, checked.eligibility, checked.queue))


@routes.post("/api/v1/conversations/{id}/messages")
@documented(
    "Reply in a conversation (checked by the outbound policy, then queued)",
    body=SEND_BODY,
    ok=(201, MESSAGE),
    errors=(400, 401, 403, 404, 409, 422),
    headers=IDEMPOTENCY,
    tag="outbound",
)
async def post_reply(request: web.Request) -> web.Response:
    by = await actor(request)
    hub, conversation_id = hub_of(request), path_id(request)
    body = await json_body(request)
    only_fields(body, ("text", "template", "variables", "tag", "attachments", "buttons"))
    replied = await reply(hub, by, conversation_id, _parse_send(body))
    media = await attachments_of(hub, replied.message)
    return json_ok(message_json(replied.message, plan=replied.plan, tag=replied.tag, attachments=media), status=201)


@routes.post("/api/v1/outbound")
@documented(
    "Send a new message to an identity that wrote before",
    description="`mode: chat` (default) opens an active conversation owned by you (or reuses the identity's "
    "open one when you may act on it) and returns it; `mode: close` sends and closes it with `status`. "
    "`mode: chat` without `text`, `template` or `attachments` starts the chat with no message sent: 200 with "
    '`{"conversation", "message": null}`; the window rules apply to the first message you send in it.',
    body={
        "type": "object",
        "required": ["identity"],
        "properties": {
            # quick replies go in replies only: a new message takes no buttons
            **{name: value for name, value in SEND_PROPERTIES.items() if name != "buttons"},
            "identity": {"type": "integer"},
            "mode": {"enum": ["chat", "close"]},
            "status": {"type": "string"},
        },
    },
    ok=(201, None),
    errors=(400, 401, 403, 404, 409, 422),
    headers=IDEMPOTENCY,
    tag="outbound",
    also_ok=((200, STARTED),),
)
async def post_outbound(request: web.Request) -> web.Response:
    by = await actor(request)
    body = await json_body(request)
    only_fields(body, ("identity", "text", "template", "variables", "tag", "attachments", "mode", "status"))
    identity_id = body.get("identity")
    if isinstance(identity_id, bool) or not isinstance(identity_id, int):
        raise ApiError(422, "invalid_field", "'identity' must be an identity id", field="identity")
    mode = body.get("mode", "chat")
    if mode not in ("chat", "close"):
        raise ApiError(422, "invalid_field", "'mode' must be chat or close", field="mode")
    status = body.get("status")
    if status is not None and not isinstance(status, str):
        raise ApiError(422, "invalid_field", "'status' must be a status id", field="status")
    if mode == "chat" and _is_empty(body):
        started = await start_chat(hub_of(request), by, identity_id)
        return json_ok({"conversation": _conversation_json(started.conversation), "message": None})
    sent = await send_new(hub_of(request), by, identity_id, _parse_send(body), close=mode == "close", status=status)
    return json_ok(
        {
            "conversation": _conversation_json(sent.conversation),
            "message": message_json(
                sent.message,
                plan=sent.plan,
                tag=sent.tag,
                attachments=await attachments_of(hub_of(request), sent.message),
            ),
        },
        status=201,
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
