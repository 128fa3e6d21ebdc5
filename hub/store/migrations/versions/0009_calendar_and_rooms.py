"""calendar and rooms: agents' scheduled events, their feed secrets, co-browsing rooms

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.store.tables

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "calendar_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("agent_id", _ID, nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("starts_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", hub.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("conversation_id", _ID, nullable=True),
        sa.Column("ticket_id", _ID, nullable=True),
        sa.Column("created_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_calendar_events_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_calendar_events_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_calendar_events_ticket_id_tickets"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_events")),
    )
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.create_index("ix_calendar_events_agent", ["agent_id", "starts_at"], unique=False)
    op.create_table(
        "calendar_feeds",
        sa.Column("agent_id", _ID, nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_calendar_feeds_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("token", name=op.f("uq_calendar_feeds_token")),
    )
    op.create_table(
        "rooms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", _ID, nullable=False),
        sa.Column("agent_id", _ID, nullable=False),
        sa.Column("customer_token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_rooms_agent_id_agents"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_rooms_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rooms")),
    )
    with op.batch_alter_table("rooms", schema=None) as batch_op:
        batch_op.create_index("ix_rooms_conversation", ["conversation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rooms", schema=None) as batch_op:
        batch_op.drop_index("ix_rooms_conversation")
    op.drop_table("rooms")
    op.drop_table("calendar_feeds")
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_events_agent")
    op.drop_table("calendar_events")
