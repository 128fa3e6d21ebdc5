"""The common conversation model: what every channel is reduced to.

Plain, typed, frozen objects with no I/O. Adapters produce the ``Inbound*``
events; the store turns rows into the domain objects below; policy, routing and
the API reason about them. Stdlib only: nothing here knows a provider, a
database or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "TEXT_LIMITS",
    "Agent",
    "Attachment",
    "Author",
    "Button",
    "Channel",
    "ChannelAccount",
    "Contact",
    "Conversation",
    "ConversationState",
    "CustomerActivity",
    "DeliveryReceipt",
    "DeliveryState",
    "Direction",
    "Echo",
    "EventKind",
    "Identity",
    "IgnoredEvent",
    "InboundEvent",
    "InboundMessage",
    "Location",
    "Message",
    "MessageKind",
    "NumberChanged",
    "OutboundMessage",
    "Presence",
    "ProfileUpdate",
    "Queue",
    "Role",
    "SendReceipt",
    "Status",
    "Subscription",
    "SubscriptionChanged",
    "TimelineEvent",
    "registry_name",
    "utc_from_millis",
    "utc_from_seconds",
]


class Channel(StrEnum):
    MESSENGER = "messenger"
    WHATSAPP = "whatsapp"
    VIBER = "viber"


class ConversationState(StrEnum):
    """bot (a queue's bot answers first) -> waiting (in a queue) -> offered (one agent, a deadline) -> active
    -> closed."""

    BOT = "bot"
    WAITING = "waiting"
    OFFERED = "offered"
    ACTIVE = "active"
    CLOSED = "closed"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Author(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"
    BOT = "bot"  # a queue's bot (hub/bots/) answered


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"
    LOCATION = "location"
    STICKER = "sticker"
    CONTACT = "contact"
    TEMPLATE = "template"
    POSTBACK = "postback"  # a button, postback or quick reply the customer tapped


class DeliveryState(StrEnum):
    """States only move forward; ``rank`` orders them (failed is terminal)."""

    RECEIVED = "received"  # inbound messages
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return _DELIVERY_RANK[self]

    def advances_to(self, other: DeliveryState) -> bool:
        """True when moving from self to ``other`` is progress (receipts arrive out of order)."""
        if self is DeliveryState.FAILED or self is DeliveryState.READ:
            return False
        return other.rank > self.rank


_DELIVERY_RANK = {
    DeliveryState.RECEIVED: 0,
    DeliveryState.QUEUED: 1,
    DeliveryState.SENT: 2,
    DeliveryState.DELIVERED: 3,
    DeliveryState.READ: 4,
    DeliveryState.FAILED: 5,
}


class EventKind(StrEnum):
    """The timeline beside messages; shown to agents, never sent to the customer."""

    OPENED = "opened"
    REOPENED = "reopened"
    OFFERED = "offered"
    OFFER_WITHDRAWN = "offer_withdrawn"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    ACCEPTED = "accepted"
    TAKEN = "taken"
    TRANSFERRED = "transferred"
    INVITED = "invited"
    LEFT = "left"
    CLOSED = "closed"
    IMPORTANT = "important"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    TICKET_ASSIGNED = "ticket_assigned"
    HANDED_OFF = "handed_off"  # the bot's part ended: ``reason`` bot_asked | customer_asked | bot_silent | bot_failed
    BOT_TOOK_OVER = "bot_took_over"  # handed (back) to a bot
    OUT_OF_HOURS = "out_of_hours"  # the hub answered outside the queue's business hours (``opening``)
    NUMBER_CHANGED = "number_changed"  # the customer writes from ``new_address`` now (``identity``: its id)


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Presence(StrEnum):
    READY = "ready"
    PAUSED = "paused"
    OFFLINE = "offline"


class Subscription(StrEnum):
    """Viber's view of a user; other channels leave it unknown (None)."""

    OPENED = "opened"  # conversation_started: one welcome message allowed
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"


#: the longest free text each channel takes in one message (channels.md 1.4, 4.5; WhatsApp body limit)
TEXT_LIMITS: dict[Channel, int] = {
    Channel.MESSENGER: 2000,
    Channel.WHATSAPP: 4096,
    Channel.VIBER: 7000,
}


def utc_from_millis(value: int | float | str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def utc_from_seconds(value: int | float | str) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    kind: MessageKind
    url: str | None = None
    mime_type: str | None = None
    file_name: str | None = None
    size: int | None = None
    provider_media_id: str | None = None
    upload_id: str | None = None  # an agent's upload (``POST /api/v1/uploads``) this attachment sends
    link_token: str | None = None  # the token of the hub's public link (``url``) to the upload's bytes

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in _asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attachment:
        return cls(
            kind=MessageKind(data["kind"]),
            url=data.get("url"),
            mime_type=data.get("mime_type"),
            file_name=data.get("file_name"),
            size=data.get("size"),
            provider_media_id=data.get("provider_media_id"),
            upload_id=data.get("upload_id"),
            link_token=data.get("link_token"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None  # the place's page, when the provider gives one

    def to_json(self) -> dict[str, Any]:
        found = _asdict(self)
        if self.url is None:
            del found["url"]  # the JSON of a location without one stays as it was
        return found


def _asdict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


@dataclass(frozen=True, slots=True, kw_only=True)
class Button:
    """A quick reply or button, one model for every channel: ``title`` shown, ``payload`` returned when pressed."""

    title: str
    payload: str

    def to_json(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


# ------------------------------------------------------------------ inbound events


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMessage:
    """A customer wrote to us. (account_id, provider_message_id) is the
    idempotency key: a redelivery must change nothing."""

    channel: Channel
    account_id: str
    sender_id: str
    provider_message_id: str
    sent_at: datetime  # the provider's clock; every window rule starts here
    kind: MessageKind = MessageKind.TEXT
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    location: Location | None = None
    payload: str | None = None  # postback / quick-reply / button payload
    reply_to: str | None = None  # provider id of the quoted message
    sender_name: str | None = None
    sender_avatar: str | None = None
    sender_phone: str | None = None
    extra: tuple[tuple[str, str], ...] = ()  # provider facts worth keeping (referral, forwarded)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryReceipt:
    """The provider moved one or more of our messages forward (or failed them).

    Either ``provider_message_ids`` names them, or ``watermark`` says "every
    message to this recipient sent up to then" (Messenger)."""

    channel: Channel
    account_id: str
    recipient_id: str | None
    state: DeliveryState
    occurred_at: datetime
    provider_message_ids: tuple[str, ...] = ()
    watermark: datetime | None = None
    error_code: str | None = None
    error_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionChanged:
    """Viber subscribed / unsubscribed / conversation_started."""

    channel: Channel
    account_id: str
    user_id: str
    state: Subscription
    occurred_at: datetime
    display_name: str | None = None
    avatar: str | None = None
    provider_event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberChanged:
    """The customer now writes from another address on the same channel (WhatsApp: a changed phone number).

    Not a message: the customer wrote nothing, so no window opens. The new address becomes an identity of the
    same contact, and the agents of the old address's open conversation are told where the customer went."""

    channel: Channel
    account_id: str
    user_id: str  # the address the customer had
    new_user_id: str
    occurred_at: datetime
    description: str | None = None  # the provider's own sentence, for the timeline


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerActivity:
    """The customer did something that is not a message but that the provider counts as contact: it opens the
    window again (Messenger: a reaction to a message, an m.me link or ad opened on an existing thread; WhatsApp
    Cloud: a chat opened with no earlier thread, ``request_welcome``). It moves
    the identity's last inbound time forward and stores no message; it never makes a customer who never wrote
    one who did (no identity is created)."""

    channel: Channel
    account_id: str
    sender_id: str
    kind: str  # what they did, e.g. "reaction", "referral", "welcome_request"
    occurred_at: datetime  # provider clock


@dataclass(frozen=True, slots=True, kw_only=True)
class Echo:
    """A message sent from our side of the channel, echoed back by the provider."""

    channel: Channel
    account_id: str
    recipient_id: str
    provider_message_id: str
    sent_at: datetime
    kind: MessageKind = MessageKind.TEXT
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileUpdate:
    """Enrichment: a display name or avatar learned after the fact."""

    channel: Channel
    account_id: str
    external_id: str
    display_name: str | None = None
    avatar: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IgnoredEvent:
    """A delivery item we acknowledge but do not handle (standby, optin, reactions, ...)."""

    channel: Channel
    account_id: str
    kind: str


InboundEvent = (
    InboundMessage | DeliveryReceipt | SubscriptionChanged | CustomerActivity | NumberChanged | Echo | IgnoredEvent
)


# ------------------------------------------------------------------- outbound side


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMessage:
    """What an adapter sends: the policy has already decided *how* (tag, template)."""

    account_id: str
    recipient_id: str
    kind: MessageKind = MessageKind.TEXT
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    messaging_type: str | None = None  # Messenger: RESPONSE | UPDATE | MESSAGE_TAG
    tag: str | None = None
    template: TemplateBinding | None = None
    idempotency_key: str | None = None
    reply_to: str | None = None
    buttons: tuple[Button, ...] = ()  # quick replies / buttons, for a channel that shows them (ButtonLimits)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateBinding:
    """A provider-approved template call: Twilio Content SID + variables, or a
    Cloud API template name, language and body parameters."""

    content_sid: str | None = None
    content_variables: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    language: str | None = None
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SendReceipt:
    provider_message_id: str
    accepted_at: datetime


# ---------------------------------------------------------------- domain objects


def registry_name(channel: Channel, provider: str) -> str:
    """The name a provider is registered and configured under: the channel, or ``channel.provider`` when the
    channel has several providers (``messenger``, ``whatsapp.twilio``, ``whatsapp.cloud``, ``viber``)."""
    return channel.value if provider == channel.value else f"{channel.value}.{provider}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelAccount:
    id: str
    channel: Channel
    provider: str
    queue: str
    api_base: str
    reopen_after_close: bool = False
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    # the provider's behaviour, from its adapter's declared facts (hub.ports.ProviderFacts; the settings copy them)
    subscribes_on_message: bool = False  # a customer who writes is thereby subscribed (Viber)
    echoes_own_sends: bool = False  # our sends come back as echo webhooks, maybe before their acceptance (Messenger)
    bot: str | None = None  # the bot that answers new conversations in ``queue`` first ([[bots]] queues)

    @property
    def adapter_name(self) -> str:
        """The registry key: the channel, or ``channel.provider`` when the channel has several providers
        (``messenger``, ``whatsapp.twilio``, ``whatsapp.cloud``, ``viber``)."""
        return registry_name(self.channel, self.provider)


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    id: int
    account_id: str
    channel: Channel
    external_id: str
    display_name: str | None = None
    avatar_url: str | None = None
    phone: str | None = None
    first_inbound_at: datetime | None = None
    last_inbound_at: datetime | None = None
    subscription: Subscription | None = None
    subscription_changed_at: datetime | None = None
    contact_id: int | None = None
    welcome_sent: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    id: int
    name: str
    company: str | None = None
    phone: str | None = None
    email: str | None = None
    notes: str | None = None
    time_zone: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversation:
    id: int
    account_id: str
    channel: Channel
    identity_id: int
    queue_id: str
    state: ConversationState
    waiting_since: datetime | None
    opened_at: datetime
    owner_agent_id: int | None = None
    offered_agent_id: int | None = None
    offer_deadline: datetime | None = None
    offered_at: datetime | None = None
    important: bool = False
    status_id: str | None = None
    ticket_id: int | None = None
    closed_at: datetime | None = None
    last_message_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    id: int
    conversation_id: int
    direction: Direction
    author: Author
    kind: MessageKind
    created_at: datetime
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    provider_message_id: str | None = None
    sent_at: datetime | None = None
    delivery_state: DeliveryState = DeliveryState.RECEIVED
    error_code: str | None = None
    error_reason: str | None = None
    agent_id: int | None = None
    template_name: str | None = None
    template_version: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEvent:
    id: int
    conversation_id: int
    kind: EventKind
    created_at: datetime
    agent_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    id: int
    login: str
    display_name: str
    role: Role
    capacity: int
    presence: Presence
    queues: tuple[str, ...] = ()
    pause_reason: str | None = None
    pause_paid: bool | None = None
    presence_since: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Queue:
    id: str
    name: str
    number: int
    offer_timeout: int  # seconds
    statuses: tuple[str, ...] = ()  # allowed at close; empty means the whole catalogue
    url_template: str | None = None
    transfer_back: bool = False  # a transfer here may go back to its transferrer when they are the only member
    # the side panel's "Page in iframe": a URL template and the hosts it may name (configuration file only)
    iframe_url: str | None = None
    iframe_hosts: tuple[str, ...] = ()
    # service-level targets (reports): a share of contacts accepted within a time; a first answer within a time
    sla_accept_seconds: int | None = None
    sla_accept_share: float | None = None  # 0..1
    sla_first_response_seconds: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    id: str
    name: str
