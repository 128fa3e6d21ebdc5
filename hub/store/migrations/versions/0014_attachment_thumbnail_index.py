"""media: an index on attachments' thumbnail key, so that the orphan walk's "which of these blobs are still
named" query looks keys up instead of reading the whole attachments table once per batch

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 21:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_attachments_thumbnail", "attachments", ["thumbnail_key"])


def downgrade() -> None:
    op.drop_index("ix_attachments_thumbnail", table_name="attachments")
