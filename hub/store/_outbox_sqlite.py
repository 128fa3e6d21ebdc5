"""The outbox's hot statements on SQLite (``OutboxWriter``).

Statements are built once: building them and their cache keys on every call cost more CPU than running
them. Lists of ids go as one JSON array (``in_json_array``), so a statement's text never changes with their
number; acceptances are two ``executemany`` calls of statements compiled once (``PerRow``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Channel
from hub.store._db import in_json_array
from hub.store._outbox_rows import (
    CLAIMED,
    JOB_COLUMNS,
    Accepted,
    NewOutbound,
    OutboxJob,
    OutboxState,
    claim_heads,
    due,
    is_head,
    job,
    message_values,
    now_sent,
    outbox_values,
    unfinished,
)
from hub.store._per_row import PerRow
from hub.store.tables import UTCDateTime, conversations, identities, messages, outbox, pending_receipts

__all__ = ["SqliteOutbox"]

# the claim: the heads; their conversations' unfinished rows, each with whether it is due; the update that
# takes the followers; the load
_CLAIM_HEADS = claim_heads(skip_locked=False)
_BEHIND = (
    select(outbox.c.id, outbox.c.conversation_id, due(outbox).label("due"))
    .where(in_json_array(outbox.c.conversation_id, "follow_conversations"), unfinished(outbox))
    .order_by(outbox.c.conversation_id, outbox.c.id)
)
_TAKE = update(outbox).where(in_json_array(outbox.c.id, "follow_ids")).values(CLAIMED)
_LOAD = (
    select(outbox.c.id, outbox.c.attempts, *JOB_COLUMNS)
    .join(messages, messages.c.id == outbox.c.message_id)
    .join(identities, identities.c.id == messages.c.identity_id)
    .where(in_json_array(outbox.c.id, "claim_ids"))
    .order_by(outbox.c.id)
)

# handing just-queued rows to a sender: those of them that are heads, claimed (then loaded with ``_LOAD``)
_HAND = update(outbox).where(in_json_array(outbox.c.id, "hand_ids"), is_head()).values(CLAIMED).returning(outbox.c.id)

# queueing replies: the messages and their outbox rows (``executemany``), the conversations' last activity
_INSERT_MESSAGES = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)
_INSERT_OUTBOX = insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True)
_TOUCH = (
    update(conversations)
    .where(in_json_array(conversations.c.id, "touch_ids"))
    .values(last_message_at=bindparam("touch_at", type_=UTCDateTime()))
)

_ACCEPTED_AT = bindparam("a_at", type_=UTCDateTime())
_ACCEPT_MESSAGE = PerRow(
    update(messages)
    .where(messages.c.id == bindparam("a_id"))
    .values(provider_message_id=bindparam("a_pid"), sent_at=_ACCEPTED_AT, **now_sent(_ACCEPTED_AT)),
    ("a_id", "a_pid", "a_at"),
)
_OUTBOX_DONE = PerRow(
    update(outbox)
    .where(outbox.c.id == bindparam("done_id"))
    .values(state=OutboxState.DONE, locked_until=None, last_error=None),
    ("done_id",),
)
# the early receipts waiting for some accounts' provider ids
_PENDING_FOR = select(pending_receipts).where(
    in_json_array(pending_receipts.c.account_id, "pending_accounts"),
    in_json_array(pending_receipts.c.provider_message_id, "pending_ids"),
)


class SqliteOutbox:
    """``OutboxWriter`` on SQLite: a few statements compiled once, each one call into SQLite."""

    accepts_alone: ClassVar[bool] = False  # one writer at a time anyway: nothing to save

    async def insert_replies(
        self, connection: AsyncConnection, sends: Sequence[NewOutbound], now: datetime
    ) -> tuple[list[int], list[int]]:
        message_ids = [
            int(i)
            for i in (
                await connection.execute(
                    _INSERT_MESSAGES,
                    [message_values(send, int(send.conversation_id or 0), now) for send in sends],
                )
            ).scalars()
        ]
        outbox_ids = [
            int(i)
            for i in (
                await connection.execute(
                    _INSERT_OUTBOX,
                    [
                        outbox_values(send, message_id, int(send.conversation_id or 0), now)
                        for send, message_id in zip(sends, message_ids, strict=True)
                    ],
                )
            ).scalars()
        ]
        touched = sorted({int(send.conversation_id or 0) for send in sends})
        await connection.execute(_TOUCH, {"touch_ids": touched, "touch_at": now})
        return message_ids, outbox_ids

    async def claim(
        self,
        connection: AsyncConnection,
        *,
        now: datetime,
        worker: str,
        lease: timedelta,
        limit: int,
        follow: int,
    ) -> list[OutboxJob]:
        parameters = {"claim_now": now, "claim_until": now + lease, "claim_worker": worker, "claim_limit": limit}
        heads = (await connection.execute(_CLAIM_HEADS, parameters)).all()
        if not heads:
            return []
        ids = [int(outbox_id) for outbox_id, _ in heads]
        if follow:
            conversations = sorted({int(conversation_id) for _, conversation_id in heads})
            rows = (await connection.execute(_BEHIND, {"claim_now": now, "follow_conversations": conversations})).all()
            followers = _followers(rows, set(ids), follow)
            if followers:
                await connection.execute(
                    _TAKE, {"follow_ids": followers, "claim_until": now + lease, "claim_worker": worker}
                )
                ids += followers
        return [job(row) for row in (await connection.execute(_LOAD, {"claim_ids": ids})).all()]

    async def claim_queued(
        self, connection: AsyncConnection, outbox_ids: Sequence[int], *, now: datetime, worker: str, lease: timedelta
    ) -> list[OutboxJob]:
        if not outbox_ids:
            return []
        handed = await connection.execute(
            _HAND, {"hand_ids": list(outbox_ids), "claim_until": now + lease, "claim_worker": worker}
        )
        ids = sorted(int(outbox_id) for outbox_id in handed.scalars())
        if not ids:
            return []
        return [job(row) for row in (await connection.execute(_LOAD, {"claim_ids": ids})).all()]

    async def accept(
        self, connection: AsyncConnection, items: Sequence[Accepted], channels: Mapping[str, Channel]
    ) -> list[Any]:
        await _ACCEPT_MESSAGE.run(connection, [(i.job.message_id, i.provider_message_id, i.accepted_at) for i in items])
        await _OUTBOX_DONE.run(connection, [(i.job.id,) for i in items])
        if not items:
            return []
        pending = await connection.execute(
            _PENDING_FOR, {"pending_accounts": sorted(channels), "pending_ids": [i.provider_message_id for i in items]}
        )
        return list(pending.all())


def _followers(rows: Sequence[Any], heads: set[int], follow: int) -> list[int]:
    """Of each conversation's unfinished rows behind its head (in order), the leading ones that are due
    now, at most ``follow``: the run stops at the first row that is not, so it has no gap. ``rows`` hold the
    heads too."""
    taken: list[int] = []
    conversation, count, stopped = None, 0, False
    for row in rows:
        if row.id in heads:
            continue
        if row.conversation_id != conversation:
            conversation, count, stopped = row.conversation_id, 0, False
        if stopped or count >= follow:
            continue
        if not row.due:
            stopped = True
            continue
        taken.append(int(row.id))
        count += 1
    return taken
