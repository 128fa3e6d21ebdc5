"""Idempotency keys: the first answer to a state-changing request, kept for retries.

A key is claimed (a row with no status) before the request runs, so a retry
arriving while the first is still running is told so instead of running twice;
the answer is stored when it is known. Keys are per agent (an agent's id) or per
bot (a configured bot's id, which has no agent row), and expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Table, delete, select, update

from hub.store._db import Store, upsert
from hub.store.tables import bot_idempotency_keys, idempotency_keys

__all__ = ["KEY_LIFETIME", "Owner", "StoredAnswer", "claim_key", "complete_key", "prune_keys", "release_key"]

KEY_LIFETIME = timedelta(hours=24)

#: whose key it is: an agent's id, or a bot's configured id
Owner = int | str


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    method: str
    path: str
    status: int | None  # None: the first request is still running
    response: Any


def _keys(owner: Owner) -> tuple[Table, Column[Any], str]:
    """The table of ``owner``'s keys, its owner column and that column's name."""
    if isinstance(owner, str):
        return bot_idempotency_keys, bot_idempotency_keys.c.bot_id, "bot_id"
    return idempotency_keys, idempotency_keys.c.agent_id, "agent_id"


async def claim_key(
    store: Store, owner: Owner, key: str, method: str, path: str, *, now: datetime
) -> StoredAnswer | None:
    """None when this request now owns the key; else what the first request left."""
    table, owner_column, owner_name = _keys(owner)
    async with store.write() as connection:
        await connection.execute(
            delete(table).where(owner_column == owner, table.c.key == key, table.c.created_at < now - KEY_LIFETIME)
        )
        inserted = await connection.execute(
            upsert(
                store.dialect,
                table,
                {owner_name: owner, "key": key, "method": method, "path": path, "created_at": now},
            )
            .on_conflict_do_nothing(index_elements=[owner_name, "key"])
            .returning(table.c.key)
        )
        if inserted.first() is not None:
            return None
        row = (await connection.execute(select(table).where(owner_column == owner, table.c.key == key))).one()
    return StoredAnswer(method=row.method, path=row.path, status=row.status, response=row.response)


async def complete_key(store: Store, owner: Owner, key: str, status: int, response: Any) -> None:
    table, owner_column, _ = _keys(owner)
    async with store.write() as connection:
        await connection.execute(
            update(table).where(owner_column == owner, table.c.key == key).values(status=status, response=response)
        )


async def release_key(store: Store, owner: Owner, key: str) -> None:
    """The first request failed in a way worth retrying (5xx): let the retry run."""
    table, owner_column, _ = _keys(owner)
    async with store.write() as connection:
        await connection.execute(delete(table).where(owner_column == owner, table.c.key == key))


async def prune_keys(store: Store, *, now: datetime) -> int:
    pruned = 0
    async with store.write() as connection:
        for table in (idempotency_keys, bot_idempotency_keys):
            result = await connection.execute(delete(table).where(table.c.created_at < now - KEY_LIFETIME))
            pruned += int(result.rowcount)
    return pruned
