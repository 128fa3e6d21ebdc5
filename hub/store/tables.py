"""SQLAlchemy Core tables: the one description of the schema.

Alembic migrations (hub/store/migrations) must produce exactly this; a test
compares them. Every query that grows with the data has an index here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

__all__ = ["metadata"]

naming = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=naming)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


_STORED_TEXT_LENGTH = len("2026-01-31 12:00:00.000000")  # SQLite: how every timestamp is written


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on both engines (SQLite keeps naive ISO text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _in_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite every value crosses as text, and the hub binds and reads a dozen per stored message. One
    # function each way instead of ours wrapped around SQLAlchemy's own: the same text (SQLAlchemy's storage
    # format, "YYYY-MM-DD HH:MM:SS.ffffff"), in less than half the time per bound value.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            return _in_utc(value).isoformat(" ", "microseconds")[:-6]  # without its "+00:00"

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        process_result_value = self.process_result_value

        def from_text(value: Any) -> datetime | None:
            if isinstance(value, str):
                if len(value) == _STORED_TEXT_LENGTH and value[19] == ".":  # what the hub writes, no offset:
                    return datetime.fromisoformat(value + "+00:00")  # UTC in a seventh of the time of replace()
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    return parsed.replace(tzinfo=UTC)
            return process_result_value(value, dialect)

        return from_text


def _in_utc(value: datetime) -> datetime:
    """The same instant with UTC as its zone; a naive value is refused, whatever zone it was meant in."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(UTC)


def _now_column(name: str = "created_at") -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=False)


# ------------------------------------------------------------------ configuration

queues = Table(
    "queues",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("offer_timeout", Integer, nullable=False),
    Column("url_template", Text),
    Column("statuses", JSON, nullable=False),  # allowed at close; [] = the whole catalogue
)

statuses = Table(
    "statuses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
)

account_health = Table(
    "account_health",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("last_webhook_at", UTCDateTime()),
    Column("last_send_at", UTCDateTime()),
    Column("last_send_error", Text),
    Column("last_send_error_at", UTCDateTime()),
)

# ---------------------------------------------------------------------- customers

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("company", String(200)),
    Column("phone", String(64)),
    Column("email", String(200)),
    Column("notes", Text),
    Column("time_zone", String(64)),
    _now_column(),
    _now_column("updated_at"),
    Index("ix_contacts_name", "name"),
    Index("ix_contacts_phone", "phone"),
    Index("ix_contacts_company", "company"),
)

identities = Table(
    "identities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("display_name", String(200)),
    Column("avatar_url", Text),
    Column("phone", String(64)),
    Column("first_inbound_at", UTCDateTime()),  # provider clock
    Column("last_inbound_at", UTCDateTime()),  # provider clock: drives every window rule
    Column("last_received_at", UTCDateTime()),  # our clock, beside it
    Column("subscription", String(16)),
    Column("subscription_changed_at", UTCDateTime()),
    Column("welcome_sent", Boolean, nullable=False, server_default=text("false")),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="SET NULL")),
    _now_column(),
    UniqueConstraint("account_id", "external_id", name="uq_identities_account_external"),
    Index("ix_identities_contact", "contact_id"),
    Index("ix_identities_phone", "phone"),
    Index("ix_identities_display_name", "display_name"),
)

# ----------------------------------------------------------------------- agents

agents = Table(
    "agents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("login", String(100), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("presence", String(16), nullable=False),
    Column("pause_reason", String(200)),
    Column("pause_paid", Boolean),
    Column("presence_since", UTCDateTime(), nullable=False),
    Column("idle_since", UTCDateTime(), nullable=False),  # longest idle is offered first
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _now_column(),
)

agent_queues = Table(
    "agent_queues",
    metadata,
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("queue_id", String(64), primary_key=True),
    Index("ix_agent_queues_queue", "queue_id"),
)

auth_tokens = Table(
    "auth_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # session | bearer
    Column("csrf_token", String(64)),
    _now_column(),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    Index("ix_auth_tokens_agent", "agent_id"),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    # "login:<login>" or "address:<client address>": one row per thing that is limited
    Column("key", String(200), primary_key=True),
    Column("attempts", Integer, nullable=False),  # counted in the window that started at window_started_at
    Column("window_started_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime()),
    Column("lockouts", Integer, nullable=False),  # lockouts in a row: each one lasts twice as long
    Index("ix_login_attempts_window", "window_started_at"),
)

# ---------------------------------------------------------------- conversations

tickets = Table(
    "tickets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("title", String(300), nullable=False),
    Column("description", Text),
    Column("state", String(16), nullable=False, server_default=text("'open'")),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="SET NULL")),
    Column("company", String(200)),
    Column("assignee_agent_id", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    Column("created_by", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    _now_column(),
    _now_column("updated_at"),
    Index("ix_tickets_contact", "contact_id"),
    Index("ix_tickets_assignee", "assignee_agent_id"),
    Index("ix_tickets_company", "company"),
)

ticket_favourites = Table(
    "ticket_favourites",
    metadata,
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("ticket_id", Id, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("identity_id", Id, ForeignKey("identities.id"), nullable=False),
    Column("queue_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner_agent_id", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    Column("offered_agent_id", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    Column("offered_at", UTCDateTime()),
    Column("offer_deadline", UTCDateTime()),
    Column("waiting_since", UTCDateTime()),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime()),
    Column("last_message_at", UTCDateTime()),
    Column("important", Boolean, nullable=False, server_default=text("false")),
    Column("status_id", String(64)),
    Column("ticket_id", Id, ForeignKey("tickets.id", ondelete="SET NULL")),
    Column("version", Integer, nullable=False, server_default=text("0")),  # optimistic concurrency
    # one open conversation per identity (and so per account), enforced by the database
    Index(
        "uq_conversations_open_identity",
        "identity_id",
        unique=True,
        sqlite_where=text("state != 'closed'"),
        postgresql_where=text("state != 'closed'"),
    ),
    Index("ix_conversations_waiting", "queue_id", "state", "waiting_since"),
    Index("ix_conversations_offer_deadline", "state", "offer_deadline"),
    Index("ix_conversations_owner", "owner_agent_id", "state"),
    Index("ix_conversations_offered", "offered_agent_id", "state"),  # an agent's load, counted on every sweep
    Index("ix_conversations_identity_opened", "identity_id", "opened_at"),
    Index("ix_conversations_state_id", "state", "id"),
)

participants = Table(
    "participants",
    metadata,
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # owner | invited
    Column("joined_at", UTCDateTime(), nullable=False),
    Column("left_at", UTCDateTime()),
    Index("ix_participants_agent", "agent_id", "left_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("identity_id", Id, ForeignKey("identities.id"), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("direction", String(4), nullable=False),
    Column("author", String(16), nullable=False),
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    Column("kind", String(16), nullable=False),
    Column("text", Text),
    # usually empty: stored as SQL NULL, not JSON 'null', so that neither writing nor reading them parses JSON
    Column("attachments", JSON(none_as_null=True)),
    Column("location", JSON(none_as_null=True)),
    Column("payload", Text),
    Column("reply_to", String(200)),
    Column("extra", JSON(none_as_null=True)),
    Column("provider_message_id", String(200)),
    Column("sent_at", UTCDateTime()),  # provider clock (inbound) / provider acceptance (outbound)
    _now_column(),  # our clock
    Column("delivery_state", String(16), nullable=False),
    Column("delivery_changed_at", UTCDateTime()),
    Column("error_code", String(64)),
    Column("error_reason", Text),
    Column("template_name", String(100)),
    Column("template_version", Integer),
    Column("tag", String(64)),
    Column("send_plan", JSON),  # what the policy decided (messaging_type, tag, template binding)
    UniqueConstraint("account_id", "provider_message_id", name="uq_messages_account_provider_id"),
    Index("ix_messages_conversation_created", "conversation_id", "created_at", "id"),
    Index("ix_messages_identity_direction", "identity_id", "direction", "sent_at"),
)

timeline_events = Table(
    "timeline_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    Column("data", JSON, nullable=False),
    _now_column(),
    Index("ix_timeline_events_conversation_created", "conversation_id", "created_at", "id"),
)

# ------------------------------------------------------------------ delivery side

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("account_id", String(64), nullable=False),
    Column("conversation_id", Id, nullable=False),
    Column("state", String(16), nullable=False),  # pending | sending | done | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime()),
    Column("locked_by", String(64)),
    Column("last_error", Text),
    _now_column(),
    Index("ix_outbox_due", "state", "next_attempt_at"),
    # the claim's "no earlier unfinished row in this conversation" probe: only unfinished rows, so the probe
    # costs the same however many done rows a conversation has (the claim spells this predicate out literally)
    Index(
        "ix_outbox_unfinished",
        "conversation_id",
        "id",
        sqlite_where=text("state IN ('pending', 'sending')"),
        postgresql_where=text("state IN ('pending', 'sending')"),
    ),
)

pending_receipts = Table(
    "pending_receipts",
    metadata,
    # a receipt that arrived before the outbox stored the provider's id for that message (providers call back fast)
    Column("account_id", String(64), primary_key=True),
    Column("provider_message_id", String(200), primary_key=True),
    Column("state", String(16), primary_key=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("error_code", String(64)),
    Column("error_reason", Text),
    _now_column(),
    Index("ix_pending_receipts_created", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("method", String(8), nullable=False),
    Column("path", Text, nullable=False),
    Column("status", Integer),  # null while the first request is still running
    Column("response", JSON),
    _now_column(),
)

bus_log = Table(
    "bus_log",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("conversation_id", Id),
    Column("agent_id", Id),  # addressed to one agent (offers, presence), or null
    Column("queue_id", String(64)),
    Column("data", JSON, nullable=False),
    _now_column(),
    Index("ix_bus_log_created", "created_at"),
)

# ------------------------------------------------------------------- templates

message_templates = Table(
    "message_templates",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("current_version", Integer, nullable=False),
    _now_column(),
    _now_column("updated_at"),
)

template_versions = Table(
    "template_versions",
    metadata,
    Column("name", String(100), ForeignKey("message_templates.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("description", Text),
    Column("body", Text, nullable=False),
    Column("variables", JSON, nullable=False),
    Column("variants", JSON, nullable=False),
    Column("tag", String(64)),
    Column("bindings", JSON, nullable=False),
    Column("created_by", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    _now_column(),
)

# ---------------------------------------------------------------- dead letters

rejected_webhooks = Table(
    "rejected_webhooks",
    metadata,
    # a correctly signed delivery the hub can never use, answered 200 and kept for an admin to read (ADR 0024)
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("account_id", String(64)),  # null when the delivery does not say which of our accounts it is for
    Column("received_at", UTCDateTime(), nullable=False),  # our clock
    Column("reason_code", String(64), nullable=False),  # machine-readable: invalid_json, too_deep, ...
    Column("reason", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),  # the bytes as received (and signed), NUL bytes included
    Index("ix_rejected_webhooks_received", "received_at", "id"),
)

# ---------------------------------------------------------------- outgoing webhooks (integrations)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    # one integration: seeded from [[webhooks_out]] (source "config") or created by an admin (source "admin")
    Column("id", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),  # whsec_<base64>: signs every delivery (Standard Webhooks)
    Column("events", JSON, nullable=False),  # the event types it hears of
    Column("queues", JSON),  # the queues it may see; null: every queue
    Column("source", String(16), nullable=False),
    Column("pause_after", Integer, nullable=False),  # consecutive failed attempts before it is paused
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("paused_at", UTCDateTime()),  # null: deliveries go out
    Column("paused_reason", Text),
    _now_column(),
    _now_column("updated_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # one event for one subscription, written in the transaction of the change it reports (ADR 0029)
    Column("id", Id, primary_key=True, autoincrement=True),  # also the stable webhook-id receivers dedupe on
    Column("subscription_id", String(64), ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("order_key", String(64), nullable=False),  # conversation:<id> or contact:<id>: delivered in id order
    Column("conversation_id", Id),
    Column("payload", JSON, nullable=False),  # the body as sent: {"type", "timestamp", "data"}
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("leased_until", UTCDateTime()),  # a dispatcher is sending it until then
    Column("lease_owner", String(64)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime()),
    _now_column(),
    Index("ix_webhook_deliveries_due", "status", "id"),  # the pending ones in order: the claim stops at its limit
    Index("ix_webhook_deliveries_order", "subscription_id", "order_key", "status", "id"),
    Index("ix_webhook_deliveries_listing", "subscription_id", "id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempted_at", UTCDateTime(), nullable=False),
    Column("status_code", Integer),  # null: no HTTP answer (refused, timed out)
    Column("error", Text),  # null: delivered
    Column("duration_ms", Integer, nullable=False),
    Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)
