"""Message templates over HTTP: admins write and preview, agents list and render.

Writes, preview, diff and restore need the admin role; any agent may list and
read templates and render one into a conversation they act on. Validation and
rendering are CPU-bound and run in a worker thread (each bounded by the
template budget in ``hub.templates``). At start-up an empty template store is
seeded from the ``templates/`` folder (setting ``templates.dir``; see
``hub.usecases.templates.seed_shipped``).
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import json_ok, only_fields, path_id
from hub.api._hub import hub_of, parts_of, principal
from hub.api.auth import authenticated, require_role
from hub.api.errors import ApiError
from hub.api.openapi import documented, schema
from hub.model import Agent, Channel, Role
from hub.template_files import dump_template
from hub.templates import (
    TemplateDraft,
    TemplateError,
    TemplateExists,
    TemplateInUse,
    TemplateNotFound,
    TemplateVersion,
    preview_context,
    render,
    source_for,
    usable_on,
)
from hub.usecases import outbound
from hub.usecases import templates as template_usecases

__all__ = ["setup"]

routes = web.RouteTableDef()
T = TypeVar("T")

_INPUT_FIELDS = ("name", "description", "body", "variables", "variants", "tag", "bindings")

# ------------------------------------------------------------------- schemas

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_BINDINGS = {
    "type": "object",
    "description": "Provider-approved templates for WhatsApp; each value names a declared variable "
    "or a context field such as contact.name.",
    "properties": {
        "twilio": {
            "type": "object",
            "properties": {
                "content_sid": {"type": "string", "pattern": "^HX[0-9a-fA-F]{32}$"},
                "variables": {**_STRINGS, "description": "placeholder number -> variable"},
            },
            "required": ["content_sid"],
        },
        "cloud": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "language": {"type": "string", "examples": ["en_US"]},
                "parameters": {"type": "array", "items": {"type": "string"}, "description": "in placeholder order"},
            },
            "required": ["name", "language"],
        },
    },
}
TEMPLATE_INPUT = schema(
    "TemplateInput",
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,99}$"},
            "description": {"type": ["string", "null"]},
            "body": {"type": "string", "description": "Jinja source (sandboxed, strict undefined)"},
            "variables": {**_STRINGS, "description": "variable -> example value"},
            "variants": {**_STRINGS, "description": "channel -> body replacing the default on that channel"},
            "tag": {"type": ["string", "null"], "description": "Messenger message tag"},
            "bindings": _BINDINGS,
        },
        "required": ["body"],
        "additionalProperties": False,
        "description": "POST needs name and body; PUT saves a new version (name from the path).",
    },
)
TEMPLATE = schema(
    "Template",
    {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "description": {"type": ["string", "null"]},
            "body": {"type": "string"},
            "variables": _STRINGS,
            "variants": _STRINGS,
            "tag": {"type": ["string", "null"]},
            "bindings": _BINDINGS,
            "created_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": ["integer", "null"]},
            "versions": {"type": "array", "items": {"type": "object"}, "description": "GET one template only"},
        },
    },
)
TEMPLATE_LIST = schema(
    "TemplateList",
    {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": TEMPLATE},
            "channel": {"type": ["string", "null"]},
        },
    },
)
RENDERED = schema(
    "RenderedTemplate",
    {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "channel": {"type": "string"},
            "tag": {"type": ["string", "null"]},
            "binding": {"type": ["object", "null"], "description": "the provider-approved call with values"},
        },
    },
)
PREVIEW_INPUT = schema(
    "TemplatePreviewInput",
    {
        "type": "object",
        "properties": {
            "variables": {"type": "object", "description": "absent: the template's example values"},
            "channel": {"type": "string", "enum": [c.value for c in Channel]},
            "version": {"type": "integer", "description": "absent: the current version"},
        },
        "additionalProperties": False,
    },
)
RENDER_INPUT = schema(
    "TemplateRenderInput",
    {"type": "object", "properties": {"variables": {"type": "object"}}, "additionalProperties": False},
)
DIFF = schema(
    "TemplateDiff",
    {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "from": {"type": "integer"},
            "to": {"type": "integer"},
            "diff": {"type": "string", "description": "unified diff of the two versions in file format"},
        },
    },
)
RESTORE_INPUT = schema(
    "TemplateRestoreInput",
    {"type": "object", "properties": {"version": {"type": "integer"}}, "required": ["version"]},
)

# ------------------------------------------------------------------- helpers


async def _off_loop(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Validation and rendering are CPU work: keep them off the event loop."""
    return await asyncio.to_thread(func, *args, **kwargs)


def _template_error(exc: TemplateError) -> ApiError:
    return ApiError(422, exc.code, exc.message, **exc.to_json())


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except TemplateError as exc:
        raise _template_error(exc) from None
    except TemplateNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except TemplateExists as exc:
        raise ApiError(409, "template_exists", str(exc)) from None
    except TemplateInUse as exc:
        raise ApiError(409, "template_in_use", str(exc), pending=exc.pending) from None


def _draft(body: dict[str, Any], name: str) -> TemplateDraft:
    only_fields(body, _INPUT_FIELDS)
    for key in ("variables", "variants", "bindings"):
        if key in body and body[key] is not None and not isinstance(body[key], dict):
            raise ApiError(422, "invalid_field", f"{key!r} must be an object", field=key)
    for key in ("description", "tag"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ApiError(422, "invalid_field", f"{key!r} must be a string", field=key)
    source = body.get("body")
    if not isinstance(source, str):
        raise ApiError(422, "missing_field", "'body' is required and must be a string", field="body")
    return TemplateDraft(
        name=name,
        body=source,
        description=body.get("description") or None,
        variables=body.get("variables") or {},
        variants=body.get("variants") or {},
        tag=body.get("tag") or None,
        bindings=body.get("bindings") or {},
    )


def _channel(value: Any, field: str = "channel") -> Channel:
    try:
        return Channel(value)
    except ValueError:
        choices = ", ".join(c.value for c in Channel)
        raise ApiError(422, "invalid_field", f"{field!r} must be one of {choices}", field=field) from None


def _variables(body: dict[str, Any], default: dict[str, str] | None = None) -> dict[str, Any]:
    variables = body.get("variables", default)
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise ApiError(422, "invalid_field", "'variables' must be an object", field="variables")
    return variables


def _version_summary(template: TemplateVersion) -> dict[str, Any]:
    return {
        "version": template.version,
        "created_at": template.created_at,
        "created_by": template.created_by,
        "description": template.description,
    }


def _for_channel(template: TemplateVersion, channel: Channel) -> dict[str, Any]:
    """What an agent needs to pick a template on one channel."""
    return {
        "name": template.name,
        "version": template.version,
        "description": template.description,
        "body": source_for(template, channel),
        "variables": template.variables,
        "tag": template.tag if channel is Channel.MESSENGER else None,
        "bindings": template.bindings if channel is Channel.WHATSAPP else {},
    }


def _name(request: web.Request) -> str:
    return request.match_info["name"]


async def _admin(request: web.Request) -> Agent:
    agent = await authenticated(request)
    require_role(agent, Role.ADMIN)
    return agent


# -------------------------------------------------------------------- routes


@routes.post("/api/v1/templates")
@documented(
    "Create a template (admin)",
    description="Validated before saving: 422 with `code`, `message`, `line` (and `missing`, `channel`) "
    "when it does not compile, reads an undeclared variable, touches an unsafe attribute, renders "
    "empty or longer than a channel allows.",
    body=TEMPLATE_INPUT,
    ok=(201, TEMPLATE),
    errors=(400, 403, 409, 422),
    tag="templates",
)
async def templates_create(request: web.Request) -> web.Response:
    agent = await _admin(request)
    body = await json_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(422, "missing_field", "'name' is required", field="name")
    saved = await template_usecases.create(hub_of(request), principal(request, agent), _draft(body, name))
    return json_ok(saved.to_json(), status=201)


@routes.get("/api/v1/templates")
@documented(
    "List templates",
    description="Current versions. `?channel=` lists those usable on that channel, with the body, tag "
    "and bindings that apply there (any agent).",
    query={"channel": {"type": "string", "enum": [c.value for c in Channel]}},
    ok=(200, TEMPLATE_LIST),
    errors=(422,),
    tag="templates",
)
async def templates_index(request: web.Request) -> web.Response:
    await authenticated(request)
    templates = await template_usecases.current_templates(hub_of(request))
    raw = request.query.get("channel")
    if raw:
        channel = _channel(raw)
        items = [_for_channel(t, channel) for t in templates if usable_on(t, channel)]
        return json_ok({"items": items, "channel": channel.value})
    return json_ok({"items": [t.to_json() for t in templates], "channel": None})


@routes.get("/api/v1/templates/{name}")
@documented(
    "One template with its version history",
    description="`?version=N` shows that version instead of the current one.",
    query={"version": {"type": "integer"}},
    ok=(200, TEMPLATE),
    errors=(404, 422),
    tag="templates",
)
async def templates_show(request: web.Request) -> web.Response:
    await authenticated(request)
    name = _name(request)
    version = _query_version(request, "version")
    chosen, history = await template_usecases.shown(hub_of(request), name, version)
    return json_ok(
        {**chosen.to_json(), "current_version": history[-1].version, "versions": [_version_summary(t) for t in history]}
    )


@routes.put("/api/v1/templates/{name}")
@documented(
    "Save a new version of a template (admin)",
    body=TEMPLATE_INPUT,
    ok=(200, TEMPLATE),
    errors=(400, 403, 404, 422),
    tag="templates",
)
async def templates_update(request: web.Request) -> web.Response:
    agent = await _admin(request)
    name = _name(request)
    body = await json_body(request)
    if body.get("name") not in (None, name):
        raise ApiError(422, "invalid_field", "a template cannot be renamed; 'name' must match the path", field="name")
    draft = _draft({k: v for k, v in body.items() if k != "name"}, name)
    saved = await template_usecases.save(hub_of(request), principal(request, agent), draft)
    return json_ok(saved.to_json())


@routes.post("/api/v1/templates/{name}/preview")
@documented(
    "Render a template with given or example values (admin)",
    description="Uses the example contact, agent and conversation. Without `channel` the default "
    "body is shown (for WhatsApp, with every provider's binding). 422 names missing variables.",
    body=PREVIEW_INPUT,
    ok=(200, RENDERED),
    errors=(400, 403, 404, 422),
    tag="templates",
)
async def templates_preview(request: web.Request) -> web.Response:
    await _admin(request)
    body = await json_body(request, allow_empty=True)
    only_fields(body, ("variables", "channel", "version"))
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ApiError(422, "invalid_field", "'version' must be an integer", field="version")
    template = await template_usecases.version_of(hub_of(request), _name(request), version)
    channel = _channel(body["channel"]) if body.get("channel") is not None else None
    variables = _variables(body, template.variables)
    shown = channel or _default_channel(template)
    rendered = await _guard(_off_loop(render, template, variables, channel=shown, context=preview_context(shown)))
    answer = {**rendered.to_json(), "channel": shown.value}
    if channel is None:
        answer["tag"] = template.tag
    return json_ok(answer)


def _default_channel(template: TemplateVersion) -> Channel:
    """Without a channel the preview shows the default body; WhatsApp when it uses it (bindings show)."""
    for channel in (Channel.WHATSAPP, Channel.MESSENGER, Channel.VIBER):
        if channel.value not in template.variants:
            return channel
    return Channel.WHATSAPP


def _query_version(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise ApiError(422, "invalid_query", f"{key!r} must be a version number", field=key)
    return int(raw)


@routes.get("/api/v1/templates/{name}/diff")
@documented(
    "Unified diff between two versions (admin)",
    description="`from` defaults to the version before `to`; `to` to the current version. The diff "
    "compares the file format, so metadata changes show too.",
    query={"from": {"type": "integer"}, "to": {"type": "integer"}},
    ok=(200, DIFF),
    errors=(403, 404, 422),
    tag="templates",
)
async def templates_diff(request: web.Request) -> web.Response:
    await _admin(request)
    name = _name(request)
    history = {t.version: t for t in await template_usecases.history(hub_of(request), name)}
    to = _query_version(request, "to") or max(history)
    start = _query_version(request, "from") or max((v for v in history if v < to), default=to)
    for version in (start, to):
        if version not in history:
            raise ApiError(404, "not_found", f"template {name!r} has no version {version}")
    diff = difflib.unified_diff(
        dump_template(history[start]).splitlines(keepends=True),
        dump_template(history[to]).splitlines(keepends=True),
        fromfile=f"{name}@{start}",
        tofile=f"{name}@{to}",
    )
    return json_ok({"name": name, "from": start, "to": to, "diff": "".join(diff)})


@routes.post("/api/v1/templates/{name}/restore")
@documented(
    "Restore an old version as a new current version (admin)",
    body=RESTORE_INPUT,
    ok=(200, TEMPLATE),
    errors=(400, 403, 404, 422),
    tag="templates",
)
async def templates_restore(request: web.Request) -> web.Response:
    agent = await _admin(request)
    body = await json_body(request)
    only_fields(body, ("version",))
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ApiError(422, "invalid_field", "'version' must be a version number", field="version")
    saved = await template_usecases.restore(hub_of(request), principal(request, agent), _name(request), version)
    return json_ok(saved.to_json())


@routes.delete("/api/v1/templates/{name}")
@documented(
    "Delete a template and its history (admin)",
    description="409 `template_in_use` while a queued outbound message was rendered from it.",
    ok=(204, None),
    errors=(403, 404, 409),
    tag="templates",
)
async def templates_delete(request: web.Request) -> web.Response:
    agent = await _admin(request)
    await template_usecases.delete(hub_of(request), principal(request, agent), _name(request))
    return json_ok(None, status=204)


@routes.post("/api/v1/conversations/{id}/templates/{name}/render")
@documented(
    "Render a template into a conversation",
    description="With the conversation's contact, identity, queue, the calling agent, and the "
    "conversation's channel (variant, limit, tag, WhatsApp binding for the account's provider). "
    "Nothing is sent; the answer is what the agent would send.",
    body=RENDER_INPUT,
    ok=(200, RENDERED),
    errors=(400, 403, 404, 422),
    tag="templates",
)
async def conversation_template_render(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    conversation_id = path_id(request)
    body = await json_body(request, allow_empty=True)
    only_fields(body, ("variables",))
    rendered = await outbound.render_reply(
        hub_of(request), principal(request, agent), conversation_id, _name(request), _variables(body)
    )
    return json_ok({**rendered.template.to_json(), "channel": rendered.channel.value})


# ----------------------------------------------------------------- seeding


async def _seed(app: web.Application) -> AsyncIterator[None]:
    await template_usecases.seed_shipped(parts_of(app))
    yield


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_seed)
