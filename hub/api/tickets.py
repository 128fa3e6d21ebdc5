"""Tickets (lite): create, search, edit, favourites, assign to a conversation, and the conversations
a ticket is assigned to.

Every authenticated agent may read, create and edit tickets (the console's
Ticket widget). Assigning one to a conversation needs act access on that
conversation (``hub.api.access.conversation_for``), like any other change to it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import (
    given,
    integer,
    invalid,
    json_ok,
    only_fields,
    page,
    path_id,
    query_flag,
    query_int,
    text,
)
from hub.api._hub import hub_of, principal
from hub.api.auth import authenticated
from hub.api.contacts import CONVERSATION_SUMMARY
from hub.api.errors import ApiError
from hub.api.openapi import PAGE_QUERY, documented, page_schema, ref, schema
from hub.usecases import tickets as ticket_usecases
from hub.usecases.tickets import TICKET_STATES

__all__ = ["setup"]

routes = web.RouteTableDef()

_TICKET_PROPS: dict[str, Any] = {
    "title": {"type": "string", "maxLength": 300},
    "description": {"type": ["string", "null"], "maxLength": 20000},
    "state": {"type": "string", "enum": list(TICKET_STATES), "default": "open"},
    "contact": {"type": ["integer", "null"], "description": "contact id"},
    "company": {"type": ["string", "null"], "description": "defaults to the contact's company"},
    "assignee": {"type": ["integer", "null"], "description": "agent id"},
}
TICKET_INPUT = schema(
    "TicketInput",
    {
        "type": "object",
        "properties": _TICKET_PROPS,
        "required": ["title"],
        "additionalProperties": False,
        "description": "On PUT every field is optional: the fields given replace the stored ones; null clears.",
    },
)
TICKET = schema(
    "Ticket",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "state": {"type": "string", "enum": list(TICKET_STATES)},
            "contact": {
                "oneOf": [
                    {"type": "null"},
                    {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}},
                ]
            },
            "company": {"type": ["string", "null"]},
            "assignee": {"type": ["integer", "null"]},
            "created_by": {"type": ["integer", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "favourite": {"type": "boolean", "description": "a favourite of the caller"},
        },
        "required": ["id", "title", "state", "favourite"],
    },
)
TICKET_PAGE = page_schema("TicketPage", ref("Ticket"))
TICKET_CONVERSATIONS = page_schema("TicketConversationPage", CONVERSATION_SUMMARY)


def _parse(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    only_fields(body, tuple(_TICKET_PROPS))
    fields = given(
        title=text(body, "title", required=creating, nullable=False, max_length=300),
        description=text(body, "description", max_length=20000),
        state=text(body, "state", nullable=False, max_length=16),
        contact_id=integer(body, "contact", minimum=1, nullable=True),
        company=text(body, "company"),
        assignee_agent_id=integer(body, "assignee", minimum=1, nullable=True),
    )
    if "state" in fields and fields["state"] not in TICKET_STATES:
        raise invalid("state", f"'state' must be one of {', '.join(TICKET_STATES)}")
    return fields


@routes.get("/api/v1/tickets")
@documented(
    "Search tickets",
    description="Filters combine: `q` (title, description or #id), `mine=1` (assigned to me, or created by me and "
    "unassigned), `contact=`, `company=` (exact, case-insensitive), `favourite=1`, `state=`. Newest first.",
    query={
        "q": {"type": "string"},
        "mine": {"type": "integer", "enum": [0, 1]},
        "contact": {"type": "integer"},
        "company": {"type": "string"},
        "favourite": {"type": "integer", "enum": [0, 1]},
        "state": {"type": "string", "enum": list(TICKET_STATES)},
        **PAGE_QUERY,
    },
    ok=(200, TICKET_PAGE),
    errors=(422,),
    tag="tickets",
)
async def tickets_index(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    after, limit = page(request)
    state = request.query.get("state") or None
    if state is not None and state not in TICKET_STATES:
        raise ApiError(422, "invalid_query", f"'state' must be one of {', '.join(TICKET_STATES)}", field="state")
    query = ticket_usecases.TicketQuery(
        q=request.query.get("q"),
        mine=query_flag(request, "mine"),
        contact_id=query_int(request, "contact"),
        company=request.query.get("company") or None,
        favourite=query_flag(request, "favourite"),
        state=state,
    )
    items, cursor = await ticket_usecases.search(
        hub_of(request), principal(request, agent), query, after=after, limit=limit
    )
    return json_ok({"items": items, "next": cursor})


@routes.post("/api/v1/tickets")
@documented("Create a ticket", body=TICKET_INPUT, ok=(201, TICKET), errors=(400, 422), tag="tickets")
async def tickets_create(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    fields = _parse(await json_body(request), creating=True)
    ticket = await ticket_usecases.create(hub_of(request), principal(request, agent), fields)
    return json_ok(ticket, status=201)


@routes.get("/api/v1/tickets/{id}")
@documented("One ticket", ok=(200, TICKET), errors=(404,), tag="tickets")
async def tickets_show(request: web.Request) -> web.Response:
    by = principal(request, await authenticated(request))
    return json_ok(await ticket_usecases.show(hub_of(request), by, path_id(request)))


@routes.put("/api/v1/tickets/{id}")
@documented("Edit a ticket", body=TICKET_INPUT, ok=(200, TICKET), errors=(400, 404, 422), tag="tickets")
async def tickets_update(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    ticket_id = path_id(request)
    fields = _parse(await json_body(request), creating=False)
    ticket = await ticket_usecases.update(hub_of(request), principal(request, agent), ticket_id, fields)
    return json_ok(ticket)


@routes.get("/api/v1/tickets/{id}/conversations")
@documented(
    "The conversations a ticket is assigned to, newest first",
    description="Listed as a contact's conversations are; opening one needs the right to see it, as ever.",
    query=PAGE_QUERY,
    ok=(200, TICKET_CONVERSATIONS),
    errors=(404, 422),
    tag="tickets",
)
async def tickets_conversations(request: web.Request) -> web.Response:
    by = principal(request, await authenticated(request))
    ticket_id = path_id(request)
    after, limit = page(request)
    items, cursor = await ticket_usecases.conversations(hub_of(request), by, ticket_id, after=after, limit=limit)
    return json_ok({"items": items, "next": cursor})


@routes.put("/api/v1/tickets/{id}/favourite")
@documented("Mark a ticket as my favourite (idempotent)", ok=(200, TICKET), errors=(404,), tag="tickets")
async def tickets_favourite(request: web.Request) -> web.Response:
    return await _favourite(request, True)


@routes.delete("/api/v1/tickets/{id}/favourite")
@documented("Remove a ticket from my favourites (idempotent)", ok=(200, TICKET), errors=(404,), tag="tickets")
async def tickets_unfavourite(request: web.Request) -> web.Response:
    return await _favourite(request, False)


async def _favourite(request: web.Request, favourite: bool) -> web.Response:
    agent = await authenticated(request)
    ticket = await ticket_usecases.favourite(hub_of(request), principal(request, agent), path_id(request), favourite)
    return json_ok(ticket)


@routes.post("/api/v1/conversations/{id}/ticket")
@documented(
    "Assign a ticket to a conversation",
    description="Needs act access on the conversation. Writes a `ticket_assigned` timeline event "
    "(none when the conversation already has that ticket).",
    body={
        "type": "object",
        "properties": {"ticket": {"type": "integer"}},
        "required": ["ticket"],
        "additionalProperties": False,
    },
    ok=(200, {"type": "object", "properties": {"conversation": {"type": "integer"}, "ticket": ref("Ticket")}}),
    errors=(400, 403, 404, 422),
    tag="tickets",
)
async def conversation_ticket(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    conversation_id = path_id(request)
    body = await json_body(request)
    only_fields(body, ("ticket",))
    ticket_id = integer(body, "ticket", required=True, minimum=1)
    assigned = await ticket_usecases.assign(hub_of(request), principal(request, agent), conversation_id, ticket_id)
    return json_ok({"conversation": conversation_id, "ticket": assigned.ticket})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
