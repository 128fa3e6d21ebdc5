"""Migrations build the schema of hub/store/tables.py from an empty database, on both engines."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from hub.store import Store
from hub.store.migrate import current_revision, head_revision
from hub.store.tables import metadata
from tests.conftest import ENGINES, PG_ADMIN_URL, _pg_available, _pg_url


@pytest.fixture(params=ENGINES)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    import os

    if not _pg_available():
        if os.environ.get("CHANNELHUB_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required but unreachable")
        pytest.skip("PostgreSQL not reachable")
    import asyncpg

    name = f"chtest_empty_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield _pg_url(name)
    finally:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def _described_by_tables(name: str | None, type_: str, parent_names: object) -> bool:
    """SQLite's full-text index for articles is a virtual table (and its shadow tables) that the
    migration makes and tables.py cannot describe; everything else must match."""
    return not (type_ == "table" and name is not None and name.startswith("article_search"))


async def test_migrations_go_up_from_empty_and_match_the_tables(empty_database_url: str) -> None:
    store = Store(empty_database_url)
    try:
        assert await current_revision(store.writer) is None
        ready, detail = await store.is_ready()
        assert not ready
        assert "migrations not current" in detail
        await store.migrate()
        assert await current_revision(store.writer) == head_revision()
        assert await store.is_ready() == (True, "ok")
        await store.migrate()  # a second run is a no-op

        def differences(connection: Connection) -> list[object]:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": _described_by_tables}
            )
            return list(compare_metadata(context, metadata))

        def table_names(connection: Connection) -> set[str]:
            return set(inspect(connection).get_table_names())

        async with store.writer.connect() as connection:
            assert await connection.run_sync(differences) == []
            assert {t.name for t in metadata.sorted_tables} <= await connection.run_sync(table_names)
    finally:
        await store.close()


async def test_readiness_reports_an_unreachable_database() -> None:
    store = Store("postgresql://nobody@127.0.0.1:1/nothing")
    try:
        ready, detail = await store.is_ready()
    finally:
        await store.close()
    assert not ready
    assert detail.startswith("database unreachable")
