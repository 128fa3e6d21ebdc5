"""The "Page in iframe" widget's address for one conversation (``GET .../iframe`` → ``{"url"}``)."""

from __future__ import annotations

from aiohttp import web

from hub.api._fields import json_ok, path_id
from hub.api._hub import actor, hub_of
from hub.api.openapi import documented
from hub.usecases import iframe as iframe_usecases

__all__ = ["setup"]

routes = web.RouteTableDef()


@routes.get("/api/v1/conversations/{id}/iframe")
@documented(
    "The address of the conversation's page in an iframe",
    description="Built on the server from the queue's `iframe_url` template, each variable percent-encoded, on a "
    "host in `iframe_hosts`. 404 `iframe_not_configured` when the queue has none.",
    ok=(200, {"type": "object", "properties": {"url": {"type": "string", "format": "uri"}}, "required": ["url"]}),
    errors=(403, 404, 422),
    tag="conversations",
)
async def conversation_iframe(request: web.Request) -> web.Response:
    url = await iframe_usecases.iframe_url(hub_of(request), await actor(request), path_id(request))
    return json_ok({"url": url})


@routes.get("/api/v1/iframe/queues")
@documented(
    "The queues whose conversations have a page in an iframe",
    description="So that a console asks for a conversation's page only where there is one.",
    ok=(200, {"type": "object", "properties": {"queues": {"type": "array", "items": {"type": "string"}}}}),
    tag="conversations",
)
async def iframe_queues(request: web.Request) -> web.Response:
    await actor(request)
    return json_ok({"queues": iframe_usecases.queues_with_pages(hub_of(request))})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
