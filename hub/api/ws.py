"""The agents' event stream: ``GET /api/v1/ws`` (cookie session or ``?token=``).

The hub's notifier (hub/notifier.py) decides which events reach which agent;
this route authenticates, replays what a reconnecting client missed
(``?since=<seq>``; one too far behind gets a ``resync`` event and should
reload), sends the waiting-list snapshots, then the live stream.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aiohttp import WSMsgType, web

from hub.api._fields import parse_id
from hub.api._origin import origin_allowed
from hub.api.auth import SESSION_COOKIE, session_for_token
from hub.api.errors import ApiError
from hub.api.keys import HUB, NOTIFIER, SETTINGS
from hub.api.openapi import document
from hub.events import QueueWaiting
from hub.model import Agent
from hub.notifier import concerns, envelope, waiting_list
from hub.usecases.event_stream import events_after, last_event, too_far_behind, waiting_lists_of
from hub.usecases.sessions import BEARER, SESSION
from hub.views import agent_json

__all__ = ["NOTIFIER", "setup"]

logger = logging.getLogger(__name__)


async def _authenticate(request: web.Request) -> Agent:
    token = request.query.get("token")
    if token:
        session = await session_for_token(request, token, BEARER)
    else:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        public_url = request.app[SETTINGS].server.public_url
        if cookie and not origin_allowed(request.headers.get("Origin"), public_url=public_url, host=request.host):
            raise ApiError(403, "forbidden_origin", "the session's WebSocket must come from the hub's own pages")
        session = await session_for_token(request, cookie, SESSION) if cookie else None
    if session is None:
        raise ApiError(401, "unauthenticated", "log in first (session cookie or ?token=)")
    return session.agent


async def _replay(request: web.Request, ws: web.WebSocketResponse, agent: Agent, since: int) -> int:
    hub = request.app[HUB]
    if await too_far_behind(hub, since):
        await ws.send_json({"seq": None, "kind": "resync", "data": {"reason": "too far behind; reload"}})
    last = since
    while True:
        found = await events_after(hub, last)
        if not found:
            return last
        for event in found:
            if concerns(agent, event):
                await ws.send_json(envelope(event))
        last = found[-1].seq


async def _send_waiting_list_snapshots(request: web.Request, ws: web.WebSocketResponse, agent: Agent) -> None:
    """Where the agent's waiting lists stand, on (re)connect: what the live stream then keeps current."""
    for queue_id, state in (await waiting_lists_of(request.app[HUB], agent)).items():
        snapshot = {
            "seq": None,
            "kind": QueueWaiting.kind,
            "queue_id": queue_id,
            "data": waiting_list(queue_id, state, []),
        }
        await ws.send_json(snapshot)


async def websocket(request: web.Request) -> web.StreamResponse:
    agent = await _authenticate(request)
    since = parse_id(request.query.get("since", "0") or "0")
    if since is None:
        raise ApiError(400, "invalid_since", "since must be a sequence number")
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    notifier = request.app[NOTIFIER]
    client = notifier.connect(agent)  # live events buffer while the replay runs
    sender: asyncio.Task[None] | None = None
    try:
        await ws.send_json({"seq": None, "kind": "hello", "data": {"agent": agent_json(agent)}})
        if "since" in request.query:
            last = await _replay(request, ws, agent, since)
        else:
            last = await last_event(request.app[HUB])
        await _send_waiting_list_snapshots(request, ws, agent)

        async def send_live() -> None:
            while True:
                item = await client.queue.get()
                if client.overflowed:
                    await ws.send_json({"seq": None, "kind": "resync", "data": {"reason": "too slow; reload"}})
                    client.overflowed = False
                if item is None:
                    await ws.close(code=4001, message=b"agent deactivated")
                    return
                if item.seq > last:
                    await ws.send_str(notifier.encoded(item))

        sender = asyncio.create_task(send_live())
        async for message in ws:
            if message.type == WSMsgType.TEXT and message.data == "ping":
                await ws.send_str("pong")
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        notifier.disconnect(client)
        if sender is not None:
            sender.cancel()
            with suppress(asyncio.CancelledError, ConnectionError):
                await sender
    return ws


document(
    "GET",
    "/api/v1/ws",
    "Event stream (WebSocket)",
    description="Authenticate with the session cookie (from the hub's own pages: another Origin is 403) or "
    "?token=<bearer>. Every event has a sequence number; "
    "reconnect with ?since=<last seq> to receive what was missed. Kinds: offer, offer.withdrawn, "
    "conversation.updated (to its participants), message.created, message.delivery, agent.presence, "
    "queue.changed, agent.deactivated (then the socket closes with code 4001); "
    "queue.waiting (a queue's waiting list: count, oldest_waiting_since and the conversations "
    "that changed, at most every routing.waiting_update_seconds per queue; one more, without seq, on connect); "
    "plus hello and resync.",
    query={"token": {"type": "string"}, "since": {"type": "integer"}},
    ok=(101, None),
    errors=(400, 401, 403),
    tag="ws",
)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/ws", websocket)
