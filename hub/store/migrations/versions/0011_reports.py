"""reports and several processes: the timeline's (kind, created_at) index, by which reports find the contacts
of a period; on PostgreSQL a trigger that announces new event-log rows (NOTIFY); the shared send-rate buckets

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 06:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.store.tables

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One notification per inserting statement, naming the first and last sequence numbers it wrote; PostgreSQL
# delivers it at commit, in commit order (hub/store/listen.py listens).
_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION channelhub_bus_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('channelhub_bus_log', (SELECT min(seq)::text || ',' || max(seq)::text FROM new_rows));
    RETURN NULL;
END
$$
"""
_NOTIFY_TRIGGER = """
CREATE TRIGGER bus_log_notify AFTER INSERT ON bus_log
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION channelhub_bus_log_notify()
"""


def upgrade() -> None:
    with op.batch_alter_table("timeline_events", schema=None) as batch_op:
        batch_op.create_index("ix_timeline_events_kind_created", ["kind", "created_at"], unique=False)
    op.create_table(
        "send_rate_buckets",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_send_rate_buckets")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_NOTIFY_FUNCTION)
        op.execute(_NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS bus_log_notify ON bus_log")
        op.execute("DROP FUNCTION IF EXISTS channelhub_bus_log_notify()")
    op.drop_table("send_rate_buckets")
    with op.batch_alter_table("timeline_events", schema=None) as batch_op:
        batch_op.drop_index("ix_timeline_events_kind_created")
