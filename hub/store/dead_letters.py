"""Dead letters: correctly signed webhook deliveries the hub can never use.

A provider retries anything but a 2xx (and Meta disables a webhook that keeps
failing), so such a delivery is answered 200 and kept here, raw, with the reason
it could not be used, for an admin to read (ADR 0024). Nothing else reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, or_, select

from hub.store._crud import aware_datetime, decode_cursor, encode_cursor
from hub.store._db import Store
from hub.store.tables import rejected_webhooks

__all__ = ["DeadLetter", "keep_dead_letter", "list_dead_letters"]

_REASON_LIMIT = 2000  # characters of the reason kept (the body is kept whole)
_CODE_LIMIT = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    id: int
    channel: str
    account_id: str | None
    received_at: datetime
    reason_code: str
    reason: str
    body: bytes


async def keep_dead_letter(
    store: Store,
    *,
    channel: str,
    account_id: str | None,
    received_at: datetime,
    reason_code: str,
    reason: str,
    body: bytes,
) -> int:
    """Store one rejected delivery durably; its id. Raises whatever the database raises (the caller
    then answers 5xx, so the provider delivers it again)."""
    values = {
        "channel": channel,
        "account_id": account_id,
        "received_at": received_at,
        "reason_code": reason_code[:_CODE_LIMIT],
        "reason": reason[:_REASON_LIMIT],
        "body": body,
    }
    async with store.write() as connection:
        result = await connection.execute(insert(rejected_webhooks).values(values).returning(rejected_webhooks.c.id))
        return int(result.scalar_one())


async def list_dead_letters(
    store: Store, *, after: str | None = None, limit: int = 50
) -> tuple[list[DeadLetter], str | None]:
    """One page, newest first (by received time, then id); the cursor of the next page or None.

    BadCursor when ``after`` is not a cursor this function handed out."""
    c = rejected_webhooks.c
    query = select(rejected_webhooks)
    if after:
        received_at, last_id = decode_cursor(after, aware_datetime, int)
        query = query.where(or_(c.received_at < received_at, and_(c.received_at == received_at, c.id < last_id)))
    query = query.order_by(c.received_at.desc(), c.id.desc()).limit(limit + 1)
    async with store.read() as connection:
        rows = (await connection.execute(query)).all()
    page = [
        DeadLetter(
            id=int(row.id),
            channel=row.channel,
            account_id=row.account_id,
            received_at=row.received_at,
            reason_code=row.reason_code,
            reason=row.reason,
            body=bytes(row.body),
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    cursor = encode_cursor(page[-1].received_at.isoformat(), page[-1].id) if more and page else None
    return page, cursor
