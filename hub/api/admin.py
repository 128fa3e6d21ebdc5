"""Admin API: queues (with members and live figures), statuses, agents, channel accounts.

Who may do what: every agent lists queues and statuses; supervisors and admins
list agents and accounts and set queue members; only admins create, change or
delete queues, statuses and agents. Nobody changes their own role or
deactivates themselves. Channel accounts come from the configuration file and
are read-only here; their secrets never leave the hub.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from string import Formatter
from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import MISSING, boolean, given, integer, invalid, json_ok, only_fields, path_id, text
from hub.api._hub import actor, hub_of, principal
from hub.api.auth import agent_json, authenticated, require_role
from hub.api.bot_figures import add_bot_figures
from hub.api.errors import ApiError
from hub.api.keys import BUS, CLOCK, SETTINGS, STORE
from hub.api.openapi import documented, ref, schema
from hub.audit import record
from hub.events import QueueChanged
from hub.model import Agent, Queue, Role, Status
from hub.registry import provider_facts
from hub.store._crud import Conflict, Invalid
from hub.store.admin import (
    AccountHealth,
    AgentUpdate,
    QueueFigures,
    agent_loads,
    create_queue,
    create_status,
    delete_queue,
    delete_status,
    get_queue,
    list_account_health,
    list_agents,
    list_queues,
    list_statuses,
    queue_figures,
    queue_members,
    set_queue_members,
    update_queue,
    update_status,
)
from hub.store.agents import AgentExists, create_agent
from hub.store.routing import Released
from hub.usecases.agents import AgentChange, change_agent, deactivate_agent

__all__ = ["setup"]

routes = web.RouteTableDef()

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
MIN_PASSWORD = 8
MAX_CAPACITY = 50
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
_ADMIN = (Role.ADMIN,)
_SUPERVISION = (Role.SUPERVISOR, Role.ADMIN)

# ------------------------------------------------------------------ schemas

_QUEUE_PROPS: dict[str, Any] = {
    "id": {"type": "string", "pattern": _ID.pattern},
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
STATUS = schema(
    "Status",
    {
        "type": "object",
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
        "required": ["id", "name"],
    },
)
DEACTIVATION = schema(
    "AgentDeactivation",
    {
        "type": "object",
        "description": "What a deactivation did, by conversation id. Repeating it finds nothing more to do.",
        "properties": {
            "tokens_revoked": {"type": "integer", "description": "sessions and bearer tokens ended"},
            "offers_withdrawn": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "pending offers given back; offered to the next agent by the normal routing",
            },
            "requeued": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "conversations they owned alone, back in their queue's waiting list",
            },
            "handed_over": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"conversation": {"type": "integer"}, "owner": {"type": "integer"}},
                },
                "description": "conversations they owned with others; the longest-present participant owns them",
            },
            "left": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "conversations they were invited to",
            },
        },
        "required": ["tokens_revoked", "offers_withdrawn", "requeued", "handed_over", "left"],
    },
)
ADMIN_AGENT = schema(
    "AdminAgent",
    {
        "allOf": [
            ref("Agent"),
            {
                "type": "object",
                "properties": {
                    "active": {"type": "boolean"},
                    "load": {"type": "integer", "description": "active conversations owned plus offers pending"},
                    "deactivation": {**DEACTIVATION, "description": "only in the answer to a deactivating PUT"},
                },
            },
        ]
    },
)
_AGENT_PROPS: dict[str, Any] = {
    "login": {"type": "string", "pattern": _LOGIN.pattern},
    "password": {"type": "string", "format": "password", "minLength": MIN_PASSWORD},
    "role": {"type": "string", "enum": [r.value for r in Role], "default": "agent"},
    "display_name": {"type": "string", "maxLength": 200},
    "capacity": {"type": "integer", "minimum": 1, "maximum": MAX_CAPACITY, "default": 2},
    "queues": {"type": "array", "items": {"type": "string"}},
    "active": {"type": "boolean", "description": "PUT only: false deactivates, true reactivates"},
}
AGENT_INPUT = schema(
    "AgentInput",
    {
        "type": "object",
        "properties": _AGENT_PROPS,
        "required": ["login", "password"],
        "additionalProperties": False,
        "description": "On PUT `login` is not accepted and every other field is optional; a new password "
        "or a deactivation revokes the agent's sessions and tokens.",
    },
)
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


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"items": {"type": "array", "items": item}},
        "required": ["items"],
    }


# ------------------------------------------------------------------ helpers


def _conflict(exc: Conflict) -> ApiError:
    return ApiError(409, exc.code, exc.message, **exc.extra)


def _invalid(exc: Invalid) -> ApiError:
    return invalid(exc.field, exc.message, f"unknown_{exc.field.rstrip('s')}")


def _queue_json(queue: Queue, members: list[int], figures: QueueFigures | None) -> dict[str, Any]:
    f = figures or QueueFigures()
    return {
        "id": queue.id,
        "name": queue.name,
        "number": queue.number,
        "offer_timeout": queue.offer_timeout,
        "statuses": list(queue.statuses),
        "url_template": queue.url_template,
        "transfer_back": queue.transfer_back,
        "members": members,
        "figures": {
            "waiting": f.waiting,
            "offered": f.offered,
            "active": f.active,
            "longest_wait_seconds": f.longest_wait_seconds,
            "agents": {"ready": f.ready, "busy": f.busy, "paused": f.paused, "offline": f.offline},
        },
    }


async def _one_queue_json(request: web.Request, queue: Queue) -> dict[str, Any]:
    store = request.app[STORE]
    members = (await queue_members(store)).get(queue.id, [])
    figures = (await queue_figures(store, request.app[CLOCK]())).get(queue.id)
    found = _queue_json(queue, members, figures)
    await add_bot_figures(request, [found])
    return found


def _string_list(body: dict[str, Any], key: str, pattern: re.Pattern[str] = _ID) -> Any:
    if key not in body:
        return MISSING
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and pattern.match(v) for v in value):
        raise invalid(key, f"{key!r} must be a list of ids")
    return list(dict.fromkeys(value))


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
        statuses=_string_list(body, "statuses"),
        url_template=_url_template(text(body, "url_template", max_length=2000)),
        transfer_back=boolean(body, "transfer_back"),
    )


def _publish_queue(request: web.Request, queue_id: str, action: str) -> None:
    request.app[BUS].publish(QueueChanged(queue_id=queue_id, action=action))


async def _audit(
    request: web.Request,
    action: str,
    target: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Record the caller's change in the audit log (hub/audit.py), right after it committed."""
    await record(
        request.app[STORE],
        action,
        actor=await actor(request),
        at=request.app[CLOCK](),
        target=target,
        before=before,
        after=after,
    )


def _queue_audited(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "number": queue.number,
        "offer_timeout": queue.offer_timeout,
        "statuses": list(queue.statuses),
        "url_template": queue.url_template,
    }


# ------------------------------------------------------------------- queues


@routes.get("/api/v1/queues")
@documented(
    "List queues with members and live figures",
    description="Figures: conversations waiting / offered / active, the longest wait in seconds, and member "
    "agents ready (free capacity), busy (ready, full), paused and offline.",
    ok=(200, _list_of(QUEUE)),
    tag="admin",
)
async def queues_index(request: web.Request) -> web.Response:
    await authenticated(request)
    store = request.app[STORE]
    members = await queue_members(store)
    figures = await queue_figures(store, request.app[CLOCK]())
    items = [_queue_json(q, members.get(q.id, []), figures.get(q.id)) for q in await list_queues(store)]
    await add_bot_figures(request, items)
    return json_ok({"items": items})


@routes.post("/api/v1/queues")
@documented("Create a queue (admin)", body=QUEUE_INPUT, ok=(201, QUEUE), errors=(400, 403, 409, 422), tag="admin")
async def queues_create(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_ADMIN)
    body = await json_body(request)
    queue_id = text(body, "id", required=True, nullable=False, max_length=64)
    if not _ID.match(queue_id):
        raise invalid("id", "'id' may hold letters, digits, '_', '-' and '.' (at most 64)")
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
    try:
        await create_queue(request.app[STORE], queue)
    except Conflict as exc:
        raise _conflict(exc) from None
    except Invalid as exc:
        raise _invalid(exc) from None
    await _audit(request, "queue.created", f"queue:{queue.id}", after=_queue_audited(queue))
    _publish_queue(request, queue.id, "created")
    return json_ok(await _one_queue_json(request, queue), status=201)


@routes.get("/api/v1/queues/{id}")
@documented("One queue with members and live figures", ok=(200, QUEUE), errors=(404,), tag="admin")
async def queues_show(request: web.Request) -> web.Response:
    await authenticated(request)
    queue = await get_queue(request.app[STORE], request.match_info["id"])
    if queue is None:
        raise ApiError(404, "not_found", f"no queue {request.match_info['id']!r}")
    return json_ok(await _one_queue_json(request, queue))


@routes.put("/api/v1/queues/{id}")
@documented("Change a queue (admin)", body=QUEUE_INPUT, ok=(200, QUEUE), errors=(400, 403, 404, 422), tag="admin")
async def queues_update(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_ADMIN)
    fields = _queue_fields(await json_body(request), creating=False)
    queue_id = request.match_info["id"]
    before = await get_queue(request.app[STORE], queue_id)
    try:
        queue = await update_queue(request.app[STORE], queue_id, fields)
    except Invalid as exc:
        raise _invalid(exc) from None
    if queue is None:
        raise ApiError(404, "not_found", f"no queue {queue_id!r}")
    await _audit(
        request,
        "queue.updated",
        f"queue:{queue_id}",
        before=_queue_audited(before) if before is not None else None,
        after=_queue_audited(queue),
    )
    _publish_queue(request, queue_id, "updated")
    return json_ok(await _one_queue_json(request, queue))


@routes.delete("/api/v1/queues/{id}")
@documented(
    "Delete a queue (admin)",
    description="409 `queue_in_use` while a channel account routes into it or a conversation in it is open.",
    ok=(204, None),
    errors=(403, 404, 409),
    tag="admin",
)
async def queues_delete(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_ADMIN)
    queue_id = request.match_info["id"]
    before = await get_queue(request.app[STORE], queue_id)
    if before is None:
        raise ApiError(404, "not_found", f"no queue {queue_id!r}")
    used_by = [a.id for a in request.app[SETTINGS].accounts if a.queue == queue_id]
    try:
        deleted = await delete_queue(request.app[STORE], queue_id, used_by_accounts=used_by)
    except Conflict as exc:
        raise _conflict(exc) from None
    if not deleted:
        raise ApiError(404, "not_found", f"no queue {queue_id!r}")
    await _audit(request, "queue.deleted", f"queue:{queue_id}", before=_queue_audited(before))
    _publish_queue(request, queue_id, "deleted")
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
    require_role(await authenticated(request), *_SUPERVISION)
    body = await json_body(request)
    only_fields(body, ("agents",))
    agent_ids = body.get("agents")
    if not isinstance(agent_ids, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in agent_ids):
        raise invalid(
            "agents",
            "'agents' must be a list of agent ids",
            "missing_field" if "agents" not in body else "invalid_field",
        )
    queue_id = request.match_info["id"]
    members_before = (await queue_members(request.app[STORE])).get(queue_id, [])
    try:
        members = await set_queue_members(request.app[STORE], queue_id, agent_ids)
    except Invalid as exc:
        raise _invalid(exc) from None
    if members is None:
        raise ApiError(404, "not_found", f"no queue {queue_id!r}")
    queue = await get_queue(request.app[STORE], queue_id)
    assert queue is not None
    await _audit(
        request,
        "queue.members_changed",
        f"queue:{queue_id}",
        before={"members": sorted(members_before)},
        after={"members": sorted(members)},
    )
    _publish_queue(request, queue_id, "members")
    return json_ok(await _one_queue_json(request, queue))


# ----------------------------------------------------------------- statuses


@routes.get("/api/v1/statuses")
@documented("List the status catalogue", ok=(200, _list_of(STATUS)), tag="admin")
async def statuses_index(request: web.Request) -> web.Response:
    await authenticated(request)
    items = [{"id": s.id, "name": s.name} for s in await list_statuses(request.app[STORE])]
    return json_ok({"items": items})


@routes.post("/api/v1/statuses")
@documented(
    "Create a status (admin)",
    body={
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": _ID.pattern}, "name": {"type": "string"}},
        "required": ["id", "name"],
        "additionalProperties": False,
    },
    ok=(201, STATUS),
    errors=(400, 403, 409, 422),
    tag="admin",
)
async def statuses_create(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_ADMIN)
    body = await json_body(request)
    only_fields(body, ("id", "name"))
    status_id = text(body, "id", required=True, nullable=False, max_length=64)
    if not _ID.match(status_id):
        raise invalid("id", "'id' may hold letters, digits, '_', '-' and '.' (at most 64)")
    name = text(body, "name", required=True, nullable=False)
    try:
        status = await create_status(request.app[STORE], Status(id=status_id, name=name))
    except Conflict as exc:
        raise _conflict(exc) from None
    await _audit(request, "status.created", f"status:{status.id}", after={"name": status.name})
    return json_ok({"id": status.id, "name": status.name}, status=201)


@routes.put("/api/v1/statuses/{id}")
@documented(
    "Rename a status (admin)",
    body={
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    },
    ok=(200, STATUS),
    errors=(400, 403, 404, 422),
    tag="admin",
)
async def statuses_update(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_ADMIN)
    body = await json_body(request)
    only_fields(body, ("name",))
    name = text(body, "name", required=True, nullable=False)
    before = {s.id: s.name for s in await list_statuses(request.app[STORE])}.get(request.match_info["id"])
    status = await update_status(request.app[STORE], request.match_info["id"], name)
    if status is None:
        raise ApiError(404, "not_found", f"no status {request.match_info['id']!r}")
    await _audit(request, "status.updated", f"status:{status.id}", before={"name": before}, after={"name": status.name})
    return json_ok({"id": status.id, "name": status.name})


@routes.delete("/api/v1/statuses/{id}")
@documented(
    "Delete a status (admin)",
    description="409 `status_in_use` while a queue allows it at close.",
    ok=(204, None),
    errors=(403, 404, 409),
    tag="admin",
)
async def statuses_delete(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_ADMIN)
    try:
        deleted = await delete_status(request.app[STORE], request.match_info["id"])
    except Conflict as exc:
        raise _conflict(exc) from None
    if not deleted:
        raise ApiError(404, "not_found", f"no status {request.match_info['id']!r}")
    await _audit(request, "status.deleted", f"status:{request.match_info['id']}")
    return json_ok(None, status=204)


# ------------------------------------------------------------------- agents


def _admin_agent_json(agent: Agent, active: bool, load: int) -> dict[str, Any]:
    return {**agent_json(agent), "active": active, "load": load}


def _agent_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    allowed = tuple(k for k in _AGENT_PROPS if (k != "active" if creating else k != "login"))
    only_fields(body, allowed)
    role = text(body, "role", nullable=False, max_length=16)
    if role is not MISSING and role not in {r.value for r in Role}:
        raise invalid("role", f"'role' must be one of {', '.join(r.value for r in Role)}")
    password = body.get("password", MISSING)
    if password is not MISSING and (not isinstance(password, str) or len(password) < MIN_PASSWORD):
        raise invalid("password", f"'password' must be a string of at least {MIN_PASSWORD} characters")
    if creating and password is MISSING:
        raise invalid("password", "'password' is required", "missing_field")
    return given(
        role=role,
        display_name=text(body, "display_name", nullable=False),
        capacity=integer(body, "capacity", minimum=1, maximum=MAX_CAPACITY),
        queues=_string_list(body, "queues"),
        password=password,
        active=boolean(body, "active") if not creating else MISSING,
    )


async def _known_queues(request: web.Request, wanted: list[str]) -> None:
    known = {q.id for q in await list_queues(request.app[STORE])}
    missing = [q for q in wanted if q not in known]
    if missing:
        raise invalid("queues", f"unknown queue {missing[0]!r}", "unknown_queue")


@routes.get("/api/v1/agents")
@documented(
    "List agents (supervisor, admin)",
    query={"inactive": {"type": "integer", "enum": [0, 1], "description": "1: include deactivated agents"}},
    ok=(200, _list_of(ADMIN_AGENT)),
    errors=(403,),
    tag="admin",
)
async def agents_index(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_SUPERVISION)
    include = request.query.get("inactive") in ("1", "true")
    loads = await agent_loads(request.app[STORE])
    found = await list_agents(request.app[STORE], include_inactive=include)
    return json_ok({"items": [_admin_agent_json(a, active, loads.get(a.id, 0)) for a, active in found]})


@routes.get("/api/v1/agents/{id}")
@documented("One agent (supervisor, admin)", ok=(200, ADMIN_AGENT), errors=(403, 404), tag="admin")
async def agents_show(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_SUPERVISION)
    agent_id = path_id(request)
    for agent, active in await list_agents(request.app[STORE], include_inactive=True):
        if agent.id == agent_id:
            loads = await agent_loads(request.app[STORE])
            return json_ok(_admin_agent_json(agent, active, loads.get(agent.id, 0)))
    raise ApiError(404, "not_found", f"no agent {agent_id}")


@routes.post("/api/v1/agents")
@documented(
    "Create an agent (admin)", body=AGENT_INPUT, ok=(201, ADMIN_AGENT), errors=(400, 403, 409, 422), tag="admin"
)
async def agents_create(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_ADMIN)
    body = await json_body(request)
    login = text(body, "login", required=True, nullable=False, max_length=100)
    if not _LOGIN.match(login):
        raise invalid("login", "'login' may hold letters, digits and _ . @ + - (at most 100)")
    fields = _agent_fields({k: v for k, v in body.items() if k != "login"}, creating=True)
    queues = fields.get("queues", [])
    await _known_queues(request, queues)
    try:
        agent = await create_agent(
            request.app[STORE],
            login=login,
            password=fields["password"],
            role=Role(fields.get("role", Role.AGENT.value)),
            now=request.app[CLOCK](),
            display_name=fields.get("display_name"),
            capacity=fields.get("capacity", 2),
            queues=queues,
        )
    except AgentExists:
        raise ApiError(409, "agent_exists", f"an agent with login {login!r} already exists") from None
    await _audit(
        request,
        "agent.created",
        f"agent:{agent.login}",
        after={"role": agent.role.value, "capacity": agent.capacity, "queues": sorted(agent.queues)},
    )
    return json_ok(_admin_agent_json(agent, True, 0), status=201)


@routes.put("/api/v1/agents/{id}")
@documented(
    "Change an agent (admin): role, queues, capacity, display name, password reset, (de)activation",
    description="Nobody changes their own role or deactivates themselves (403 `own_account`). "
    "`active: false` deactivates as DELETE does, and the answer carries `deactivation`: what was given back, "
    "by conversation id.",
    body=AGENT_INPUT,
    ok=(200, ADMIN_AGENT),
    errors=(400, 403, 404, 422),
    tag="admin",
)
async def agents_update(request: web.Request) -> web.Response:
    caller = await authenticated(request)
    require_role(caller, *_ADMIN)
    agent_id = path_id(request)
    fields = _agent_fields(await json_body(request), creating=False)
    role = fields.get("role")
    change = AgentChange(
        role=Role(role) if role is not None else None,
        display_name=fields.get("display_name"),
        capacity=fields.get("capacity"),
        queues=tuple(fields["queues"]) if "queues" in fields else None,
        password=fields.get("password"),
        active=fields.get("active"),
    )
    changed = await change_agent(hub_of(request), principal(request, caller), agent_id, change)
    body = _admin_agent_json(changed.update.agent, changed.update.active, changed.load)
    if change.active is False:
        body["deactivation"] = _deactivation_json(changed.update)
    return json_ok(body)


def _deactivation_json(updated: AgentUpdate) -> dict[str, Any]:
    released = updated.released or Released()
    return {
        "tokens_revoked": updated.tokens_revoked,
        "offers_withdrawn": released.offers_withdrawn,
        "requeued": released.requeued,
        "handed_over": [{"conversation": c, "owner": a} for c, a in released.handed_over],
        "left": released.left,
    }


@routes.delete("/api/v1/agents/{id}")
@documented(
    "Deactivate an agent (admin)",
    description="In one transaction: the agent can no longer log in, their sessions and tokens are revoked and "
    "they go offline; their pending offers go back to waiting; each conversation they own passes to the "
    "longest-present other participant, or back to its queue's waiting list when they were alone; they leave "
    "conversations they were invited to. Their history stays. Repeating it changes nothing. "
    "PUT with `active: false` does the same and says what it gave back; `active: true` reactivates.",
    ok=(204, None),
    errors=(403, 404),
    tag="admin",
)
async def agents_deactivate(request: web.Request) -> web.Response:
    caller = await authenticated(request)
    require_role(caller, *_ADMIN)
    await deactivate_agent(hub_of(request), principal(request, caller), path_id(request))
    return json_ok(None, status=204)


# ----------------------------------------------------------------- accounts


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
    ok=(200, _list_of(ACCOUNT)),
    errors=(403,),
    tag="admin",
)
async def accounts_index(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *_SUPERVISION)
    health = await list_account_health(request.app[STORE])
    items = []
    for account in request.app[SETTINGS].accounts:
        h = health.get(account.id)
        facts = provider_facts().get(account.adapter_name)  # names the credential that is the account's address
        address = (account.credentials.get(facts.address) or None) if facts and facts.address else None
        items.append(
            {
                "id": account.id,
                "channel": account.channel.value,
                "provider": account.provider,
                "queue": account.queue,
                "address": address,
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
