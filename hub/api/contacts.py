"""Contacts (CRM-lite) and identities: search, edit, pair and unpair.

Every authenticated agent may read and edit contacts and pair identities (the
console's Contact widget); deleting a contact is for supervisors and admins.
"""

from __future__ import annotations

import re
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
    text,
)
from hub.api._hub import actor, hub_of, principal
from hub.api.auth import authenticated, require_role
from hub.api.errors import ApiError
from hub.api.openapi import PAGE_QUERY, documented, page_schema, ref, schema
from hub.model import Channel, Contact
from hub.time_zones import named_zone
from hub.usecases import contacts as contact_usecases

__all__ = ["CONVERSATION_SUMMARY", "contact_json", "parse_contact", "setup"]

routes = web.RouteTableDef()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ().\-/]{3,40}$")

# ------------------------------------------------------------------ schemas

_CONTACT_PROPS: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 200},
    "company": {"type": ["string", "null"], "maxLength": 200},
    "phone": {"type": ["string", "null"], "maxLength": 40, "description": "stored without spaces or dashes"},
    "email": {"type": ["string", "null"], "format": "email", "maxLength": 200},
    "notes": {"type": ["string", "null"], "maxLength": 10000},
    "time_zone": {"type": ["string", "null"], "description": "IANA name, e.g. Europe/Prague"},
}
CONTACT_INPUT = schema(
    "ContactInput",
    {
        "type": "object",
        "properties": _CONTACT_PROPS,
        "required": ["name"],
        "additionalProperties": False,
        "description": "On PUT every field is optional: the fields given replace the stored ones; null clears.",
    },
)
CONTACT = schema(
    "Contact",
    {
        "type": "object",
        "properties": {"id": {"type": "integer"}, **_CONTACT_PROPS},
        "required": ["id", "name"],
    },
)
CONTACT_DETAIL = schema(
    "ContactDetail",
    {
        "allOf": [
            ref("Contact"),
            {
                "type": "object",
                "properties": {"identities": {"type": "array", "items": {"type": "object"}}},
            },
        ]
    },
)
CONTACT_PAGE = page_schema("ContactPage", ref("ContactDetail"))
CONVERSATION_SUMMARY = schema(
    "ConversationSummary",
    {
        "type": "object",
        "description": "A conversation as the CRM pages list it (a contact's, a ticket's).",
        "properties": {
            "id": {"type": "integer"},
            "state": {"type": "string"},
            "queue": {"type": "string"},
            "channel": {"type": "string"},
            "account": {"type": "string"},
            "identity": {"type": "object"},
            "opened_at": {"type": "string", "format": "date-time"},
            "closed_at": {"type": ["string", "null"], "format": "date-time"},
            "last_message_at": {"type": ["string", "null"], "format": "date-time"},
            "status": {"type": ["string", "null"]},
            "ticket": {"type": ["integer", "null"]},
            "important": {"type": "boolean"},
            "owner": {"type": ["integer", "null"], "description": "agent id"},
        },
    },
)
CONTACT_CONVERSATIONS = page_schema("ContactConversationPage", CONVERSATION_SUMMARY)
IDENTITY = schema(
    "Identity",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "account": {"type": "string"},
            "channel": {"type": "string", "enum": [c.value for c in Channel]},
            "external_id": {"type": "string"},
            "display_name": {"type": ["string", "null"]},
            "phone": {"type": ["string", "null"]},
            "avatar_url": {"type": ["string", "null"]},
            "contact": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {
                            "id": {"type": "integer"},
                            "name": {"type": "string"},
                            "company": {"type": ["string", "null"]},
                        },
                    },
                ]
            },
            "first_inbound_at": {"type": ["string", "null"], "format": "date-time"},
            "last_inbound_at": {"type": ["string", "null"], "format": "date-time"},
            "subscription": {"type": ["string", "null"]},
        },
        "required": ["id", "account", "channel", "external_id", "contact"],
    },
)
IDENTITY_PAGE = page_schema("IdentityPage", ref("Identity"))

# ------------------------------------------------------------------ helpers


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "company": contact.company,
        "phone": contact.phone,
        "email": contact.email,
        "notes": contact.notes,
        "time_zone": contact.time_zone,
    }


def _card_json(card: contact_usecases.ContactCard) -> dict[str, Any]:
    return {**contact_json(card.contact), "identities": card.identities}


def parse_contact(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Validated contact fields (only those present when updating); 422 naming the first bad field."""
    only_fields(body, tuple(_CONTACT_PROPS))
    fields = given(
        name=text(body, "name", required=creating, nullable=False),
        company=text(body, "company"),
        phone=text(body, "phone", max_length=40),
        email=text(body, "email"),
        notes=text(body, "notes", max_length=10000),
        time_zone=text(body, "time_zone", max_length=64),
    )
    if fields.get("phone") and not _PHONE.match(fields["phone"]):
        raise invalid("phone", "'phone' may hold only digits, spaces, +, -, ( and )")
    if fields.get("email") and not _EMAIL.match(fields["email"]):
        raise invalid("email", "'email' is not an e-mail address")
    if fields.get("time_zone"):
        try:
            named_zone(fields["time_zone"])
        except ValueError:
            raise invalid("time_zone", f"{fields['time_zone']!r} is not an IANA time zone") from None
    return fields


# ------------------------------------------------------------------ contacts


@routes.get("/api/v1/contacts")
@documented(
    "Search contacts",
    description=(
        "`q` matches name, company or phone (case-insensitive, part of the value). Ordered by name. Each contact"
        " comes with its paired `identities`, as `GET /api/v1/contacts/{id}` gives them."
    ),
    query={"q": {"type": "string"}, **PAGE_QUERY},
    ok=(200, CONTACT_PAGE),
    errors=(422,),
    tag="contacts",
)
async def contacts_index(request: web.Request) -> web.Response:
    await authenticated(request)
    after, limit = page(request)
    cards, cursor = await contact_usecases.find_contacts(
        hub_of(request), q=request.query.get("q"), after=after, limit=limit
    )
    return json_ok({"items": [_card_json(card) for card in cards], "next": cursor})


@routes.post("/api/v1/contacts")
@documented("Create a contact", body=CONTACT_INPUT, ok=(201, CONTACT), errors=(400, 422), tag="contacts")
async def contacts_create(request: web.Request) -> web.Response:
    by = principal(request, await authenticated(request))
    fields = parse_contact(await json_body(request), creating=True)
    contact = await contact_usecases.create(hub_of(request), by, fields)
    return json_ok(contact_json(contact), status=201)


@routes.get("/api/v1/contacts/{id}")
@documented("One contact, with its paired identities", ok=(200, CONTACT_DETAIL), errors=(404,), tag="contacts")
async def contacts_show(request: web.Request) -> web.Response:
    await authenticated(request)
    card = await contact_usecases.show(hub_of(request), path_id(request))
    return json_ok(_card_json(card))


@routes.put("/api/v1/contacts/{id}")
@documented(
    "Edit a contact",
    description="The fields given replace the stored ones; null clears an optional field.",
    body=CONTACT_INPUT,
    ok=(200, CONTACT),
    errors=(400, 404, 422),
    tag="contacts",
)
async def contacts_update(request: web.Request) -> web.Response:
    by = principal(request, await authenticated(request))
    contact_id = path_id(request)
    fields = parse_contact(await json_body(request), creating=False)
    contact = await contact_usecases.update(hub_of(request), by, contact_id, fields)
    return json_ok(contact_json(contact))


@routes.delete("/api/v1/contacts/{id}")
@documented(
    "Delete a contact (supervisor, admin)",
    description="Its identities are unpaired and its tickets keep no contact; conversations stay.",
    ok=(204, None),
    errors=(403, 404),
    tag="contacts",
)
async def contacts_delete(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    require_role(agent, *contact_usecases.DELETERS)  # before the id is read: 403, not 404, for a malformed one
    await contact_usecases.delete(hub_of(request), principal(request, agent), path_id(request))
    return json_ok(None, status=204)


@routes.get("/api/v1/contacts/{id}/conversations")
@documented(
    "A contact's conversations (through its paired identities), newest first",
    query=PAGE_QUERY,
    ok=(200, CONTACT_CONVERSATIONS),
    errors=(404, 422),
    tag="contacts",
)
async def contacts_conversations(request: web.Request) -> web.Response:
    await authenticated(request)
    contact_id = path_id(request)
    after, limit = page(request)
    items, cursor = await contact_usecases.conversations_of(hub_of(request), contact_id, after=after, limit=limit)
    return json_ok({"items": items, "next": cursor})


# ---------------------------------------------------------------- identities


@routes.get("/api/v1/identities")
@documented(
    "Search identities (customers as channels know them)",
    description=(
        "`q` matches display name, phone, external id or the paired contact's name; "
        "`contacted=1` keeps only identities that wrote to us (only they may be messaged). Newest first."
    ),
    query={
        "q": {"type": "string"},
        "channel": {"type": "string", "enum": [c.value for c in Channel]},
        "account": {"type": "string"},
        "contacted": {"type": "integer", "enum": [0, 1]},
        **PAGE_QUERY,
    },
    ok=(200, IDENTITY_PAGE),
    errors=(422,),
    tag="identities",
)
async def identities_index(request: web.Request) -> web.Response:
    await authenticated(request)
    after, limit = page(request)
    channel = request.query.get("channel") or None
    if channel is not None and channel not in {c.value for c in Channel}:
        raise ApiError(422, "invalid_query", f"'channel' must be one of {', '.join(c.value for c in Channel)}")
    query = contact_usecases.IdentityQuery(
        q=request.query.get("q"),
        channel=channel,
        account=request.query.get("account") or None,
        contacted=query_flag(request, "contacted"),
    )
    items, cursor = await contact_usecases.find_identities(hub_of(request), query, after=after, limit=limit)
    return json_ok({"items": items, "next": cursor})


@routes.get("/api/v1/identities/{id}")
@documented("One identity", ok=(200, IDENTITY), errors=(404,), tag="identities")
async def identities_show(request: web.Request) -> web.Response:
    await authenticated(request)
    return json_ok(await contact_usecases.show_identity(hub_of(request), path_id(request)))


@routes.put("/api/v1/identities/{id}/contact")
@documented(
    "Pair the identity with an existing contact",
    body={
        "type": "object",
        "properties": {"contact": {"type": "integer"}},
        "required": ["contact"],
        "additionalProperties": False,
    },
    ok=(200, IDENTITY),
    errors=(400, 404, 422),
    tag="identities",
)
async def identities_pair(request: web.Request) -> web.Response:
    by = await actor(request)
    identity_id = path_id(request)
    body = await json_body(request)
    only_fields(body, ("contact",))
    contact_id = integer(body, "contact", required=True, minimum=1)
    identity = await contact_usecases.pair(hub_of(request), by, identity_id, contact_id)
    return json_ok(identity)


@routes.post("/api/v1/identities/{id}/contact")
@documented(
    "Add new contact: create a contact and pair the identity with it, in one step",
    body=CONTACT_INPUT,
    ok=(201, IDENTITY),
    errors=(400, 404, 422),
    tag="identities",
)
async def identities_new_contact(request: web.Request) -> web.Response:
    by = await actor(request)
    identity_id = path_id(request)
    fields = parse_contact(await json_body(request), creating=True)
    identity = await contact_usecases.new_contact_for(hub_of(request), by, identity_id, fields)
    return json_ok(identity, status=201)


@routes.delete("/api/v1/identities/{id}/contact")
@documented("Unpair the identity from its contact", ok=(200, IDENTITY), errors=(404,), tag="identities")
async def identities_unpair(request: web.Request) -> web.Response:
    by = await actor(request)
    identity = await contact_usecases.unpair(hub_of(request), by, path_id(request))
    return json_ok(identity)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
