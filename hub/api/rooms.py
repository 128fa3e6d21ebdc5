"""Co-browsing rooms over HTTP: create one from a conversation, the room page, its signalling socket.

* ``POST /api/v1/conversations/{id}/rooms`` -- the agent makes a room; the customer is sent its link.
* ``GET /rooms/{id}`` -- the room page: the agent's (session cookie) or, with ``?token=``, the customer's,
  who needs no account. Refused (an error page) for anyone else, and for everyone once the links expire.
* ``GET /rooms/{id}/ws`` -- the signalling WebSocket: the same two parties, one connection each; the hub
  relays offers, answers and ICE candidates between them and tells each when the other comes and goes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from datetime import datetime

from aiohttp import WSMsgType, web

from hub.api._body import json_body
from hub.api._fields import json_ok, only_fields, path_id
from hub.api._hub import actor, hub_of
from hub.api._origin import origin_allowed
from hub.api.auth import SESSION_COOKIE, authenticated
from hub.api.console import STATIC_DIR
from hub.api.errors import ApiError, refusal_response
from hub.api.openapi import documented, schema
from hub.api.room_relay import RELAY, RoomRelay
from hub.errors import Refusal
from hub.room_settings import ice_for_browsers
from hub.usecases import Principal
from hub.usecases import rooms as room_usecases
from hub.usecases.rooms import Side, StoredRoom

__all__ = ["setup"]

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

_MAX_SIGNAL_BYTES = 64 * 1024  # an SDP offer with several tracks is a few KiB
_SIGNALS = frozenset({"description", "candidate", "state"})  # what one side may send the other
_PAGE_HEADERS = {
    "Content-Security-Policy": "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self' blob: mediastream:",
            "connect-src 'self' ws: wss:",
            "frame-ancestors 'self'",  # the console shows the agent's room in its co-browsing widget
            "base-uri 'none'",
            "form-action 'none'",
        ]
    ),
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)",
    "Referrer-Policy": "no-referrer",  # the customer's link carries its token
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_REFUSED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Video room</title>
<link rel="stylesheet" href="/console/room.css"></head>
<body class="room-refused"><main><h1>{title}</h1><p>{text}</p></main></body></html>"""

ROOM = schema(
    "Room",
    {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "agent_url": {"type": "string", "format": "uri", "description": "the agent's page (logged in)"},
            "customer_url": {"type": "string", "format": "uri", "description": "secret: the customer's page"},
            "expires_at": {"type": "string", "format": "date-time", "description": "both links stop working"},
            "conversation": {"type": "integer"},
            "message": {"type": ["integer", "null"], "description": "the reply that carried the link"},
            "warnings": {
                "type": "array",
                "items": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                "description": "the link was not sent (the policy's refusal, e.g. `window_closed`): the room is "
                "usable all the same; give the customer the link another way",
            },
        },
        "required": ["id", "agent_url", "customer_url", "expires_at"],
    },
)


@routes.post("/api/v1/conversations/{id}/rooms")
@documented(
    "Create a co-browsing video room",
    description="Needs act access on the conversation. The customer is sent the room's link as a reply, under "
    "the same outbound rules as any reply; a refusal is reported in `warnings` and the room is made anyway. "
    "The body is empty or `{}`: a field is 422 `unknown_field`, as on every route.",
    body={"type": "object", "additionalProperties": False, "properties": {}},
    ok=(201, ROOM),
    errors=(400, 403, 404, 422),
    tag="rooms",
)
async def rooms_create(request: web.Request) -> web.Response:
    principal = await actor(request)
    only_fields(await json_body(request, allow_empty=True), ())
    opened = await room_usecases.create(hub_of(request), principal, path_id(request))
    return json_ok(opened.to_json(), status=201)


async def _admit(request: web.Request) -> tuple[StoredRoom, Side]:
    """The room and the caller's side: the customer by ``?token=``, the agent by the console's session."""
    hub = hub_of(request)
    room_id = request.match_info["id"]
    token = request.query.get("token")
    if token is not None:
        return await room_usecases.admit_customer(hub, room_id, token), Side.CUSTOMER
    public_url = hub.settings.server.public_url
    if request.cookies.get(SESSION_COOKIE) and not origin_allowed(
        request.headers.get("Origin"), public_url=public_url, host=request.host
    ):
        raise ApiError(403, "forbidden_origin", "the room's socket must come from the hub's own pages")
    agent = await authenticated(request)
    return await room_usecases.admit_agent(hub, Principal.of_agent(agent), room_id), Side.AGENT


def _refused_page(status: int, code: str) -> web.Response:
    title, text = {
        "room_expired": ("This link has expired", "Ask the agent for a new room."),
        "unauthenticated": ("Log in first", "Open the console, log in, then open this room again."),
        "forbidden": ("This link does not open this room", "Check that you copied the whole link."),
    }.get(code, ("No such room", "Check that you copied the whole link."))
    return web.Response(
        status=status,
        text=_REFUSED_PAGE.format(title=title, text=text),
        content_type="text/html",
        headers=_PAGE_HEADERS,
    )


def _status(refusal: Refusal) -> int:
    return 410 if refusal.code == "room_expired" else refusal_response(refusal).status


@routes.get("/rooms/{id}")
async def room_page(request: web.Request) -> web.StreamResponse:
    """The page both parties use; its script reads who it is for from the URL."""
    try:
        await _admit(request)
    except Refusal as refusal:
        return _refused_page(_status(refusal), refusal.code)
    except ApiError as error:
        return _refused_page(error.status, error.code)
    return web.FileResponse(
        STATIC_DIR / "room.html", headers={**_PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"}
    )


@routes.get("/rooms/{id}/ws")
async def room_socket(request: web.Request) -> web.StreamResponse:
    """Signalling for one party: refused before the upgrade (403, 404, 409 a third party, 410 expired)."""
    try:
        room, side = await _admit(request)
    except Refusal as refusal:
        response = refusal_response(refusal)
        if refusal.code == "room_expired":
            response.set_status(410)
        return response
    relay = request.app[RELAY]
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=_MAX_SIGNAL_BYTES)
    if not relay.claim(room.id, side, ws):
        raise ApiError(409, "room_full", f"the room's {side.value} is already connected; only two parties join")
    try:
        await ws.prepare(request)
        await _serve(request, ws, relay, room, side)
    finally:
        relay.release(room.id, side, ws)
        await relay.tell_peer(room.id, side, {"type": "peer-left"})
    return ws


async def _serve(
    request: web.Request, ws: web.WebSocketResponse, relay: RoomRelay, room: StoredRoom, side: Side
) -> None:
    hub = hub_of(request)
    peer_here = relay.peer(room.id, side) is not None
    await ws.send_json(
        {
            "type": "welcome",
            "side": side.value,
            "polite": side is Side.CUSTOMER,  # perfect negotiation: the customer yields when offers cross
            "peer": peer_here,
            "expires_at": room.expires_at.isoformat(),
            "ice_servers": ice_for_browsers(hub.settings.rooms, room.id, room.expires_at),
        }
    )
    await relay.tell_peer(room.id, side, {"type": "peer-joined"})
    try:
        async with asyncio.timeout(_seconds_left(room.expires_at, hub.clock())):
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                await _relay_one(relay, room, side, message.data)
    except TimeoutError:
        with suppress(ConnectionError, RuntimeError):  # the party may be leaving at that very moment
            await ws.send_json({"type": "expired"})
        await ws.close(code=4410, message=b"the room's links have expired")


def _seconds_left(expires_at: datetime, now: datetime) -> float:
    return max((expires_at - now).total_seconds(), 0.0)


async def _relay_one(relay: RoomRelay, room: StoredRoom, side: Side, data: str) -> None:
    """Hand one signal to the other side; anything else is dropped (the hub never interprets SDP)."""
    try:
        signal = json.loads(data)
    except ValueError:
        return
    if not isinstance(signal, dict) or signal.get("type") not in _SIGNALS:
        return
    await relay.tell_peer(room.id, side, {"type": signal["type"], "data": signal.get("data")})


def setup(app: web.Application) -> None:
    app[RELAY] = RoomRelay()
    app.router.add_routes(routes)
