"""Throw-away databases for benchmarks: a SQLite file in a temporary folder, or a fresh PostgreSQL database."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hub.store import Store

PG_ADMIN = os.environ.get("CHANNELHUB_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def database(engine: str) -> AsyncIterator[Store]:
    """A migrated, empty store on ``engine`` ("sqlite" or "postgres"), removed afterwards."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{folder}/bench.db")
            await store.migrate()
            try:
                yield store
            finally:
                await store.close()
        return
    import asyncpg

    name = f"chbench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    store = Store(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
