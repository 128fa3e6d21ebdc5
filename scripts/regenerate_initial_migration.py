"""Regenerate migration 0001 from hub/store/tables.py.

Only while nothing has been released: once a version ships, schema changes get
a new migration (``alembic revision --autogenerate``) instead.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from alembic import command

from hub.store.engine import create_engine
from hub.store.migrate import alembic_config

VERSIONS = Path(__file__).resolve().parent.parent / "hub" / "store" / "migrations" / "versions"


async def main() -> None:
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{folder}/schema.db")
        async with engine.begin() as connection:

            def generate(sync_connection: object) -> None:
                config = alembic_config(sync_connection)  # type: ignore[arg-type]
                command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")

            await connection.run_sync(generate)
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
