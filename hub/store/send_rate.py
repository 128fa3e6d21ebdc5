"""The per-account send rate, shared by every hub process on the database: one token bucket row per account.

A process leases a few tokens at a time (``lease_tokens``) and spends them itself, so the database is asked
once per lease, not once per send. The row holds the tokens left and when it was last refilled; a lease refills
it by the time elapsed (``rate`` per second, at most ``capacity``), takes what it may, and writes it back, all
under the row's lock (``FOR UPDATE`` on PostgreSQL; SQLite's one writer at a time). docs/scaling.md.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select, update

from hub.store._db import Store, upsert
from hub.store.tables import send_rate_buckets

__all__ = ["lease_tokens"]


async def lease_tokens(
    store: Store, account_id: str, *, want: int, rate: float, capacity: float, now: datetime
) -> tuple[int, float]:
    """Take up to ``want`` whole tokens from the account's shared bucket.

    Returns (tokens granted, seconds until the next one accrues when none was granted, else 0)."""
    c = send_rate_buckets.c
    async with store.write() as connection:
        await connection.execute(
            upsert(
                store.dialect, send_rate_buckets, {"account_id": account_id, "tokens": capacity, "updated_at": now}
            ).on_conflict_do_nothing(index_elements=["account_id"])
        )
        row = (
            await connection.execute(select(c.tokens, c.updated_at).where(c.account_id == account_id).with_for_update())
        ).one()
        elapsed = max(0.0, (now - row.updated_at).total_seconds())
        tokens = min(capacity, float(row.tokens) + elapsed * rate)
        granted = max(0, min(want, math.floor(tokens)))
        left = tokens - granted
        await connection.execute(
            update(send_rate_buckets)
            .where(c.account_id == account_id)
            .values(tokens=left, updated_at=max(now, row.updated_at))
        )
    return granted, 0.0 if granted else (1 - left) / rate
