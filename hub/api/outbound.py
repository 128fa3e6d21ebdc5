"""Replies and new outbound messages: checked by hub.policy, queued in the durable outbox.

Routes: ``GET /api/v1/identities/{id}/eligibility``, ``POST /api/v1/conversations/{id}/messages``,
``POST /api/v1/outbound``. A refusal is 422 (404 for an unknown identity) with
``{"error": {"code", "message", "rule", "window_closed_at", "alternatives"}}`` and
queues nothing. The delivery workers run as this module's cleanup context.
The "send a new message" search is ``GET /api/v1/identities?q=&channel=&contacted=1``
(hub/api/contacts.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import json_ok, only_fields, path_id
from hub.api.access import can_act
from hub.api.auth import authenticated
from hub.api.errors import ApiError
from hub.api.keys import BUS, CLOCK, OUTBOX, SETTINGS, STORE
from hub.api.openapi import documented, schema
from hub.events import ConversationUpdated
from hub.model import (
    Agent,
    Attachment,
    Channel,
    ChannelAccount,
    Conversation,
    ConversationState,
    Identity,
    Message,
    MessageKind,
    TemplateBinding,
)
from hub.outbox import facts_for, send_plan
from hub.policy import Draft, Refused, TemplateOption, binding_fits, decide, eligibility
from hub.routing import close_refusal
from hub.store.admin import get_queue, list_statuses
from hub.store.contacts import get_contact
from hub.store.conversations import get_conversation
from hub.store.outbound import ConversationTaken, NewOutbound, load_identity, open_conversation_of
from hub.store.templates import get_template, list_templates
from hub.templates import TemplateError, TemplateNotFound, TemplateVersion, render

__all__ = ["OUTBOX", "message_json", "setup"]

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

_ATTACHMENT_KINDS = {k.value: k for k in (MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.FILE)}
_PROVIDER_KEYS = ("twilio", "cloud")

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
        },
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
            "required": ["url", "kind"],
            "properties": {
                "url": {"type": "string"},
                "kind": {"enum": list(_ATTACHMENT_KINDS)},
                "file_name": {"type": "string"},
                "mime_type": {"type": "string"},
                "size": {"type": "integer"},
            },
        },
    },
}
SEND_BODY = {"type": "object", "properties": SEND_PROPERTIES}
IDEMPOTENCY = {
    "Idempotency-Key": {"type": "string", "description": "a retry with the same key returns the first answer"}
}


# ------------------------------------------------------------------ views


def message_json(message: Message, *, plan: dict[str, Any] | None = None, tag: str | None = None) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction.value,
        "author": message.author.value,
        "agent_id": message.agent_id,
        "kind": message.kind.value,
        "text": message.text,
        "attachments": [a.to_json() for a in message.attachments],
        "created_at": message.created_at,
        "delivery_state": message.delivery_state.value,
        "provider_message_id": message.provider_message_id,
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


def refusal_error(refused: Refused) -> ApiError:
    return ApiError(
        422,
        refused.rule,
        refused.message,
        rule=refused.rule,
        window_closed_at=refused.window_closed_at.isoformat() if refused.window_closed_at else None,
        alternatives=[a.to_json() for a in refused.alternatives],
    )


# ---------------------------------------------------------------- helpers


def _account(request: web.Request, identity: Identity) -> ChannelAccount:
    try:
        return request.app[SETTINGS].account(identity.account_id)
    except KeyError:
        raise ApiError(
            422,
            "account_not_configured",
            f"channel account {identity.account_id!r} is no longer configured; nothing can be sent to it",
        ) from None


async def _identity(request: web.Request, identity_id: int) -> Identity:
    identity = await load_identity(request.app[STORE], identity_id)
    if identity is None:
        raise ApiError(404, "identity_not_found", f"no identity {identity_id}")
    return identity


def _options(templates: list[TemplateVersion]) -> list[TemplateOption]:
    return [
        TemplateOption(
            name=t.name,
            providers=frozenset(p for p in _PROVIDER_KEYS if (t.bindings or {}).get(p)),
            tag=t.tag,
        )
        for t in templates
    ]


@dataclass(frozen=True, slots=True)
class _Request:
    text: str | None
    template: str | None
    variables: dict[str, Any]
    tag: str | None
    attachments: tuple[Attachment, ...]


def _parse_send(body: dict[str, Any]) -> _Request:
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
    return _Request(
        text=text,
        template=template.strip() if template else None,
        variables=variables,
        tag=tag.strip().upper() if tag else None,
        attachments=attachments,
    )


def _attachment(item: Any, index: int) -> Attachment:
    where = f"attachments[{index}]"
    if not isinstance(item, dict):
        raise ApiError(422, "invalid_field", f"{where} must be an object", field=where)
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


async def _plan(
    request: web.Request,
    agent: Agent,
    identity: Identity,
    account: ChannelAccount,
    send: _Request,
    conversation: Conversation | None,
) -> tuple[NewOutbound, dict[str, Any]]:
    """Render (if a template), ask the policy; a refusal raises, an allowed send becomes a NewOutbound."""
    store = request.app[STORE]
    now = request.app[CLOCK]()
    text = send.text
    tag = send.tag
    binding: TemplateBinding | None = None
    version: int | None = None
    if send.template is not None:
        try:
            template = await get_template(store, send.template)
        except TemplateNotFound:
            raise ApiError(422, "template_not_found", f"no template {send.template!r}", field="template") from None
        queue_id = conversation.queue_id if conversation else account.queue
        context: dict[str, Any] = {"identity": identity, "agent": agent, "conversation": conversation}
        queue = await get_queue(store, queue_id)
        if queue is not None:
            context["queue"] = queue
        if identity.contact_id is not None:
            context["contact"] = await get_contact(store, identity.contact_id)
        provider = account.provider if account.provider in _PROVIDER_KEYS else None
        try:
            # bounded, but up to a second of CPU: never on the event loop
            rendered = await asyncio.to_thread(
                render, template, send.variables, channel=identity.channel, context=context, provider=provider
            )
        except TemplateError as exc:
            raise ApiError(422, exc.code, exc.message, **exc.to_json()) from None
        text, version = rendered.text, rendered.version
        binding = rendered.binding if binding_fits(rendered.binding, account.provider) else None
        tag = tag or rendered.tag
    draft = Draft(text=text, attachments=send.attachments, template=send.template, binding=binding, tag=tag)
    options = _options(await list_templates(store))
    decision = decide(facts_for(identity, account.provider), draft, now, options)
    if isinstance(decision, Refused):
        raise refusal_error(decision)
    if send.template is not None:
        kind = MessageKind.TEMPLATE
    elif send.attachments:
        kind = send.attachments[0].kind
    else:
        kind = MessageKind.TEXT
    plan = send_plan(decision, template=send.template, version=version, binding=binding)
    return (
        NewOutbound(
            account_id=identity.account_id,
            identity_id=identity.id,
            agent_id=agent.id,
            kind=kind,
            send_plan=plan,
            conversation_id=conversation.id if conversation else None,
            queue_id=account.queue,
            text=text,
            attachments=send.attachments,
            template_name=send.template,
            template_version=version,
            tag=(decision.tag or tag) if identity.channel is Channel.MESSENGER else None,
        ),
        plan,
    )


def _published(request: web.Request, events: list[Any]) -> None:
    request.app[BUS].publish_all(events)


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
    identity = await _identity(request, path_id(request))
    account = _account(request, identity)
    options = _options(await list_templates(request.app[STORE]))
    result = eligibility(facts_for(identity, account.provider), request.app[CLOCK](), options)
    blocking = result.blocking
    return json_ok(
        {
            "identity": identity.id,
            "channel": identity.channel.value,
            "account": identity.account_id,
            **result.to_json(),
            "alternatives": [a.to_json() for a in blocking.alternatives] if blocking else [],
        }
    )


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
    agent = await authenticated(request)
    conversation_id = path_id(request)
    found = await get_conversation(request.app[STORE], conversation_id)
    if found is None:
        raise ApiError(404, "not_found", f"no conversation {conversation_id}")
    conversation, participants = found.conversation, found.participants
    if not can_act(agent, conversation, participants):
        raise ApiError(403, "forbidden", "this conversation is not yours")
    if conversation.state is ConversationState.CLOSED:
        raise ApiError(409, "conversation_closed", "the conversation is closed; start a new one with /api/v1/outbound")
    body = await json_body(request)
    only_fields(body, ("text", "template", "variables", "tag", "attachments"))
    send = _parse_send(body)
    identity = await _identity(request, conversation.identity_id)
    account = _account(request, identity)
    new, plan = await _plan(request, agent, identity, account, send, conversation)
    queued = await request.app[OUTBOX].accept(new, request.app[CLOCK]())
    _published(request, queued.events)
    return json_ok(message_json(queued.message, plan=plan, tag=new.tag), status=201)


@routes.post("/api/v1/outbound")
@documented(
    "Send a new message to an identity that wrote before",
    description="`mode: chat` (default) opens an active conversation owned by you (or reuses the identity's "
    "open one when you may act on it) and returns it; `mode: close` sends and closes it with `status`.",
    body={
        "type": "object",
        "required": ["identity"],
        "properties": {
            **SEND_PROPERTIES,
            "identity": {"type": "integer"},
            "mode": {"enum": ["chat", "close"]},
            "status": {"type": "string"},
        },
    },
    ok=(201, None),
    errors=(400, 401, 404, 409, 422),
    headers=IDEMPOTENCY,
    tag="outbound",
)
async def post_outbound(request: web.Request) -> web.Response:
    agent = await authenticated(request)
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
    send = _parse_send(body)
    identity = await _identity(request, identity_id)
    account = _account(request, identity)
    store = request.app[STORE]
    open_ = await open_conversation_of(store, identity.id)
    conversation = None
    if open_ is not None:
        conversation, participants = open_
        if not can_act(agent, conversation, participants):
            raise ApiError(
                409,
                "conversation_taken",
                "this customer already has an open conversation that is not yours",
                conversation_id=conversation.id,
            )
    close_status = None
    if mode == "close":
        # queues and statuses live in the database (the API edits them); the config only seeded them
        store = request.app[STORE]
        queue_id = conversation.queue_id if conversation else account.queue
        queue = await get_queue(store, queue_id)
        if queue is None:
            raise ApiError(422, "queue_not_found", f"the queue {queue_id!r} no longer exists", field="status")
        refusal = close_refusal(status, queue, [s.id for s in await list_statuses(store)])
        if refusal is not None:
            raise ApiError(422, refusal[0], refusal[1], field="status")
        close_status = status
    new, plan = await _plan(request, agent, identity, account, send, conversation)
    if close_status is not None:
        new = replace(new, close_status=close_status)
    try:
        queued = await request.app[OUTBOX].accept(new, request.app[CLOCK]())
    except ConversationTaken:
        raise ApiError(409, "conversation_taken", "this customer's conversation was opened meanwhile") from None
    result = queued.conversation or conversation  # read back when opened or closed; else unchanged
    assert result is not None
    events = list(queued.events)
    if close_status is not None:
        events.append(_conversation_event(result.id, "closed", agent.id, status=close_status))
    elif queued.opened:
        events.append(_conversation_event(result.id, "opened", agent.id))
    _published(request, events)
    return json_ok(
        {
            "conversation": _conversation_json(result),
            "message": message_json(queued.message, plan=plan, tag=new.tag),
        },
        status=201,
    )


def _conversation_event(conversation_id: int, action: str, agent_id: int, **data: Any) -> ConversationUpdated:
    return ConversationUpdated(
        conversation_id=conversation_id, action=action, by=agent_id, audience=(agent_id,), details=data
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
