"""The agent's side-panel layout: ``GET|PUT /api/v1/me/layout`` ``{"widgets": [...]}`` (ADR 0030).

``widgets`` lists the ids of the widgets shown beside the message widget, in order; a widget not listed
is hidden. ``null``: never saved (GET), or back to the default (PUT): the console shows its default layout.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import json_ok, only_fields
from hub.api._hub import actor, hub_of
from hub.api.errors import ApiError
from hub.api.openapi import documented, schema
from hub.usecases.layout import MAX_WIDGETS, Layout, my_layout, set_my_layout

__all__ = ["setup"]

routes = web.RouteTableDef()

LAYOUT = schema(
    "WidgetLayout",
    {
        "type": "object",
        "required": ["widgets", "updated_at"],
        "properties": {
            "widgets": {
                "type": ["array", "null"],
                "items": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,39}$"},
                "description": "widget ids shown in the side panel, in order; null: never saved (the default)",
            },
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
)


def _layout_json(layout: Layout) -> dict[str, Any]:
    return {
        "widgets": list(layout.widgets) if layout.widgets is not None else None,
        "updated_at": layout.updated_at,
    }


@routes.get("/api/v1/me/layout")
@documented(
    "My side-panel widget layout",
    description="Which widgets my conversation screen's side panel shows, in order. `widgets` is null until "
    "I save one: the console then shows its default.",
    ok=(200, LAYOUT),
    errors=(401,),
    tag="auth",
)
async def get_layout(request: web.Request) -> web.Response:
    return json_ok(_layout_json(await my_layout(hub_of(request), await actor(request))))


@routes.put("/api/v1/me/layout")
@documented(
    "Save my side-panel widget layout",
    description="`widgets`: the ids of the widgets to show, in order (an empty list hides them all; the message "
    f"widget is always shown). At most {MAX_WIDGETS}, each once. `null` forgets the saved layout: the console "
    "shows its default again.",
    body={
        "type": "object",
        "required": ["widgets"],
        "additionalProperties": False,
        "properties": {"widgets": {"type": ["array", "null"], "items": {"type": "string"}, "maxItems": MAX_WIDGETS}},
    },
    ok=(200, LAYOUT),
    errors=(400, 401, 422),
    tag="auth",
)
async def put_layout(request: web.Request) -> web.Response:
    by = await actor(request)
    body = await json_body(request)
    only_fields(body, ("widgets",))
    if "widgets" not in body:
        raise ApiError(422, "invalid_field", "'widgets' is required: a list of widget ids, or null", field="widgets")
    widgets = body["widgets"]
    if widgets is not None and (not isinstance(widgets, list) or not all(isinstance(w, str) for w in widgets)):
        raise ApiError(422, "invalid_field", "'widgets' must be a list of widget ids, or null", field="widgets")
    return json_ok(_layout_json(await set_my_layout(hub_of(request), by, widgets)))


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
