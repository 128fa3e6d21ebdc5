"""Idempotency keys: the first answer to a state-changing request, kept for retries.

A key is claimed (a row with no status) before the request runs, so a retry
arriving while the first is still running is told so instead of running twice;
the answer is stored when it is known. Keys are per agent and expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from hub.store._db import Store, upsert
from hub.store.tables import idempotency_keys

__all__ = ["KEY_LIFETIME", "StoredAnswer", "claim_key", "complete_key", "prune_keys", "release_key"]

KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    method: str
    path: str
    status: int | None  # None: the first request is still running
    response: Any


async def claim_key(
    store: Store, agent_id: int, key: str, method: str, path: str, *, now: datetime
) -> StoredAnswer | None:
    """None when this request now owns the key; else what the first request left."""
    async with store.write() as connection:
        await connection.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.agent_id == agent_id,
                idempotency_keys.c.key == key,
                idempotency_keys.c.created_at < now - KEY_LIFETIME,
            )
        )
        inserted = await connection.execute(
            upsert(
                store.dialect,
                idempotency_keys,
                {"agent_id": agent_id, "key": key, "method": method, "path": path, "created_at": now},
            )
            .on_conflict_do_nothing(index_elements=["agent_id", "key"])
            .returning(idempotency_keys.c.key)
        )
        if inserted.first() is not None:
            return None
        row = (
            await connection.execute(
                select(idempotency_keys).where(idempotency_keys.c.agent_id == agent_id, idempotency_keys.c.key == key)
            )
        ).one()
    return StoredAnswer(method=row.method, path=row.path, status=row.status, response=row.response)


async def complete_key(store: Store, agent_id: int, key: str, status: int, response: Any) -> None:
    async with store.write() as connection:
        await connection.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.agent_id == agent_id, idempotency_keys.c.key == key)
            .values(status=status, response=response)
        )


async def release_key(store: Store, agent_id: int, key: str) -> None:
    """The first request failed in a way worth retrying (5xx): let the retry run."""
    async with store.write() as connection:
        await connection.execute(
            delete(idempotency_keys).where(idempotency_keys.c.agent_id == agent_id, idempotency_keys.c.key == key)
        )


async def prune_keys(store: Store, *, now: datetime) -> int:
    async with store.write() as connection:
        result = await connection.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < now - KEY_LIFETIME)
        )
    return int(result.rowcount)
