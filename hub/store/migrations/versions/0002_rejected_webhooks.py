"""rejected webhooks: signed deliveries the hub can never use, kept as dead letters

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.store.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rejected_webhooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_webhooks")),
    )
    with op.batch_alter_table("rejected_webhooks", schema=None) as batch_op:
        batch_op.create_index("ix_rejected_webhooks_received", ["received_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rejected_webhooks", schema=None) as batch_op:
        batch_op.drop_index("ix_rejected_webhooks_received")
    op.drop_table("rejected_webhooks")
