"""The parts of the hub a use case reaches, as a Protocol: whatever builds the hub satisfies it.

Use cases name only these members, so the HTTP server, the CLI and tests can each hand over what
they have (the CLI has no router and no outbox: it runs outside the hub process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hub.bus import EventBus
from hub.settings import Settings
from hub.store import Store
from hub.store.outbound import NewOutbound, Queued

__all__ = ["DispatcherPort", "HubParts", "OutboxPort", "Parts", "RouterPort"]


class RouterPort(Protocol):
    """What a use case asks of the router: one pass now, or a nudge to run one soon."""

    async def sweep(self, now: datetime | None = None) -> Any: ...

    def kick(self) -> None: ...


class OutboxPort(Protocol):
    """What a use case asks of the outbox: queue one accepted send durably."""

    async def accept(self, send: NewOutbound, now: datetime) -> Queued: ...


class DispatcherPort(Protocol):
    """What a use case asks of the outgoing-webhook dispatcher: look for due deliveries now, not at its next
    poll (an admin subscribed, resumed or replayed something)."""

    def kick(self) -> None: ...


class HubParts(Protocol):
    """The hub's parts that use cases use. ``router``, ``outbox`` and ``webhooks_out`` are None outside a
    running hub."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def router(self) -> RouterPort | None: ...

    @property
    def outbox(self) -> OutboxPort | None: ...

    @property
    def webhooks_out(self) -> DispatcherPort | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """A plain ``HubParts``: what a command builds to run use cases outside a running hub (no router, no
    outbox); a running ``hub.app.Hub`` is one too."""

    settings: Settings
    store: Store
    bus: EventBus
    clock: Callable[[], datetime]
    router: RouterPort | None = None
    outbox: OutboxPort | None = None
    webhooks_out: DispatcherPort | None = None
