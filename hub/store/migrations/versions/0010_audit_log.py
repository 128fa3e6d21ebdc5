"""audit log: an append-only record of who changed what, when and from where (ADR 0033)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 06:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.store.tables

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("conversation_id", Id, nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at", "id"], unique=False)
        batch_op.create_index("ix_audit_log_actor", ["actor", "id"], unique=False)
        batch_op.create_index("ix_audit_log_action", ["action", "id"], unique=False)
        batch_op.create_index("ix_audit_log_conversation", ["conversation_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_conversation")
        batch_op.drop_index("ix_audit_log_action")
        batch_op.drop_index("ix_audit_log_actor")
        batch_op.drop_index("ix_audit_log_at")
    op.drop_table("audit_log")
