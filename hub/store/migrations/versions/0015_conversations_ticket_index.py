"""tickets: an index on conversations' ticket, so that a ticket's page lists the conversations it is assigned to
without reading the whole conversations table

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_conversations_ticket_opened", "conversations", ["ticket_id", "opened_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_ticket_opened", table_name="conversations")
