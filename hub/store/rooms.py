"""Co-browsing rooms: one row per room (its conversation, its agent, the hash of the customer's token,
when its links stop working). The token itself is never stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hub.store._db import Store
from hub.store.tables import rooms

__all__ = ["StoredRoom", "create_room", "get_room"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredRoom:
    id: str
    conversation_id: int
    agent_id: int
    customer_token_hash: str
    created_at: datetime
    expires_at: datetime


async def create_room(store: Store, room: StoredRoom) -> None:
    async with store.write() as connection:
        await connection.execute(
            rooms.insert().values(
                id=room.id,
                conversation_id=room.conversation_id,
                agent_id=room.agent_id,
                customer_token_hash=room.customer_token_hash,
                created_at=room.created_at,
                expires_at=room.expires_at,
            )
        )


async def get_room(store: Store, room_id: str) -> StoredRoom | None:
    async with store.read() as connection:
        row = (await connection.execute(select(rooms).where(rooms.c.id == room_id))).mappings().first()
    if row is None:
        return None
    return StoredRoom(
        id=row["id"],
        conversation_id=int(row["conversation_id"]),
        agent_id=int(row["agent_id"]),
        customer_token_hash=row["customer_token_hash"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )
