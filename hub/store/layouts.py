"""Each agent's side-panel layout: which widgets their conversation screen shows, in order (ADR 0030).

One row per agent who saved one; no row means the console's default layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from hub.store._db import Store, upsert
from hub.store.tables import agent_layouts

__all__ = ["SavedLayout", "forget_layout", "load_layout", "save_layout"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedLayout:
    widgets: tuple[str, ...]
    updated_at: datetime


async def load_layout(store: Store, agent_id: int) -> SavedLayout | None:
    """The agent's saved layout, or None when they never saved one."""
    async with store.read() as connection:
        row = (
            await connection.execute(
                select(agent_layouts.c.widgets, agent_layouts.c.updated_at).where(agent_layouts.c.agent_id == agent_id)
            )
        ).first()
    if row is None:
        return None
    return SavedLayout(widgets=tuple(str(w) for w in row.widgets), updated_at=row.updated_at)


async def save_layout(store: Store, agent_id: int, widgets: Sequence[str], now: datetime) -> SavedLayout:
    """Replace the agent's layout (one upsert: the last save wins)."""
    values = {"agent_id": agent_id, "widgets": list(widgets), "updated_at": now}
    async with store.write() as connection:
        await connection.execute(
            upsert(store.dialect, agent_layouts, values).on_conflict_do_update(
                index_elements=["agent_id"], set_={"widgets": list(widgets), "updated_at": now}
            )
        )
    return SavedLayout(widgets=tuple(widgets), updated_at=now)


async def forget_layout(store: Store, agent_id: int) -> None:
    """Delete the agent's saved layout: the console shows its default again."""
    async with store.write() as connection:
        await connection.execute(delete(agent_layouts).where(agent_layouts.c.agent_id == agent_id))
