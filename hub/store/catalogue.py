"""Queues and statuses: the configuration file seeds the tables, the API edits them.

Seeding inserts what is missing and leaves existing rows alone, so a change
made through the API survives a restart; the file is the starting point, not
the source of truth once the hub has run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Queue, Status
from hub.store._db import Store, upsert
from hub.store.tables import queues, statuses

__all__ = ["load_queue", "load_queues", "seed_catalogue"]


async def seed_catalogue(store: Store, queue_list: Sequence[Queue], status_list: Sequence[Status]) -> None:
    async with store.write() as connection:
        for status in status_list:
            await connection.execute(
                upsert(store.dialect, statuses, {"id": status.id, "name": status.name}).on_conflict_do_nothing(
                    index_elements=["id"]
                )
            )
        for queue in queue_list:
            values = {
                "id": queue.id,
                "name": queue.name,
                "number": queue.number,
                "offer_timeout": queue.offer_timeout,
                "url_template": queue.url_template,
                "statuses": list(queue.statuses),
                "transfer_back": queue.transfer_back,
            }
            await connection.execute(
                upsert(store.dialect, queues, values).on_conflict_do_nothing(index_elements=["id"])
            )


def _queue(row: Any) -> Queue:
    return Queue(
        id=row.id,
        name=row.name,
        number=int(row.number),
        offer_timeout=int(row.offer_timeout),
        statuses=tuple(row.statuses or ()),
        url_template=row.url_template,
        transfer_back=bool(row.transfer_back),
    )


async def load_queue(connection: AsyncConnection, queue_id: str) -> Queue | None:
    row = (await connection.execute(select(queues).where(queues.c.id == queue_id))).first()
    return None if row is None else _queue(row)


_ALL_QUEUES = select(queues)  # built once: every conversation view reads it


async def load_queues(connection: AsyncConnection) -> dict[str, Queue]:
    return {row.id: _queue(row) for row in await connection.execute(_ALL_QUEUES)}
