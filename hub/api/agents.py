"""Agents as admins see them: supervisors and admins list them; admins create, change, (de)activate them.
Nobody changes their own role or deactivates themselves."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hub.api._admin import ADMIN, SUPERVISION, acting_as, string_list
from hub.api._body import json_body
from hub.api._fields import MISSING, boolean, given, integer, invalid, json_ok, only_fields, path_id, text
from hub.api._hub import hub_of
from hub.api.auth import agent_json, authenticated, require_role
from hub.api.openapi import documented, list_schema, ref, schema
from hub.model import Agent, Role
from hub.usecases.agents import (
    AgentChange,
    AgentUpdate,
    NewAgent,
    Released,
    agent_with_load,
    agents_with_loads,
    change_agent,
    create_agent,
    deactivate_agent,
)

__all__ = ["setup"]

routes = web.RouteTableDef()

_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
MIN_PASSWORD = 8
MAX_CAPACITY = 50

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
        queues=string_list(body, "queues"),
        password=password,
        active=boolean(body, "active") if not creating else MISSING,
    )


@routes.get("/api/v1/agents")
@documented(
    "List agents (supervisor, admin)",
    query={"inactive": {"type": "integer", "enum": [0, 1], "description": "1: include deactivated agents"}},
    ok=(200, list_schema(ADMIN_AGENT)),
    errors=(403,),
    tag="admin",
)
async def agents_index(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *SUPERVISION)
    include = request.query.get("inactive") in ("1", "true")
    found = await agents_with_loads(hub_of(request), include_inactive=include)
    return json_ok({"items": [_admin_agent_json(a.agent, a.active, a.load) for a in found]})


@routes.get("/api/v1/agents/{id}")
@documented("One agent (supervisor, admin)", ok=(200, ADMIN_AGENT), errors=(403, 404), tag="admin")
async def agents_show(request: web.Request) -> web.Response:
    require_role(await authenticated(request), *SUPERVISION)
    found = await agent_with_load(hub_of(request), path_id(request))
    return json_ok(_admin_agent_json(found.agent, found.active, found.load))


@routes.post("/api/v1/agents")
@documented(
    "Create an agent (admin)", body=AGENT_INPUT, ok=(201, ADMIN_AGENT), errors=(400, 403, 409, 422), tag="admin"
)
async def agents_create(request: web.Request) -> web.Response:
    acting = await acting_as(request, *ADMIN)
    body = await json_body(request)
    login = text(body, "login", required=True, nullable=False, max_length=100)
    if not _LOGIN.match(login):
        raise invalid("login", "'login' may hold letters, digits and _ . @ + - (at most 100)")
    fields = _agent_fields({k: v for k, v in body.items() if k != "login"}, creating=True)
    new = NewAgent(
        login=login,
        password=fields["password"],
        role=Role(fields.get("role", Role.AGENT.value)),
        display_name=fields.get("display_name"),
        capacity=fields.get("capacity", 2),
        queues=tuple(fields.get("queues", ())),
    )
    agent = await create_agent(hub_of(request), acting, new)
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
    acting = await acting_as(request, *ADMIN)
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
    changed = await change_agent(hub_of(request), acting, agent_id, change)
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
    acting = await acting_as(request, *ADMIN)
    await deactivate_agent(hub_of(request), acting, path_id(request))
    return json_ok(None, status=204)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
