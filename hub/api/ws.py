"""The agents' event stream: ``GET /api/v1/ws`` (cookie session or ``?token=``).

One ``Notifier`` per process listens to the bus, stores every event a console
may need in ``bus_log`` (which numbers it), and hands it to the connected
agents it concerns: offers and their withdrawal to the agent addressed; new
messages, delivery states and hand-offs to the conversation's participants;
waiting-list changes to the queue's members; presence to the agent and the
supervisors. Events written by another hub process are picked up by polling
``bus_log`` every routing tick. A client reconnecting with ``?since=<seq>``
gets what it missed first, then the live stream; one too far behind gets a
``resync`` event and should reload.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import WSMsgType, web

from hub.api.access import is_supervisor
from hub.api.auth import SESSION_COOKIE, agent_json, session_for_token
from hub.api.conversations import jsonable
from hub.api.errors import ApiError
from hub.api.keys import BUS, CLOCK, SETTINGS, STORE
from hub.api.openapi import document
from hub.bus import BusEvent
from hub.model import Agent
from hub.store.agents import BEARER, SESSION, get_agent
from hub.store.conversations import conversation_views
from hub.store.events import LoggedEvent, audiences, last_seq, log_events, oldest_seq, prune_events, read_events

__all__ = ["NOTIFIER", "Notifier", "setup"]

logger = logging.getLogger(__name__)

_PREFIXES = ("offer", "conversation.", "message.", "agent.", "queue.")
_VIEWED = frozenset({"offer", "conversation.waiting", "conversation.updated"})
RETENTION = timedelta(hours=24)


@dataclass(eq=False)
class _Client:
    agent: Agent
    queue: asyncio.Queue[LoggedEvent] = field(default_factory=lambda: asyncio.Queue(10_000))
    overflowed: bool = False

    def concerns(self, event: LoggedEvent) -> bool:
        return concerns(self.agent, event)


def concerns(agent: Agent, event: LoggedEvent) -> bool:
    """Whether ``agent``'s console should get ``event``."""
    supervisor = is_supervisor(agent)
    if event.agent_id is not None:
        return event.agent_id == agent.id or (supervisor and event.kind == "agent.presence")
    audience = event.data.get("audience")
    if isinstance(audience, list) and agent.id in audience:
        return True
    if event.kind.startswith("message."):
        return False
    if event.queue_id is not None and event.kind.startswith(("conversation.", "queue.")):
        return supervisor or event.queue_id in agent.queues
    return supervisor and event.kind.startswith("conversation.")


def _needs_audience(event: BusEvent) -> bool:
    return event.conversation_id is not None and event.agent_id is None and "audience" not in event.data


def envelope(event: LoggedEvent) -> dict[str, Any]:
    data = {k: v for k, v in event.data.items() if k != "audience"}
    return {
        "seq": event.seq,
        "kind": event.kind,
        "conversation_id": event.conversation_id,
        "agent_id": event.agent_id,
        "queue_id": event.queue_id,
        "at": event.created_at.isoformat(),
        "data": data,
    }


class Notifier:
    def __init__(self, app: web.Application) -> None:
        self._app = app
        # one JSON text per event, however many sockets it goes to (a waiting conversation reaches a whole queue)
        self._encoded: OrderedDict[int, str] = OrderedDict()
        self._clients: set[_Client] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._dispatched: deque[int] = deque(maxlen=20_000)
        self._dispatched_set: set[int] = set()
        self._floor = 0
        self.logged = 0

    async def start(self) -> None:
        self._floor = await last_seq(self._app[STORE])
        self._tasks = [
            asyncio.create_task(self._listen(), name="ws-notifier"),
            asyncio.create_task(self._poll(), name="ws-poll"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # ------------------------------------------------------------- intake

    async def _listen(self) -> None:
        async with self._app[BUS].subscribe() as queue:
            while True:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < 500:
                    batch.append(queue.get_nowait())
                try:
                    await self.publish(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad batch must not stop the stream
                    logger.exception("could not log %d events for the consoles", len(batch))

    async def publish(self, events: Iterable[BusEvent]) -> list[LoggedEvent]:
        """Log the events that consoles care about and dispatch them to connected clients."""
        wanted = [e for e in events if e.kind.startswith(_PREFIXES) and e.seq is None]
        if not wanted:
            return []
        store = self._app[STORE]
        # an event addressed to one agent goes to that agent whatever its audience (see ``concerns``)
        need = [e.conversation_id for e in wanted if _needs_audience(e)]
        viewed = [e.conversation_id for e in wanted if e.kind in _VIEWED and e.conversation_id is not None]
        known: dict[int, list[int]] = {}
        views: dict[int, Any] = {}
        if need or viewed:
            async with store.read() as connection:  # one checkout for both
                if need:
                    known = await audiences(connection, [c for c in need if c is not None])
                if viewed:
                    views = await conversation_views(connection, [c for c in viewed if c is not None])
        rows = []
        for e in wanted:
            data = dict(e.data)
            if _needs_audience(e):
                data["audience"] = known.get(e.conversation_id or 0, [])
            if e.kind in _VIEWED and views.get(e.conversation_id or 0) is not None:
                data["conversation"] = jsonable(views[e.conversation_id or 0])
            if e.kind == "agent.presence" and e.agent_id is not None:
                agent = await get_agent(store, e.agent_id)
                if agent is not None:
                    data["agent"] = agent_json(agent)
            rows.append(
                {
                    "kind": e.kind,
                    "conversation_id": e.conversation_id,
                    "agent_id": e.agent_id,
                    "queue_id": e.queue_id,
                    "data": jsonable(data),
                }
            )
        logged = await log_events(store, rows, now=self._app[CLOCK]())
        self.logged += len(logged)
        self._dispatch(logged)
        return logged

    async def _poll(self) -> None:
        """Events logged by other hub processes; pruning of old ones."""
        tick = self._app[SETTINGS].routing.tick_seconds
        store = self._app[STORE]
        rounds = 0
        while True:
            await asyncio.sleep(tick)
            rounds += 1
            try:
                # a window behind the floor catches rows another process committed late with a lower number
                found = await read_events(store, after=max(0, self._floor - 200), limit=5000)
                self._dispatch([e for e in found if e.seq not in self._dispatched_set])
                if rounds % 600 == 0:
                    await prune_events(store, before=self._app[CLOCK]() - RETENTION)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("polling the event log failed")

    def _dispatch(self, events: Iterable[LoggedEvent]) -> None:
        for event in events:
            if event.seq in self._dispatched_set:
                continue
            if len(self._dispatched) == self._dispatched.maxlen:
                self._dispatched_set.discard(self._dispatched[0])
            self._dispatched.append(event.seq)
            self._dispatched_set.add(event.seq)
            self._floor = max(self._floor, event.seq)
            for client in self._clients:
                if client.concerns(event):
                    try:
                        client.queue.put_nowait(event)
                    except asyncio.QueueFull:
                        client.overflowed = True

    def encoded(self, event: LoggedEvent) -> str:
        text = self._encoded.get(event.seq)
        if text is None:
            text = json.dumps(envelope(event))
            self._encoded[event.seq] = text
            if len(self._encoded) > 4096:
                self._encoded.popitem(last=False)
        return text

    # ------------------------------------------------------------ clients

    def connect(self, agent: Agent) -> _Client:
        client = _Client(agent)
        self._clients.add(client)
        return client

    def disconnect(self, client: _Client) -> None:
        self._clients.discard(client)

    @property
    def connected(self) -> int:
        return len(self._clients)


NOTIFIER = web.AppKey("notifier", Notifier)


async def _authenticate(request: web.Request) -> Agent:
    token = request.query.get("token")
    if token:
        session = await session_for_token(request, token, BEARER)
    else:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        session = await session_for_token(request, cookie, SESSION) if cookie else None
    if session is None:
        raise ApiError(401, "unauthenticated", "log in first (session cookie or ?token=)")
    return session.agent


async def _replay(request: web.Request, ws: web.WebSocketResponse, agent: Agent, since: int) -> int:
    store = request.app[STORE]
    oldest = await oldest_seq(store)
    if oldest is not None and oldest > since + 1 and since > 0:
        await ws.send_json({"seq": None, "kind": "resync", "data": {"reason": "too far behind; reload"}})
    last = since
    while True:
        found = await read_events(store, after=last)
        if not found:
            return last
        for event in found:
            if concerns(agent, event):
                await ws.send_json(envelope(event))
        last = found[-1].seq


async def websocket(request: web.Request) -> web.StreamResponse:
    agent = await _authenticate(request)
    try:
        since = int(request.query.get("since", "0") or 0)
    except ValueError:
        raise ApiError(400, "invalid_since", "since must be a sequence number") from None
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
            last = await last_seq(request.app[STORE])

        async def send_live() -> None:
            while True:
                event = await client.queue.get()
                if event.seq <= last:
                    continue
                if client.overflowed:
                    await ws.send_json({"seq": None, "kind": "resync", "data": {"reason": "too slow; reload"}})
                    client.overflowed = False
                await ws.send_str(notifier.encoded(event))

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
    description="Authenticate with the session cookie or ?token=<bearer>. Every event has a sequence number; "
    "reconnect with ?since=<last seq> to receive what was missed. Kinds: offer, offer.withdrawn, "
    "conversation.waiting, conversation.left_queue, conversation.updated, message.created, message.delivery, "
    "agent.presence, plus hello and resync.",
    query={"token": {"type": "string"}, "since": {"type": "integer"}},
    ok=(101, None),
    errors=(400, 401),
    tag="ws",
)


async def _notifier_context(app: web.Application) -> AsyncIterator[None]:
    notifier = Notifier(app)
    app[NOTIFIER] = notifier
    await notifier.start()
    yield
    await notifier.stop()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_notifier_context)
    app.router.add_get("/api/v1/ws", websocket)
