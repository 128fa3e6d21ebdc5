"""Account health: when an account last received a webhook and last sent, and its last send error.

Written by ingest (an account at most once a second per process, ``hub.ingest.HEALTH_STAMP_EVERY``) and by the
outbox (sends about once a second, and errors);
read by the admin API (``admin.list_account_health``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store._db import upsert
from hub.store.tables import account_health

__all__ = ["stamp_health", "webhook_stamp"]


async def stamp_health(connection: AsyncConnection, dialect: str, account_id: str, values: dict[str, Any]) -> None:
    """Set ``values`` on the account's row, creating it if needed."""
    stmt = upsert(dialect, account_health, {"account_id": account_id, **values})
    await connection.execute(stmt.on_conflict_do_update(index_elements=["account_id"], set_=values))


@cache
def webhook_stamp(dialect: str) -> Any:
    """Stamp ``last_webhook_at``: executed with one row (``account_id``, ``last_webhook_at``) per account."""
    stmt = upsert(dialect, account_health)
    return stmt.on_conflict_do_update(
        index_elements=["account_id"], set_={"last_webhook_at": stmt.excluded.last_webhook_at}
    )
