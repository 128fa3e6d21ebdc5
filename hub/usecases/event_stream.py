"""What an agent's event stream reads when a console (re)connects: the events it missed, where the log
ends, and where the agent's waiting lists stand.

The live stream itself is the notifier's (hub/notifier.py); which logged event concerns which agent is its
rule too. The WebSocket route (hub/api/ws.py) sends what these return.
"""

from __future__ import annotations

from datetime import datetime

from hub.events import LoggedEvent
from hub.model import Agent
from hub.store.catalogue import load_queues
from hub.store.conversations import waiting_lists
from hub.store.events import last_seq, oldest_seq, read_events
from hub.usecases._parts import HubParts
from hub.usecases.permissions import is_supervisor

__all__ = ["events_after", "last_event", "too_far_behind", "waiting_lists_of"]


async def too_far_behind(hub: HubParts, since: int) -> bool:
    """Whether events after ``since`` were already deleted from the log: the console must reload."""
    oldest = await oldest_seq(hub.store)
    return oldest is not None and oldest > since + 1 and since > 0


async def events_after(hub: HubParts, after: int) -> list[LoggedEvent]:
    """The next logged events after sequence number ``after``, in order (a bounded batch; empty at the end)."""
    return await read_events(hub.store, after=after)


async def last_event(hub: HubParts) -> int:
    """The sequence number of the last logged event (0 when the log is empty)."""
    return await last_seq(hub.store)


async def waiting_lists_of(hub: HubParts, agent: Agent) -> dict[str, tuple[int, datetime | None]]:
    """Per queue the agent watches (their own; every queue for a supervisor), how many conversations wait and
    since when the longest has."""
    queue_ids = sorted(agent.queues)
    if is_supervisor(agent):
        async with hub.store.read() as connection:
            queue_ids = sorted(await load_queues(connection))
    return await waiting_lists(hub.store, queue_ids)
