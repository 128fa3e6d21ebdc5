"""knowledge articles: articles, their versions, the queues they belong to, and a full-text index per engine

SQLite gets the FTS5 table ``article_search`` (unicode61, diacritics folded; prefix indexes for
short words) and its vocabulary ``article_search_terms``; PostgreSQL a GIN index on ``articles.search_vector`` and, where the server allows it,
the pg_trgm extension and a trigram index on titles for typo-tolerant title matches (the hub works without them).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 06:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.store.tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("everyone", sa.Boolean(), nullable=False),
        sa.Column("search_vector", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"), nullable=True),
        sa.Column("created_by", _ID, nullable=True),
        sa.Column("created_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["agents.id"], name=op.f("fk_articles_created_by_agents"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_articles")),
    )
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_articles_search_vector", ["search_vector"], unique=False, postgresql_using="gin"
        )
    op.create_table(
        "article_versions",
        sa.Column("article_id", _ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("created_by", _ID, nullable=True),
        sa.Column("created_at", hub.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_article_versions_article_id_articles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["agents.id"], name=op.f("fk_article_versions_created_by_agents"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("article_id", "version", name=op.f("pk_article_versions")),
    )
    op.create_table(
        "article_queues",
        sa.Column("article_id", _ID, nullable=False),
        sa.Column("queue_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_article_queues_article_id_articles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("article_id", "queue_id", name=op.f("pk_article_queues")),
    )
    with op.batch_alter_table("article_queues", schema=None) as batch_op:
        batch_op.create_index("ix_article_queues_queue", ["queue_id", "article_id"], unique=False)

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # rowid = articles.id; remove_diacritics folds "café" into "cafe"; prefix indexes speed up "pass*";
        # audience holds who may read it (a token per queue, or one for everyone), so visibility is part of the match
        op.execute(
            "CREATE VIRTUAL TABLE article_search USING fts5("
            "title, tags, body, audience, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')"
        )
        # its vocabulary, read to correct a mistyped word when a search finds nothing
        op.execute("CREATE VIRTUAL TABLE article_search_terms USING fts5vocab(article_search, 'row')")
    elif bind.dialect.name == "postgresql":
        # typo tolerance is a bonus: a server that does not let us add the extension still works
        savepoint = bind.begin_nested()
        try:
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            # mistyped searches compare titles by trigrams; this index keeps that from reading every row
            bind.exec_driver_sql("CREATE INDEX ix_articles_title_trgm ON articles USING gin (title gin_trgm_ops)")
            savepoint.commit()
        except sa.exc.DBAPIError:
            savepoint.rollback()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_articles_title_trgm")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS article_search_terms")
        op.execute("DROP TABLE IF EXISTS article_search")
    with op.batch_alter_table("article_queues", schema=None) as batch_op:
        batch_op.drop_index("ix_article_queues_queue")
    op.drop_table("article_queues")
    op.drop_table("article_versions")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index("ix_articles_search_vector", postgresql_using="gin")
    op.drop_table("articles")
