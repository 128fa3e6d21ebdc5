"""The consoles' side of the event bus: one ``Notifier`` per hub process.

It listens to the bus, stores every event a console may need in ``bus_log``
(which numbers it), and hands it to the connected agents it concerns: offers
and their withdrawal to the agent addressed; new messages, delivery states and
hand-offs to the conversation's participants; presence to the agent and the
supervisors. Changes to a queue's waiting list reach its members and the
supervisors as ``queue.waiting`` updates, coalesced per queue
(``routing.waiting_update_seconds``), not one event per change. The ingest and
the router have their events logged in their own transactions (``journal``,
given to them by the composition root, hub/bootstrap.py); other events are
logged here. Events written by another hub process arrive at once on PostgreSQL
(``LISTEN``: a trigger names the new ``bus_log`` rows at commit, hub/store/listen.py)
and are read in order; polling ``bus_log`` every routing tick stays as the
fallback (SQLite, or while the listening connection is lost). No aiohttp here: the WebSocket route
(hub/api/ws.py) connects clients and sends what they are given.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub._tasks import cancel_and_wait
from hub.bus import EventBus
from hub.events import (
    AgentDeactivated,
    AgentPresence,
    ConversationUpdated,
    ConversationWaiting,
    HubEvent,
    IdentitySubscription,
    LoggedEvent,
    Offer,
    QueueWaiting,
    Recorded,
    Topic,
    topic_of,
)
from hub.model import Agent
from hub.settings import Settings
from hub.store import Store
from hub.store.agents import load_agent
from hub.store.conversations import conversation_views, waiting_lists
from hub.store.events import (
    audiences,
    insert_events,
    last_seq,
    log_events,
    prune_events,
    read_events,
)
from hub.store.listen import BusLogListener
from hub.views import agent_json, is_supervisor, jsonable

__all__ = ["Client", "Notifier", "concerns", "envelope", "waiting_list"]

logger = logging.getLogger(__name__)

RETENTION = timedelta(hours=24)
PRUNE_EVERY = timedelta(minutes=10)


@dataclass(eq=False)
class Client:
    agent: Agent
    # logged events, or None: close this console (its agent was deactivated)
    queue: asyncio.Queue[LoggedEvent | None] = field(default_factory=lambda: asyncio.Queue(10_000))
    overflowed: bool = False

    def offer(self, item: LoggedEvent | None) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


def concerns(agent: Agent, event: LoggedEvent) -> bool:
    """Whether ``agent``'s console gets ``event`` itself (queue-wide changes come as waiting-list updates)."""
    if event.agent_id is not None:
        return event.agent_id == agent.id or (is_supervisor(agent) and event.kind == AgentPresence.kind)
    audience = event.data.get("audience")
    if isinstance(audience, list) and agent.id in audience:
        return True
    match topic_of(event.kind):
        case Topic.QUEUE if event.queue_id is not None:
            return is_supervisor(agent) or event.queue_id in agent.queues
        case Topic.CONVERSATION if event.queue_id is None:
            return is_supervisor(agent)
        case _:
            return False


def waiting_list_of(event: LoggedEvent) -> str | None:
    """The queue whose waiting list ``event`` changes, for its members and the supervisors."""
    if event.agent_id is None and event.queue_id is not None and topic_of(event.kind) is Topic.CONVERSATION:
        return event.queue_id
    return None


def _for_consoles(event: HubEvent) -> bool:
    """Whether ``event`` is yet to be logged for the consoles (the journal logged the ``Recorded`` ones)."""
    match event:
        case Recorded() | IdentitySubscription():
            return False
        case _:
            return True


def _entry(event: HubEvent) -> LoggedEvent | None:
    """The log entry of an event the journal recorded, or None."""
    match event:
        case Recorded(entry=entry):
            return entry
        case _:
            return None


def _needs_audience(event: HubEvent) -> bool:
    """Addressed to whoever takes part in its conversation, found when it is logged."""
    match event:
        case ConversationUpdated():  # it names its own audience
            return False
        case _:
            return event.conversation_id is not None and event.agent_id is None


def _viewed(event: HubEvent) -> bool:
    """Sent with the conversation as the consoles list it."""
    match event:
        case Offer() | ConversationWaiting() | ConversationUpdated():
            return True
        case _:
            return False


async def _rows(connection: AsyncConnection, events: list[HubEvent]) -> list[dict[str, Any]]:
    """``bus_log`` rows for the events: each with its audience, conversation view or agent, as it needs."""
    need = [e.conversation_id for e in events if _needs_audience(e) and e.conversation_id is not None]
    viewed = [e.conversation_id for e in events if _viewed(e) and e.conversation_id is not None]
    known = await audiences(connection, need) if need else {}
    views = await conversation_views(connection, viewed) if viewed else {}
    rows = []
    for e in events:
        data = e.data  # a new dict, ours to complete
        if _needs_audience(e):
            data["audience"] = known.get(e.conversation_id or 0, [])
        if _viewed(e) and views.get(e.conversation_id or 0) is not None:
            data["conversation"] = jsonable(views[e.conversation_id or 0])
        match e:
            case AgentPresence(agent_id=agent_id):
                agent = await load_agent(connection, agent_id)
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
    return rows


def waiting_list(queue_id: str, state: tuple[int, datetime | None], changed: list[int]) -> dict[str, Any]:
    """``queue.waiting``'s data: how the queue's waiting list stands now, and which conversations moved."""
    count, oldest = state
    return QueueWaiting(queue_id=queue_id, waiting=count, oldest_waiting_since=oldest, changed=tuple(changed)).data


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


class _Inbox(asyncio.Queue[HubEvent]):
    """The notifier's bus subscription, counting the events in it that it has yet to log."""

    unlogged = 0

    def _put(self, item: HubEvent) -> None:
        super()._put(item)
        if _for_consoles(item):
            self.unlogged += 1

    def _get(self) -> HubEvent:
        item: HubEvent = super()._get()
        if _for_consoles(item):
            self.unlogged -= 1
        return item


class Notifier:
    def __init__(self, store: Store, bus: EventBus, settings: Settings, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self._clock = clock
        # one JSON text per event, however many sockets it goes to (a waiting conversation reaches a whole queue)
        self._encoded: OrderedDict[int, str] = OrderedDict()
        self._clients: set[Client] = set()
        self._by_agent: dict[int, set[Client]] = {}
        self._supervisors: set[Client] = set()
        self._changed: dict[str, set[int]] = {}  # queue -> conversations whose waiting-list state changed
        self._changes = asyncio.Event()
        self._inbox = _Inbox(10_000)
        self._logging = 0  # events of the batch in hand that are not logged yet
        self._tasks: list[asyncio.Task[None]] = []
        self._dispatched: deque[int] = deque(maxlen=20_000)
        self._dispatched_set: set[int] = set()
        self._floor = 0
        self.logged = 0
        # rows other processes logged, announced by PostgreSQL: the lowest sequence number not read yet
        self._announced: int | None = None
        self._read_now = asyncio.Event()
        self._listener: BusLogListener | None = None

    async def start(self) -> None:
        self._floor = await last_seq(self._store)
        self._tasks = [
            asyncio.create_task(self._listen(), name="ws-notifier"),
            asyncio.create_task(self._poll(), name="ws-poll"),
            asyncio.create_task(self._announce_waiting_lists(), name="ws-waiting-lists"),
        ]
        if self._store.dialect == "postgresql":
            self._listener = BusLogListener(self._store, self._heard, self._read_now.set)
            self._tasks.append(asyncio.create_task(self._listener.run(), name="ws-listen"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    # ------------------------------------------------------------- intake

    async def _listen(self) -> None:
        async with self._bus.subscribe(self._inbox) as queue:
            while True:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < 500:
                    batch.append(queue.get_nowait())
                self._logging = sum(1 for e in batch if _for_consoles(e))
                try:
                    await self._take(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad batch must not stop the stream
                    logger.exception("could not log %d events for the consoles", len(batch))
                finally:
                    self._logging = 0

    async def _take(self, batch: list[HubEvent]) -> None:
        """Dispatch what the ingest and the router already logged; log the rest first. In order, run by run."""
        entries = [_entry(e) for e in batch]
        start = 0
        while start < len(batch):
            logged = entries[start] is not None
            end = start + 1
            while end < len(batch) and (entries[end] is not None) == logged:
                end += 1
            if logged:
                self._dispatch(e for e in entries[start:end] if e is not None)
            else:
                await self.publish(batch[start:end])
            start = end

    async def publish(self, events: Iterable[HubEvent]) -> list[LoggedEvent]:
        """Log the events that consoles care about and dispatch them to connected clients."""
        wanted = [e for e in events if _for_consoles(e)]
        if not wanted:
            return []
        store = self._store
        # audiences, views and agents read where the rows are written; the writers on a reply's way go first
        async with store.write(background=True) as connection:
            logged = await insert_events(connection, store.dialect, await _rows(connection, wanted), now=self._clock())
        self.logged += len(logged)
        self._dispatch(logged)
        return logged

    async def journal(self, connection: AsyncConnection, events: list[HubEvent]) -> list[HubEvent]:
        """The journal of the ingest and the router: log events in their transaction (``hub.store.Journal``).

        The events come back numbered and carrying what the consoles need; ``_take`` dispatches them when
        they are published, after the commit, so no console hears of a change that was rolled back.
        """
        positions = [i for i, e in enumerate(events) if _for_consoles(e)]
        if not positions or self._inbox.unlogged or self._logging:
            # Earlier events still wait to be logged here: numbering these first would put them before
            # what happened before them. Published as they are, they are logged after those, in order.
            return events
        rows = await _rows(connection, [events[i] for i in positions])
        logged = await insert_events(connection, self._store.dialect, rows, now=self._clock())
        self.logged += len(logged)
        recorded = list(events)
        for i, entry in zip(positions, logged, strict=True):
            recorded[i] = Recorded(event=events[i], entry=entry)
        return recorded

    def _heard(self, first: int, last: int) -> None:
        """Another process committed event-log rows ``first..last``: read them now."""
        if all(seq in self._dispatched_set for seq in range(first, min(last, first + 50) + 1)):
            return
        self._announced = first if self._announced is None else min(self._announced, first)
        self._read_now.set()

    async def _poll(self) -> None:
        """Events logged by other hub processes: at once when announced, else every tick; pruning of old ones."""
        tick = self._settings.routing.tick_seconds
        store = self._store
        pruned = self._clock()
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self._read_now.wait()
            self._read_now.clear()
            announced, self._announced = self._announced, None
            try:
                # a window behind the floor catches rows another process committed late with a lower number;
                # announced rows are read from the first one named (commit order is not number order)
                after = max(0, self._floor - 200) if announced is None else max(0, min(announced - 1, self._floor))
                found = await read_events(store, after=after, limit=5000)
                # another process summarises its own waiting-list changes (queue.waiting rows arrive here too)
                self._dispatch([e for e in found if e.seq not in self._dispatched_set], local=False)
                if self._clock() - pruned > PRUNE_EVERY:
                    pruned = self._clock()
                    await prune_events(store, before=pruned - RETENTION)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("polling the event log failed")

    def _dispatch(self, events: Iterable[LoggedEvent], *, local: bool = True) -> None:
        """Each event to the consoles it concerns; a queue-wide change made here marks that queue's waiting list."""
        for event in events:
            if event.seq in self._dispatched_set:
                continue
            if len(self._dispatched) == self._dispatched.maxlen:
                self._dispatched_set.discard(self._dispatched[0])
            self._dispatched.append(event.seq)
            self._dispatched_set.add(event.seq)
            self._floor = max(self._floor, event.seq)
            for client in self._recipients(event):
                client.offer(event)
                if event.kind == AgentDeactivated.kind and client.agent.id == event.agent_id:
                    client.offer(None)
            queue_id = waiting_list_of(event) if local else None
            if queue_id is not None:
                self._changed.setdefault(queue_id, set()).add(event.conversation_id or 0)
                self._changes.set()

    def _recipients(self, event: LoggedEvent) -> set[Client]:
        """``concerns`` answered by lookup: one event must not cost a test per connected console."""
        found: set[Client] = set()
        if event.agent_id is not None:
            found |= self._by_agent.get(event.agent_id, set())
            if event.kind == AgentPresence.kind:
                found |= self._supervisors
            return found
        audience = event.data.get("audience")
        if isinstance(audience, list):
            for agent_id in audience:
                found |= self._by_agent.get(agent_id, set())
        match topic_of(event.kind):
            case Topic.QUEUE if event.queue_id is not None:
                found |= {c for c in self._clients if concerns(c.agent, event)}
            case Topic.CONVERSATION if event.queue_id is None:
                found |= self._supervisors
        return found

    async def _announce_waiting_lists(self) -> None:
        """Waiting-list changes, coalesced per queue: at most one update per queue per interval.

        A new conversation used to go to every member of its queue as it happened; with hundreds of agents
        and hundreds of conversations a second that is tens of thousands of socket writes a second, and the
        offers queued behind them. A console needs to know that its waiting list changed, not each step.
        """
        interval = self._settings.routing.waiting_update_seconds
        while True:
            await self._changes.wait()
            await asyncio.sleep(interval)  # let changes gather
            self._changes.clear()
            changed, self._changed = self._changed, {}
            try:
                await self._send_waiting_lists(changed)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not announce waiting-list changes")

    async def _send_waiting_lists(self, changed: dict[str, set[int]]) -> None:
        """Log one ``queue.waiting`` per changed queue (numbered and replayable like any event) and send it.

        Only changes this process made are summarised here; other processes' summaries arrive by polling.
        """
        store = self._store
        lists = await waiting_lists(store, sorted(changed))
        rows = [
            {"kind": QueueWaiting.kind, "queue_id": q, "data": waiting_list(q, lists[q], sorted(changed[q]))}
            for q in sorted(changed)
        ]
        logged = await log_events(store, rows, now=self._clock(), background=True)
        self.logged += len(logged)
        self._dispatch(logged)

    def encoded(self, event: LoggedEvent) -> str:
        text = self._encoded.get(event.seq)
        if text is None:
            text = json.dumps(envelope(event))
            self._encoded[event.seq] = text
            if len(self._encoded) > 4096:
                self._encoded.popitem(last=False)
        return text

    # ------------------------------------------------------------ clients

    def connect(self, agent: Agent) -> Client:
        client = Client(agent)
        self._clients.add(client)
        self._by_agent.setdefault(agent.id, set()).add(client)
        if is_supervisor(agent):
            self._supervisors.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self._clients.discard(client)
        self._supervisors.discard(client)
        mine = self._by_agent.get(client.agent.id)
        if mine is not None:
            mine.discard(client)
            if not mine:
                del self._by_agent[client.agent.id]

    @property
    def connected(self) -> int:
        return len(self._clients)
