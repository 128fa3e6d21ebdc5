"""bots: each conversation's part with a bot (which bot, unanswered since, collected variables, hand-off)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 06:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.store.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_conversations",
        sa.Column("conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.String(length=64), nullable=False),
        sa.Column("awaiting_since", hub.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("handoff_reason", sa.String(length=32), nullable=True),
        sa.Column("handoff_note", sa.Text(), nullable=True),
        sa.Column("handed_off_at", hub.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_bot_conversations_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_bot_conversations")),
    )
    with op.batch_alter_table("bot_conversations", schema=None) as batch_op:
        batch_op.create_index("ix_bot_conversations_awaiting", ["bot_id", "awaiting_since"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bot_conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_bot_conversations_awaiting")
    op.drop_table("bot_conversations")
