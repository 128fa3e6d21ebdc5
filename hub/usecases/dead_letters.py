"""Webhook deliveries that were correctly signed but can never be used (dead letters, ADR 0024), as admins
read them. The webhook routes keep them; nothing here changes one."""

from __future__ import annotations

from hub.store.dead_letters import DeadLetter, list_dead_letters
from hub.usecases._parts import HubParts
from hub.usecases._store_refusals import store_refusals

__all__ = ["DeadLetter", "rejected_deliveries"]


async def rejected_deliveries(hub: HubParts, *, after: str | None, limit: int) -> tuple[list[DeadLetter], str | None]:
    """One page of dead letters, newest first, and the next page's cursor."""
    with store_refusals():
        return await list_dead_letters(hub.store, after=after, limit=limit)
