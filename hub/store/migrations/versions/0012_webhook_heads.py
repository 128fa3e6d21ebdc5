"""outgoing webhooks: the head of each delivery line in its own table, so that a claim reads only the heads;
the (status, id) index the claim used to walk goes (every delivery's lease and outcome updated it)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 09:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# the lines already waiting: the earliest pending delivery of each (subscription, order key) is its head
_BACKFILL = """
INSERT INTO webhook_heads (subscription_id, order_key, delivery_id)
SELECT subscription_id, order_key, min(id) FROM webhook_deliveries WHERE status = 'pending'
GROUP BY subscription_id, order_key
"""


def upgrade() -> None:
    op.create_table(
        "webhook_heads",
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("order_key", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", _Id, nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_heads_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_heads_subscription_id_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", "order_key", name=op.f("pk_webhook_heads")),
    )
    with op.batch_alter_table("webhook_heads", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_heads_delivery", ["delivery_id"], unique=True)
    op.execute(_BACKFILL)
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "id"], unique=False)
    with op.batch_alter_table("webhook_heads", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_heads_delivery")
    op.drop_table("webhook_heads")
