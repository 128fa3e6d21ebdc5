"""The status catalogue: every agent lists it; admins create, rename and delete statuses."""

from __future__ import annotations

from aiohttp import web

from hub.api._admin import ADMIN, ID, acting_as, new_id
from hub.api._body import json_body
from hub.api._fields import json_ok, only_fields, text
from hub.api._hub import hub_of
from hub.api.auth import authenticated
from hub.api.openapi import documented, list_schema, schema
from hub.model import Status
from hub.usecases import queues as queue_usecases

__all__ = ["setup"]

routes = web.RouteTableDef()

STATUS = schema(
    "Status",
    {
        "type": "object",
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
        "required": ["id", "name"],
    },
)


@routes.get("/api/v1/statuses")
@documented("List the status catalogue", ok=(200, list_schema(STATUS)), tag="admin")
async def statuses_index(request: web.Request) -> web.Response:
    await authenticated(request)
    items = [{"id": s.id, "name": s.name} for s in await queue_usecases.statuses(hub_of(request))]
    return json_ok({"items": items})


@routes.post("/api/v1/statuses")
@documented(
    "Create a status (admin)",
    body={
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": ID.pattern}, "name": {"type": "string"}},
        "required": ["id", "name"],
        "additionalProperties": False,
    },
    ok=(201, STATUS),
    errors=(400, 403, 409, 422),
    tag="admin",
)
async def statuses_create(request: web.Request) -> web.Response:
    acting = await acting_as(request, *ADMIN)
    body = await json_body(request)
    only_fields(body, ("id", "name"))
    status_id = new_id(body)
    name = text(body, "name", required=True, nullable=False)
    status = await queue_usecases.create_status(hub_of(request), acting, Status(id=status_id, name=name))
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
    acting = await acting_as(request, *ADMIN)
    body = await json_body(request)
    only_fields(body, ("name",))
    name = text(body, "name", required=True, nullable=False)
    status = await queue_usecases.rename_status(hub_of(request), acting, request.match_info["id"], name)
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
    acting = await acting_as(request, *ADMIN)
    await queue_usecases.delete_status(hub_of(request), acting, request.match_info["id"])
    return json_ok(None, status=204)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
