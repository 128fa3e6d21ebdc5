"""What changed in the hub, as typed events: one frozen dataclass per kind, one union, ``HubEvent``.

The store returns them with what it changed, the core publishes them on the bus (hub/bus.py), and the
router, the notifier and the WebSocket ``match`` on their classes. Each class knows its wire ``kind``
(the ``kind`` of a ``bus_log`` row and of a WebSocket message) and the ``data`` that goes with it; the
envelope fields every event answers to (``conversation_id``, ``agent_id``, ``queue_id``) are fields where
the kind has them and ``None`` where it never does.

``Recorded`` is an event as the notifier's journal recorded it in the transaction that made the change
(numbered in ``bus_log``, its data completed for the consoles); it is published in place of the event.
``LoggedEvent`` is one row of that log, as read back for a client that reconnects or from another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from hub.model import DeliveryState

__all__ = [
    "AgentDeactivated",
    "AgentPresence",
    "AttachmentChanged",
    "ContactUpdated",
    "ConversationClosed",
    "ConversationClosedByBot",
    "ConversationHandedOff",
    "ConversationLeftQueue",
    "ConversationOpened",
    "ConversationTicket",
    "ConversationUpdated",
    "ConversationWaiting",
    "ConversationWithBot",
    "HubEvent",
    "IdentitySubscription",
    "LoggedEvent",
    "MessageCreated",
    "MessageDelivery",
    "Offer",
    "OfferWithdrawn",
    "QueueChanged",
    "QueueWaiting",
    "Recorded",
    "Topic",
    "topic_of",
    "unwrapped",
]


_FAILED = DeliveryState.FAILED.value


class Topic(StrEnum):
    """What an event is about: it decides which consoles a logged event reaches (hub/notifier.py)."""

    OFFER = "offer"
    CONVERSATION = "conversation"
    MESSAGE = "message"
    IDENTITY = "identity"
    AGENT = "agent"
    QUEUE = "queue"


# ------------------------------------------------------------------ offers


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """A waiting conversation is offered to one agent until ``deadline``."""

    kind: ClassVar[str] = "offer"
    topic: ClassVar[Topic] = Topic.OFFER
    conversation_id: int
    agent_id: int
    queue_id: str
    deadline: datetime

    @property
    def data(self) -> dict[str, Any]:
        return {"deadline": self.deadline.isoformat()}


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferWithdrawn:
    """An offer ended without an answer (``timeout``), or was taken back (the agent left, a colleague took it)."""

    kind: ClassVar[str] = "offer.withdrawn"
    topic: ClassVar[Topic] = Topic.OFFER
    queue_id: ClassVar[None] = None
    conversation_id: int
    agent_id: int
    reason: str

    @property
    def data(self) -> dict[str, Any]:
        return {"reason": self.reason}


# ------------------------------------------------------------------ conversations


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationWaiting:
    """A conversation entered its queue's waiting list (new, requeued, or its offer ran out)."""

    kind: ClassVar[str] = "conversation.waiting"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    agent_id: ClassVar[None] = None
    conversation_id: int
    queue_id: str

    @property
    def data(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationLeftQueue:
    """A conversation left its queue's waiting list (offered, taken)."""

    kind: ClassVar[str] = "conversation.left_queue"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    agent_id: ClassVar[None] = None
    conversation_id: int
    queue_id: str

    @property
    def data(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationUpdated:
    """An agent's action changed who takes part in a conversation or how it stands.

    ``action`` is accepted, taken, left, transferred, invited, closed, important or opened; ``by`` the agent
    who acted (``agent_id`` in the data); ``audience`` who must hear of it (everyone involved before and
    after); ``details`` what the action adds (``to_agent``, ``to_queue``, ``invited``, ``status``,
    ``important``, ``owner``, ``reason``...). It is addressed to the audience and the supervisors.
    """

    kind: ClassVar[str] = "conversation.updated"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    agent_id: ClassVar[None] = None
    queue_id: ClassVar[None] = None
    conversation_id: int
    action: str
    by: int
    audience: tuple[int, ...]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, Any]:
        return {"action": self.action, "audience": sorted(set(self.audience)), "agent_id": self.by, **self.details}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationOpened:
    """An agent opened a conversation by writing first (the outbound form)."""

    kind: ClassVar[str] = "conversation.opened"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    queue_id: ClassVar[None] = None
    conversation_id: int
    agent_id: int
    identity_id: int

    @property
    def data(self) -> dict[str, Any]:
        return {"identity_id": self.identity_id, "outbound": True}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationClosed:
    """An agent's send closed the conversation with ``status`` ("send and close")."""

    kind: ClassVar[str] = "conversation.closed"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    queue_id: ClassVar[None] = None
    conversation_id: int
    agent_id: int
    status: str

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationTicket:
    """A ticket was linked to the conversation; every participant's console shows it."""

    kind: ClassVar[str] = "conversation.ticket"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    agent_id: ClassVar[None] = None
    queue_id: ClassVar[None] = None
    conversation_id: int
    ticket: Any
    title: str
    by: int

    @property
    def data(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "title": self.title, "by": self.by}


# ------------------------------------------------------------------ bots


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationWithBot:
    """A conversation is with a bot: new in a queue that has one, or handed (back) to one (``by`` the agent)."""

    kind: ClassVar[str] = "conversation.bot"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    agent_id: ClassVar[None] = None
    conversation_id: int
    queue_id: str
    bot: str
    by: int | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {"bot": self.bot} | ({"by": self.by} if self.by is not None else {})


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationHandedOff:
    """A bot's part ended: the conversation waits in ``queue_id`` for a person, and ``reason`` says why
    (bot_asked, customer_asked, bot_silent, bot_failed)."""

    kind: ClassVar[str] = "conversation.handed_off"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    agent_id: ClassVar[None] = None
    conversation_id: int
    queue_id: str
    reason: str
    bot: str | None = None
    note: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        found: dict[str, Any] = {"reason": self.reason, "queue": self.queue_id}
        return found | {k: v for k, v in (("bot", self.bot), ("note", self.note)) if v is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationClosedByBot:
    """A bot closed its conversation with ``status`` (its queue's rule, as for an agent): the consoles drop it
    from their bot lists and integrations hear ``conversation.closed``."""

    kind: ClassVar[str] = "conversation.bot_closed"
    topic: ClassVar[Topic] = Topic.CONVERSATION
    agent_id: ClassVar[None] = None
    conversation_id: int
    queue_id: str
    bot: str
    status: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {"bot": self.bot, "status": self.status}


# ------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageCreated:
    """A message was stored: a customer's (``direction`` in), an echo of ours or an agent's (out).

    An agent's message is addressed to that agent (``agent_id``) and carries its first delivery ``state``. A
    customer's message says whether it brought attachments (``with_attachments``): only those wake the media
    fetcher, which otherwise would look for due rows after every message.
    """

    kind: ClassVar[str] = "message.created"
    topic: ClassVar[Topic] = Topic.MESSAGE
    conversation_id: int
    message_id: int
    direction: str
    identity_id: int
    queue_id: str | None = None
    agent_id: int | None = None
    state: str | None = None
    with_attachments: bool = False

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "direction": self.direction,
            "identity_id": self.identity_id,
        }
        if self.state is not None:
            data["state"] = self.state
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDelivery:
    """A message of ours moved on: sent, delivered, read, or failed with the provider's code and a reason."""

    kind: ClassVar[str] = "message.delivery"
    topic: ClassVar[Topic] = Topic.MESSAGE
    agent_id: ClassVar[None] = None
    queue_id: ClassVar[None] = None
    conversation_id: int
    message_id: int
    state: str
    error_code: str | None = None  # with a failure only
    error_reason: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message_id": self.message_id, "state": self.state}
        if self.state == _FAILED:
            data["error_code"] = self.error_code
            data["error_reason"] = self.error_reason
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentChanged:
    """An attachment of a message was stored, failed, or is being fetched again; ``attachment`` is its JSON
    as the message JSON gives it (hub/store/media.py), so a console replaces it in place."""

    kind: ClassVar[str] = "message.attachment"
    topic: ClassVar[Topic] = Topic.MESSAGE
    agent_id: ClassVar[None] = None
    queue_id: ClassVar[None] = None
    conversation_id: int
    message_id: int
    attachment: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "attachment": dict(self.attachment)}


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentitySubscription:
    """A customer subscribed to or unsubscribed from a channel account (Viber). Not sent to consoles."""

    kind: ClassVar[str] = "identity.subscription"
    topic: ClassVar[Topic] = Topic.IDENTITY
    conversation_id: ClassVar[None] = None
    agent_id: ClassVar[None] = None
    queue_id: ClassVar[None] = None
    identity_id: int
    state: str

    @property
    def data(self) -> dict[str, Any]:
        return {"identity_id": self.identity_id, "state": self.state}


# ------------------------------------------------------------------ agents and queues


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPresence:
    """An agent's presence (or, from an admin, their account) changed; the notifier adds the agent's JSON.

    ``agent`` is the agent's JSON when the publisher has it (an admin's change); otherwise the data names
    the agent by id.
    """

    kind: ClassVar[str] = "agent.presence"
    topic: ClassVar[Topic] = Topic.AGENT
    conversation_id: ClassVar[None] = None
    queue_id: ClassVar[None] = None
    agent_id: int
    agent: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {"agent": self.agent} if self.agent is not None else {"agent_id": self.agent_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDeactivated:
    """An admin deactivated the agent: their open consoles are closed."""

    kind: ClassVar[str] = "agent.deactivated"
    topic: ClassVar[Topic] = Topic.AGENT
    conversation_id: ClassVar[None] = None
    queue_id: ClassVar[None] = None
    agent_id: int

    @property
    def data(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueChanged:
    """An admin created, changed or deleted a queue, or changed who is in it (``action`` ``members``)."""

    kind: ClassVar[str] = "queue.changed"
    topic: ClassVar[Topic] = Topic.QUEUE
    conversation_id: ClassVar[None] = None
    agent_id: ClassVar[None] = None
    queue_id: str
    action: str

    @property
    def data(self) -> dict[str, Any]:
        return {"queue": self.queue_id, "action": self.action}


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueWaiting:
    """How a queue's waiting list stands: its members' and the supervisors' consoles show the count.

    The notifier writes these itself, coalesced per queue; they never pass the bus.
    """

    kind: ClassVar[str] = "queue.waiting"
    topic: ClassVar[Topic] = Topic.QUEUE
    conversation_id: ClassVar[None] = None
    agent_id: ClassVar[None] = None
    queue_id: str
    waiting: int
    oldest_waiting_since: datetime | None
    changed: tuple[int, ...] = ()

    @property
    def data(self) -> dict[str, Any]:
        return {
            "queue_id": self.queue_id,
            "waiting": self.waiting,
            "oldest_waiting_since": self.oldest_waiting_since.isoformat() if self.oldest_waiting_since else None,
            "changed": [c for c in self.changed if c][:200],
        }


# ------------------------------------------------------------------ integrations (outgoing webhooks)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactUpdated:
    """A contact's fields changed. Recorded for integrations in the change's transaction; consoles reload
    contacts themselves, so it is not published on the bus."""

    kind: ClassVar[str] = "contact.updated"
    conversation_id: ClassVar[None] = None
    agent_id: ClassVar[None] = None
    queue_id: ClassVar[None] = None
    contact_id: int

    @property
    def data(self) -> dict[str, Any]:
        return {"contact_id": self.contact_id}


# ------------------------------------------------------------------ the log


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One row of ``bus_log``: an event as consoles receive it, numbered (``seq``) for replay."""

    seq: int
    kind: str
    conversation_id: int | None
    agent_id: int | None
    queue_id: str | None
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    """``event`` as the notifier's journal recorded it (``entry``), published after the commit in its place."""

    event: HubEvent
    entry: LoggedEvent

    @property
    def kind(self) -> str:
        return self.entry.kind

    @property
    def conversation_id(self) -> int | None:
        return self.entry.conversation_id

    @property
    def agent_id(self) -> int | None:
        return self.entry.agent_id

    @property
    def queue_id(self) -> str | None:
        return self.entry.queue_id

    @property
    def data(self) -> dict[str, Any]:
        return self.entry.data


HubEvent = (
    Offer
    | OfferWithdrawn
    | ConversationWaiting
    | ConversationLeftQueue
    | ConversationUpdated
    | ConversationOpened
    | ConversationClosed
    | ConversationTicket
    | MessageCreated
    | MessageDelivery
    | AttachmentChanged
    | IdentitySubscription
    | AgentPresence
    | AgentDeactivated
    | QueueChanged
    | Recorded
    | ConversationWithBot
    | ConversationHandedOff
    | ConversationClosedByBot
)
"""Everything the bus carries."""


def unwrapped(event: HubEvent) -> HubEvent:
    """The event itself, whether or not the journal recorded it."""
    match event:
        case Recorded(event=inner):
            return inner
        case _:
            return event


_TOPICS: dict[str, Topic] = {
    cls.kind: cls.topic
    for cls in (
        Offer,
        OfferWithdrawn,
        ConversationWaiting,
        ConversationLeftQueue,
        ConversationUpdated,
        ConversationOpened,
        ConversationClosed,
        ConversationTicket,
        MessageCreated,
        MessageDelivery,
        AttachmentChanged,
        IdentitySubscription,
        AgentPresence,
        AgentDeactivated,
        QueueChanged,
        QueueWaiting,
        ConversationWithBot,
        ConversationHandedOff,
        ConversationClosedByBot,
    )
}


def topic_of(kind: str) -> Topic | None:
    """The topic of a logged event's ``kind`` (``bus_log`` rows carry the wire kind, not the class)."""
    return _TOPICS.get(kind)
