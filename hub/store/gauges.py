"""Reads for the gauges of ``/metrics`` (hub/metrics.py): small grouped counts, taken at scrape time."""

from __future__ import annotations

from sqlalchemy import func, select

from hub.store._db import Store
from hub.store.tables import agents

__all__ = ["presence_counts"]


async def presence_counts(store: Store) -> dict[str, int]:
    """Active agents per presence state (``ready``, ``paused``, ``offline``)."""
    query = select(agents.c.presence, func.count()).where(agents.c.active.is_(True)).group_by(agents.c.presence)
    async with store.read() as connection:
        return {str(presence): int(count) for presence, count in (await connection.execute(query)).all()}
