"""Login attempt counters: one row per login name and per client address.

They live in the database so that every hub process on one PostgreSQL server
counts the same attempts (hub/login_limits.py decides what the numbers mean).
Rows are read with ``FOR UPDATE`` inside the caller's write transaction, so
two processes counting the same key take turns instead of losing an increment;
SQLite's write transaction is exclusive already.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store._db import upsert
from hub.store.tables import login_attempts

__all__ = ["AttemptCounter", "forget_attempt", "lock_counters", "prune_counters", "save_counters"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptCounter:
    """The stored state of one limited key."""

    attempts: int
    window_started_at: datetime
    locked_until: datetime | None = None
    lockouts: int = 0


async def lock_counters(
    connection: AsyncConnection, keys: Iterable[str], *, now: datetime
) -> dict[str, AttemptCounter]:
    """The counters of ``keys``, created empty where missing, locked until the transaction ends.

    Keys are locked in sorted order, so two transactions over the same keys cannot deadlock."""
    ordered = sorted(set(keys))
    dialect = connection.dialect.name
    for key in ordered:
        await connection.execute(
            upsert(
                dialect,
                login_attempts,
                {"key": key, "attempts": 0, "window_started_at": now, "locked_until": None, "lockouts": 0},
            ).on_conflict_do_nothing(index_elements=["key"])
        )
    rows = await connection.execute(
        select(login_attempts).where(login_attempts.c.key.in_(ordered)).order_by(login_attempts.c.key).with_for_update()
    )
    return {
        row.key: AttemptCounter(
            attempts=row.attempts,
            window_started_at=row.window_started_at,
            locked_until=row.locked_until,
            lockouts=row.lockouts,
        )
        for row in rows
    }


async def save_counters(connection: AsyncConnection, counters: Mapping[str, AttemptCounter]) -> None:
    for key, counter in sorted(counters.items()):
        await connection.execute(
            update(login_attempts)
            .where(login_attempts.c.key == key)
            .values(
                attempts=counter.attempts,
                window_started_at=counter.window_started_at,
                locked_until=counter.locked_until,
                lockouts=counter.lockouts,
            )
        )


async def forget_attempt(connection: AsyncConnection, key: str, *, reset: bool) -> None:
    """A login succeeded: ``reset`` clears the key (the login itself); otherwise the attempt is given back
    (the client address, which other agents behind the same address share)."""
    if reset:
        await connection.execute(delete(login_attempts).where(login_attempts.c.key == key))
        return
    await connection.execute(
        update(login_attempts)
        .where(login_attempts.c.key == key, login_attempts.c.attempts > 0)
        .values(attempts=login_attempts.c.attempts - 1)
    )


async def prune_counters(connection: AsyncConnection, *, window_before: datetime, unlocked_before: datetime) -> int:
    """Delete counters that no longer limit anything: their window ended and no lockout is near."""
    result = await connection.execute(
        delete(login_attempts).where(
            login_attempts.c.window_started_at < window_before,
            or_(
                login_attempts.c.locked_until.is_(None),
                and_(login_attempts.c.locked_until.is_not(None), login_attempts.c.locked_until < unlocked_before),
            ),
        )
    )
    return int(result.rowcount or 0)
