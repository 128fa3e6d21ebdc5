"""the agent desk: a participant's own close status, a queue's transfer-back setting, widget layouts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 06:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.store.tables

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transfer_back", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.create_table(
        "agent_layouts",
        sa.Column("agent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("widgets", sa.JSON(), nullable=False),
        sa.Column("updated_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_layouts_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_layouts")),
    )


def downgrade() -> None:
    op.drop_table("agent_layouts")
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_column("transfer_back")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("status_id")
