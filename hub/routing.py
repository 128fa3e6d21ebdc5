"""Routing decisions, pure: who gets an offer, when it expires, what may close.

No I/O. hub/store/offers.py and hub/store/routing.py ask these functions inside their transactions, so
the decision and the write that makes it true happen atomically.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from string import Formatter
from typing import Any
from urllib.parse import quote

from hub.model import Queue

__all__ = [
    "BatchChooser",
    "Candidate",
    "choose_agent",
    "close_refusal",
    "has_free_member",
    "offer_deadline",
    "open_url",
    "transfer_excluded",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A ready member of the conversation's queue, as the database sees them now."""

    agent_id: int
    idle_since: datetime
    load: int  # active conversations owned + conversations offered to them
    capacity: int
    refused: bool = False  # rejected, missed or transferred it away during this waiting period

    @property
    def free(self) -> bool:
        return self.load < self.capacity


def choose_agent(candidates: Iterable[Candidate], excluded: Collection[int] = ()) -> Candidate | None:
    """The longest-idle member with free capacity who has not refused this conversation.

    Someone who refused it gets it again only when every ready member has
    refused it (there is nobody else); if a member who has not refused is
    merely busy, the conversation waits for them. ``excluded`` (who transferred
    it here, see ``transfer_excluded``) never get it: with nobody else it waits."""
    ready = [c for c in candidates if c.agent_id not in excluded]
    fresh = [c for c in ready if not c.refused]
    pool = fresh or ready
    free = [c for c in pool if c.free]
    if not free:
        return None
    return min(free, key=lambda c: (c.idle_since, c.load, c.agent_id))  # equally idle: the less loaded first


@dataclass(slots=True)
class _Member:
    idle_since: datetime
    capacity: int
    load: int


class BatchChooser:
    """``choose_agent`` for a batch of waiting conversations, oldest first, each offer counted at once.

    Building every member as a candidate for every conversation cost a sweep O(waiting x members) objects
    (200 agents x 200 conversations = 40,000 a sweep). Here each queue keeps its free members in a heap by
    ``choose_agent``'s own key; an offer makes the chosen agent the most recently busy, and their old heap
    entry is replaced when it comes up. Conversations that someone refused take the exact rule instead.
    """

    def __init__(self, members: Mapping[str, Sequence[int]], agents: Mapping[int, tuple[datetime, int, int]]) -> None:
        """``members``: queue -> agent ids; ``agents``: id -> (idle_since, capacity, load)."""
        self._agents = {a: _Member(idle_since=i, capacity=c, load=n) for a, (i, c, n) in agents.items()}
        self._members = {q: [a for a in ids if a in self._agents] for q, ids in members.items()}
        self._heaps: dict[str, list[tuple[datetime, int, int]]] = {}

    def choose(self, queue_id: str, refused: Collection[int] = (), excluded: Collection[int] = ()) -> int | None:
        members = self._members.get(queue_id, [])
        if excluded:
            members = [a for a in members if a not in excluded]
        if any(a in refused for a in members) or excluded:
            return self._choose_exactly(members, refused)
        heap = self._heaps.get(queue_id)
        if heap is None:
            heap = self._heaps[queue_id] = [self._key(a) for a in members if self._free(a)]
            heapq.heapify(heap)
        while heap:
            entry = heap[0]
            agent_id = entry[2]
            current = self._key(agent_id)
            if entry == current and self._free(agent_id):
                return agent_id
            heapq.heappop(heap)
            if entry != current and self._free(agent_id):
                heapq.heappush(heap, current)
        return None

    def offered(self, agent_id: int, now: datetime) -> None:
        member = self._agents[agent_id]
        member.idle_since = now
        member.load += 1

    def _key(self, agent_id: int) -> tuple[datetime, int, int]:
        member = self._agents[agent_id]
        return (member.idle_since, member.load, agent_id)

    def _free(self, agent_id: int) -> bool:
        member = self._agents[agent_id]
        return member.load < member.capacity

    def _choose_exactly(self, members: Sequence[int], refused: Collection[int]) -> int | None:
        candidates = [
            Candidate(
                agent_id=a,
                idle_since=self._agents[a].idle_since,
                capacity=self._agents[a].capacity,
                load=self._agents[a].load,
                refused=a in refused,
            )
            for a in members
        ]
        choice = choose_agent(candidates)
        return None if choice is None else choice.agent_id


def transfer_excluded(transferrers: Collection[int], queue: Queue, members: Collection[int]) -> frozenset[int]:
    """Who may not be offered a conversation transferred to ``queue``, in this waiting period.

    A transfer hands the customer to someone else: it never comes straight back to the agent who
    made it. The one exception is a queue whose supervisor allowed it (``transfer_back``) and whose
    only member is that agent: then it waits for them rather than for nobody. ``members``: every
    member of the queue, ready or not."""
    if queue.transfer_back and set(members) <= set(transferrers):
        return frozenset()
    return frozenset(transferrers)


def has_free_member(candidates: Iterable[Candidate]) -> bool:
    return any(c.free for c in candidates)


def offer_deadline(now: datetime, queue: Queue) -> datetime:
    return now + timedelta(seconds=queue.offer_timeout)


def close_refusal(status: str | None, queue: Queue, catalogue: Sequence[str]) -> tuple[str, str] | None:
    """(code, message) when the status cannot close a conversation of ``queue``; None when it can."""
    allowed = list(queue.statuses) or list(catalogue)
    if not status:
        return "status_required", f"choose a status to close; allowed: {', '.join(allowed) or 'none configured'}"
    if status not in allowed:
        return "status_not_allowed", f"{status!r} is not allowed in queue {queue.id}; allowed: {', '.join(allowed)}"
    return None


def open_url(queue: Queue, fields: Mapping[str, Any]) -> str | None:
    """The queue's URL template filled for one conversation (values URL-quoted).

    Placeholders: ``{conversation_id}``, ``{identity_id}``, ``{external_id}``,
    ``{channel}``, ``{account_id}``, ``{queue_id}``, ``{contact_id}``,
    ``{display_name}``, ``{phone}``; an unknown one is left empty."""
    if not queue.url_template:
        return None
    parts = []
    for literal, name, _spec, _conversion in Formatter().parse(queue.url_template):
        parts.append(literal)
        if name is not None:
            value = fields.get(name)
            parts.append(quote(str(value), safe="") if value is not None else "")
    return "".join(parts)
