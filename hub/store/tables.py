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
    Float,
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
from sqlalchemy.dialects.postgresql import TSVECTOR
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
    # a transfer here may go back to the agent who made it when they are its only member (ADR 0030)
    Column("transfer_back", Boolean, nullable=False, server_default=text("false")),
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
    Index("ix_conversations_ticket_opened", "ticket_id", "opened_at"),  # a ticket's conversations, newest first
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
    Column("status_id", String(64)),  # the status this agent closed their part with (ADR 0030)
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

# the same for bots, which act with their configured token and have no row in agents
bot_idempotency_keys = Table(
    "bot_idempotency_keys",
    metadata,
    Column("bot_id", String(64), primary_key=True),
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

# ---------------------------------------------------------------- the agent desk: widget layout (ADR 0030)

agent_layouts = Table(
    "agent_layouts",
    metadata,
    # which side-panel widgets an agent shows, in order; no row: the console's default
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("widgets", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# ------------------------------------------------------- calendar and co-browsing rooms

calendar_events = Table(
    "calendar_events",
    metadata,
    # an agent's own scheduled follow-up; nobody else reads it (hub/usecases/calendar.py)
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(300), nullable=False),
    Column("note", Text),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime()),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="SET NULL")),
    Column("ticket_id", Id, ForeignKey("tickets.id", ondelete="SET NULL")),
    _now_column(),
    _now_column("updated_at"),
    Index("ix_calendar_events_agent", "agent_id", "starts_at"),
)

calendar_feeds = Table(
    "calendar_feeds",
    metadata,
    # the secret in the agent's iCalendar feed URL; rotating it replaces the row
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("token", String(64), nullable=False, unique=True),
    _now_column(),
)

rooms = Table(
    "rooms",
    metadata,
    # a co-browsing video room between one agent and one customer (ADR 0032)
    Column("id", String(32), primary_key=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("customer_token_hash", String(64), nullable=False),  # sha256 of the token in the customer's link
    _now_column(),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_rooms_conversation", "conversation_id"),
)

# ---------------------------------------------------------------- audit log (ADR 0033)

audit_log = Table(
    "audit_log",
    metadata,
    # append-only: who changed what, when and from where; only the retention sweep deletes (hub/audit.py)
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(100)),  # the acting login; null for the system
    Column("actor_kind", String(16), nullable=False),  # agent | bot | cli | system
    Column("action", String(64), nullable=False),  # dotted: auth.login, conversation.closed, ...
    Column("address", String(64)),  # the client's address, when it came over HTTP
    Column("target", String(200)),  # what it changed: conversation:12, agent:ana, queue:support, ...
    Column("conversation_id", Id),  # no foreign key: the record outlives a deleted conversation
    Column("before", JSON),
    Column("after", JSON),
    Index("ix_audit_log_at", "at", "id"),
    Index("ix_audit_log_actor", "actor", "id"),
    Index("ix_audit_log_action", "action", "id"),
    Index("ix_audit_log_conversation", "conversation_id", "id"),
)

# ------------------------------------------------------------ knowledge articles

# What an engine searches. PostgreSQL: a tsvector kept beside the row (GIN index). SQLite keeps no
# value here: its full-text index is the FTS5 table ``article_search`` that migration 0008 creates
# (a virtual table, so not described here; hub/store/articles.py keeps it in step with the rows).
ArticleSearchVector = Text().with_variant(TSVECTOR(), "postgresql")

articles = Table(
    "articles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("current_version", Integer, nullable=False),
    Column("title", String(300), nullable=False),  # the current version's, copied for lists and search
    Column("body", Text, nullable=False),  # Markdown
    Column("html", Text, nullable=False),  # the body rendered and sanitised when it was saved
    Column("tags", JSON, nullable=False),
    Column("queues", JSON, nullable=False),  # [] = every queue
    Column("everyone", Boolean, nullable=False),  # no queues: every agent may read it
    Column("search_vector", ArticleSearchVector),
    Column("created_by", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    _now_column(),
    _now_column("updated_at"),
    Index("ix_articles_search_vector", "search_vector", postgresql_using="gin"),
)

article_versions = Table(
    "article_versions",
    metadata,
    Column("article_id", Id, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("queues", JSON, nullable=False),
    Column("created_by", Id, ForeignKey("agents.id", ondelete="SET NULL")),
    _now_column(),
)

article_queues = Table(
    "article_queues",
    metadata,
    # which queues' agents may read an article (none: everyone); the visibility filter joins here
    Column("article_id", Id, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("queue_id", String(64), primary_key=True),
    Index("ix_article_queues_queue", "queue_id", "article_id"),
)

# ---------------------------------------------------------------- media (attachments and agents' uploads)

attachments = Table(
    "attachments",
    metadata,
    # one file of one message: a customer's (fetched from the provider after the webhook is acknowledged)
    # or an agent's (from an upload). The bytes live in the blob store under ``blob_key`` (their SHA-256).
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),  # its place in the message's ``attachments`` list
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # pending | stored | failed
    Column("mime", String(200)),
    Column("size", BigInteger),
    Column("sha256", String(64)),
    Column("file_name", String(300)),
    Column("blob_key", String(64)),  # the blob store's key (the SHA-256) while the bytes are kept
    Column("width", Integer),
    Column("height", Integer),
    Column("thumbnail_key", String(64)),
    Column("error", Text),  # why a fetch failed for good, in words
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime()),  # a pending fetch is due then
    Column("locked_until", UTCDateTime()),  # a fetcher's lease: another process takes the row over after it
    Column("provider_media_id", String(300)),  # WhatsApp Cloud's media id, Twilio's media SID, ...
    Column("provider_url", Text),  # where the provider said the bytes are
    # an agent's file sent by link (Twilio, Viber): the provider fetches /media/{link_token} until then
    Column("link_token", String(64)),
    Column("link_expires_at", UTCDateTime()),
    _now_column(),
    Column("stored_at", UTCDateTime()),
    UniqueConstraint("message_id", "position", name="uq_attachments_message_position"),
    Index("ix_attachments_due", "state", "next_attempt_at"),
    Index("ix_attachments_blob", "blob_key"),
    Index("ix_attachments_thumbnail", "thumbnail_key"),  # the orphan walk asks which keys are named
    Index("ix_attachments_stored", "stored_at"),
    Index("ix_attachments_link", "link_token", unique=True),
)

uploads = Table(
    "uploads",
    metadata,
    # a file an agent uploaded to attach to a message; its id is what ``{"upload": id}`` names
    Column("id", String(32), primary_key=True),
    Column("agent_id", Id, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("mime", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("file_name", String(300)),
    Column("width", Integer),
    Column("height", Integer),
    Column("thumbnail_key", String(64)),
    _now_column(),
    Index("ix_uploads_created", "created_at"),
    Index("ix_uploads_sha256", "sha256"),
)

# ---------------------------------------------------------------- bots (a queue's bot answers first)

bot_conversations = Table(
    "bot_conversations",
    metadata,
    # a conversation's part with a bot (ADR 0028): which bot, what it has not answered yet, what it collected
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("bot_id", String(64), nullable=False),
    Column("awaiting_since", UTCDateTime()),  # the customer's oldest message the bot has not answered
    Column("failures", Integer, nullable=False, server_default=text("0")),  # calls in a row that failed
    Column("step", String(64)),  # a rules bot's place in its flow
    Column("variables", JSON, nullable=False),  # fields collected from the customer (name, order number...)
    Column("handoff_reason", String(32)),  # bot_asked | customer_asked | bot_silent | bot_failed
    Column("handoff_note", Text),
    Column("handed_off_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_bot_conversations_awaiting", "bot_id", "awaiting_since"),
)

# ------------------------------------------- reports and several processes (migration 0011)

# reports find the contacts customers started in a period by the kind and time of their timeline rows
Index("ix_timeline_events_kind_created", timeline_events.c.kind, timeline_events.c.created_at)

# the per-account send rate, one token bucket shared by every process (hub/store/send_rate.py)
send_rate_buckets = Table(
    "send_rate_buckets",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),  # left after the last lease
    Column("updated_at", UTCDateTime(), nullable=False),  # when they were counted
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
    Index("ix_webhook_deliveries_order", "subscription_id", "order_key", "status", "id"),
    Index("ix_webhook_deliveries_listing", "subscription_id", "id"),
)

webhook_heads = Table(
    "webhook_heads",
    metadata,
    # the head of each line: the delivery of (subscription, order key) that goes next; the claim reads only these
    Column("subscription_id", String(64), ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), primary_key=True),
    Column("order_key", String(64), primary_key=True),
    Column("delivery_id", Id, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Index("ix_webhook_heads_delivery", "delivery_id", unique=True),
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
