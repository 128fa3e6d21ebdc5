"""Outgoing webhooks in the database: subscriptions, deliveries written with their change, admin views.

``record_outgoing`` runs inside the write transaction of the change it reports (the ingest's group, a routing
change, a queued send, a delivery report, a contact's edit), so a delivery exists exactly when its change
committed. Deliveries of one subscription and ``order_key`` (a conversation's, a contact's) form a line that is
sent one at a time, in order: ``webhook_heads`` names the delivery at the front of each line (ADR 0035). This
module keeps it in the transactions that add to a line or replay one of its deliveries; the dispatcher's side
(leasing due heads, recording attempts, moving a finished head's line on, pruning) is
hub/store/webhooks_out_dispatch.py, and the HTTP side hub/webhooks_out.py.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store._db import Store, upsert
from hub.store.conversations import conversation_views
from hub.store.history import message_view
from hub.store.tables import (
    contacts,
    messages,
    webhook_attempts,
    webhook_deliveries,
    webhook_heads,
    webhook_subscriptions,
)
from hub.views import jsonable
from hub.webhooks_out_config import WebhookOut
from hub.webhooks_out_events import Outgoing, OutgoingSource, outgoing_of

__all__ = [
    "Attempt",
    "Delivery",
    "Subscription",
    "create_subscription",
    "delete_subscription",
    "get_subscription",
    "has_subscriptions",
    "hears_of",
    "insert_deliveries",
    "list_deliveries",
    "list_subscriptions",
    "record_outgoing",
    "replay_delivery",
    "resume_subscription",
    "seed_subscriptions",
    "update_subscription",
]

logger = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
S, D, H = webhook_subscriptions.c, webhook_deliveries.c, webhook_heads.c


# ------------------------------------------------------------------ shapes


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """An integration as admins see it (the secret is never shown back)."""

    id: str
    url: str
    events: tuple[str, ...]
    queues: tuple[str, ...] | None
    source: str
    pause_after: int
    consecutive_failures: int
    paused_at: datetime | None
    paused_reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One delivery with its attempts, newest attempt last."""

    id: int
    subscription_id: str
    event_type: str
    conversation_id: int | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    payload: dict[str, Any]
    history: tuple[Attempt, ...] = ()


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        events=tuple(row.events or ()),
        queues=tuple(row.queues) if row.queues is not None else None,
        source=row.source,
        pause_after=int(row.pause_after),
        consecutive_failures=int(row.consecutive_failures),
        paused_at=row.paused_at,
        paused_reason=row.paused_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# ------------------------------------------------------------------ subscriptions


async def seed_subscriptions(store: Store, hooks: Sequence[WebhookOut], *, now: datetime) -> None:
    """Make the configured integrations true: add or update each (its pause state kept), and drop the
    configured ones the configuration no longer names (admin-created ones stay)."""
    async with store.write() as connection:
        known = {r.id: r.source for r in await connection.execute(select(S.id, S.source))}
        for hook in hooks:
            values = {
                "url": hook.url,
                "secret": hook.secret,
                "events": list(hook.events),
                "queues": list(hook.queues) if hook.queues is not None else None,
                "pause_after": hook.pause_after,
                "source": "config",
                "updated_at": now,
            }
            if hook.id in known:
                await connection.execute(update(webhook_subscriptions).where(S.id == hook.id).values(**values))
            else:
                await connection.execute(insert(webhook_subscriptions).values(id=hook.id, created_at=now, **values))
        gone = [i for i, source in known.items() if source == "config" and i not in {h.id for h in hooks}]
        if gone:
            await connection.execute(delete(webhook_subscriptions).where(S.id.in_(gone)))
    _forget_heard(store)


async def list_subscriptions(store: Store) -> list[Subscription]:
    async with store.read() as connection:
        rows = await connection.execute(select(webhook_subscriptions).order_by(S.id))
        return [_subscription(r) for r in rows]


async def get_subscription(store: Store, subscription_id: str) -> Subscription | None:
    async with store.read() as connection:
        row = (await connection.execute(select(webhook_subscriptions).where(S.id == subscription_id))).first()
    return _subscription(row) if row is not None else None


async def create_subscription(store: Store, hook: WebhookOut, *, now: datetime) -> Subscription | None:
    """A new admin-created integration; None when the id is taken."""
    async with store.write() as connection:
        if (await connection.execute(select(S.id).where(S.id == hook.id))).first() is not None:
            return None
        await connection.execute(
            insert(webhook_subscriptions).values(
                id=hook.id,
                url=hook.url,
                secret=hook.secret,
                events=list(hook.events),
                queues=list(hook.queues) if hook.queues is not None else None,
                pause_after=hook.pause_after,
                source="admin",
                consecutive_failures=0,
                created_at=now,
                updated_at=now,
            )
        )
        row = (await connection.execute(select(webhook_subscriptions).where(S.id == hook.id))).one()
    _forget_heard(store)
    return _subscription(row)


async def update_subscription(
    store: Store, subscription_id: str, fields: Mapping[str, Any], *, now: datetime
) -> Subscription | None:
    """Change the given fields (url, secret, events, queues, pause_after); None when there is no such one."""
    values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}
    async with store.write() as connection:
        result = await connection.execute(
            update(webhook_subscriptions).where(S.id == subscription_id).values(**values, updated_at=now)
        )
        if result.rowcount != 1:
            return None
        row = (await connection.execute(select(webhook_subscriptions).where(S.id == subscription_id))).one()
    _forget_heard(store)
    return _subscription(row)


async def delete_subscription(store: Store, subscription_id: str) -> bool:
    """Remove an integration with its deliveries."""
    async with store.write() as connection:
        await connection.execute(
            delete(webhook_attempts).where(
                webhook_attempts.c.delivery_id.in_(select(D.id).where(D.subscription_id == subscription_id))
            )
        )
        await connection.execute(delete(webhook_heads).where(H.subscription_id == subscription_id))
        await connection.execute(delete(webhook_deliveries).where(D.subscription_id == subscription_id))
        result = await connection.execute(delete(webhook_subscriptions).where(S.id == subscription_id))
    _forget_heard(store)
    return bool(result.rowcount)


async def resume_subscription(store: Store, subscription_id: str, *, now: datetime) -> Subscription | None:
    """Deliver again to a paused integration: its failure count starts over and what waits is due now."""
    async with store.write() as connection:
        result = await connection.execute(
            update(webhook_subscriptions)
            .where(S.id == subscription_id)
            .values(paused_at=None, paused_reason=None, consecutive_failures=0, updated_at=now)
        )
        if result.rowcount != 1:
            return None
        await connection.execute(
            update(webhook_deliveries)
            .where(D.subscription_id == subscription_id, D.status == PENDING)
            .values(next_attempt_at=now)
        )
        row = (await connection.execute(select(webhook_subscriptions).where(S.id == subscription_id))).one()
    return _subscription(row)


async def has_subscriptions(store: Store) -> bool:
    """Whether any outgoing webhook subscription exists (paused ones included: they are resumed in place)."""
    async with store.read() as connection:
        return (await connection.execute(select(S.id).limit(1))).first() is not None


# ------------------------------------------------------------------ recording

_HEARD_FOR = 2.0  # seconds a process trusts what it read of the subscribed event types
_heard: weakref.WeakKeyDictionary[Store, tuple[float, frozenset[str]]] = weakref.WeakKeyDictionary()


async def hears_of(store: Store, event_type: str) -> bool:
    """Whether any subscription hears of ``event_type`` (read at most every two seconds per store).

    For the outbox's one-statement acceptance (PostgreSQL), which it may use only when nobody needs a
    delivery written in the same transaction.
    """
    now = time.monotonic()
    known = _heard.get(store)
    if known is None or known[0] < now:
        async with store.read() as connection:
            rows = await connection.execute(select(S.events))
            types = frozenset(t for events in rows.scalars() for t in (events or ()))
        known = (now + _HEARD_FOR, types)
        _heard[store] = known
    return event_type in known[1]


def _forget_heard(store: Store) -> None:
    _heard.pop(store, None)


async def record_outgoing(
    connection: AsyncConnection,
    sources: Sequence[OutgoingSource],
    *,
    now: datetime,
    new_conversations: Collection[int] = (),
) -> int:
    """Write a delivery per event and subscription that hears of it, in the caller's transaction.

    ``new_conversations``: conversations the caller just opened (their ``ConversationWaiting`` is "opened").
    A subscription scoped to queues hears only of conversations in those queues, and of no contact.
    Returns how many deliveries were written.
    """
    if not sources:
        return 0
    wanted = [o for o in (outgoing_of(s, new_conversation=_is_new(s, new_conversations)) for s in sources) if o]
    if not wanted:
        return 0
    subscriptions = (await connection.execute(select(S.id, S.events, S.queues))).all()
    interested = [(s, o) for o in wanted for s in subscriptions if o.type in (s.events or ())]
    if not interested:
        return 0
    conversations = await _conversations(connection, {o.conversation_id for _, o in interested})
    message_ids = {o.message_id for _, o in interested if o.message_id is not None}
    message_rows = await _messages(connection, message_ids)
    contact_rows = await _contacts(connection, {o.contact_id for _, o in interested if o.contact_id is not None})
    rows = []
    for subscription, outgoing in interested:
        data = _data(outgoing, conversations, message_rows, contact_rows)
        if data is None or not _in_scope(subscription.queues, outgoing, conversations):
            continue
        rows.append(
            {
                "subscription_id": subscription.id,
                "event_type": outgoing.type,
                "order_key": outgoing.order_key,
                "conversation_id": outgoing.conversation_id,
                "payload": {"type": outgoing.type, "timestamp": now.isoformat(), "data": data},
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    return await insert_deliveries(connection, rows)


async def insert_deliveries(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Write pending deliveries (full ``webhook_deliveries`` rows without ids) in the caller's transaction, and
    make the first of each line the head of its line unless the line already has one. Returns how many."""
    if not rows:
        return 0
    written = await connection.execute(insert(webhook_deliveries).returning(D.id, D.subscription_id, D.order_key), rows)
    firsts: dict[tuple[str, str], int] = {}
    for r in written:
        line = (r.subscription_id, r.order_key)
        firsts[line] = min(firsts.get(line, r.id), r.id)
    await _join_lines(connection, firsts)
    return len(rows)


async def _join_lines(connection: AsyncConnection, firsts: Mapping[tuple[str, str], int]) -> None:
    """Each delivery becomes the head of its line when the line has none. A line that has one keeps it, and
    the upsert's (unchanged) update locks that head's row until this transaction ends: a dispatcher moving the
    line on waits for it and then sees this transaction's delivery (PostgreSQL; ``_advance``,
    hub/store/webhooks_out_dispatch.py). Lines in key order, so two writers lock in the same order."""
    statement = _head_upsert(connection, lambda _proposed: H.delivery_id)
    heads = [{"subscription_id": s, "order_key": k, "delivery_id": i} for (s, k), i in sorted(firsts.items())]
    await connection.execute(statement, heads)


def _head_upsert(connection: AsyncConnection, head: Callable[[Any], Any]) -> Any:
    """Insert a line's head; a line that has one sets it to ``head(the proposed delivery id)``."""
    statement = upsert(connection.dialect.name, webhook_heads)
    return statement.on_conflict_do_update(
        index_elements=[H.subscription_id, H.order_key], set_={"delivery_id": head(statement.excluded.delivery_id)}
    )


def _is_new(source: OutgoingSource, new_conversations: Collection[int]) -> bool:
    return source.conversation_id is not None and source.conversation_id in new_conversations


def _in_scope(queues: Any, outgoing: Outgoing, conversations: Mapping[int, dict[str, Any]]) -> bool:
    if queues is None:
        return True
    if outgoing.conversation_id is None:
        return False  # a contact belongs to no queue: scoped integrations never hear of contacts
    view = conversations.get(outgoing.conversation_id)
    return view is not None and view.get("queue") in queues


def _data(
    outgoing: Outgoing,
    conversations: Mapping[int, dict[str, Any]],
    message_rows: Mapping[int, dict[str, Any]],
    contact_rows: Mapping[int, dict[str, Any]],
) -> dict[str, Any] | None:
    data: dict[str, Any] = {}
    if outgoing.conversation_id is not None:
        view = conversations.get(outgoing.conversation_id)
        if view is None:
            return None
        data["conversation"] = view
    if outgoing.message_id is not None:
        message = message_rows.get(outgoing.message_id)
        if message is None:
            return None
        data["message"] = message
    if outgoing.contact_id is not None:
        contact = contact_rows.get(outgoing.contact_id)
        if contact is None:
            return None
        data["contact"] = contact
    data.update(jsonable(outgoing.extra or {}))
    return data


async def _conversations(connection: AsyncConnection, ids: set[int | None]) -> dict[int, dict[str, Any]]:
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return {}
    views = await conversation_views(connection, wanted)
    return {i: jsonable(v) for i, v in views.items()}


async def _messages(connection: AsyncConnection, ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = await connection.execute(select(messages).where(messages.c.id.in_(sorted(ids))))
    return {int(r.id): jsonable(message_view(r)) for r in rows}


async def _contacts(connection: AsyncConnection, ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    c = contacts.c
    rows = await connection.execute(
        select(c.id, c.name, c.company, c.phone, c.email, c.notes, c.time_zone).where(c.id.in_(sorted(ids)))
    )
    return {int(r.id): dict(r._mapping) for r in rows}


# ------------------------------------------------------------------ admin views


async def list_deliveries(
    store: Store, subscription_id: str, *, before: int | None, limit: int
) -> tuple[list[Delivery], int | None]:
    """Newest first, with their attempts; the cursor for the next (older) page, or None at the end."""
    query = select(webhook_deliveries).where(D.subscription_id == subscription_id)
    if before is not None:
        query = query.where(D.id < before)
    async with store.read() as connection:
        rows = list(await connection.execute(query.order_by(D.id.desc()).limit(limit + 1)))
        page = rows[:limit]
        ids = [int(r.id) for r in page]
        attempts = await _attempts(connection, ids)
    deliveries = [_delivery(r, attempts.get(int(r.id), [])) for r in page]
    return deliveries, (ids[-1] if len(rows) > limit else None)


async def _attempts(connection: AsyncConnection, ids: list[int]) -> dict[int, list[Attempt]]:
    """Each delivery's attempts, oldest first."""
    attempts: dict[int, list[Attempt]] = {i: [] for i in ids}
    if ids:
        a = webhook_attempts.c
        for r in await connection.execute(
            select(webhook_attempts).where(a.delivery_id.in_(ids)).order_by(a.delivery_id, a.id)
        ):
            attempts[int(r.delivery_id)].append(
                Attempt(
                    attempted_at=r.attempted_at,
                    status_code=r.status_code,
                    error=r.error,
                    duration_ms=int(r.duration_ms),
                )
            )
    return attempts


def _delivery(row: Any, history: list[Attempt]) -> Delivery:
    return Delivery(
        id=int(row.id),
        subscription_id=row.subscription_id,
        event_type=row.event_type,
        conversation_id=row.conversation_id,
        status=row.status,
        attempts=int(row.attempts),
        next_attempt_at=row.next_attempt_at if row.status == PENDING else None,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
        payload=row.payload,
        history=tuple(history),
    )


async def replay_delivery(store: Store, subscription_id: str, delivery_id: int, *, now: datetime) -> Delivery | None:
    """Send a delivery again (same id and body, so receivers can tell it is the same event): pending, due now.
    None when the subscription has no such delivery."""
    here = and_(D.id == delivery_id, D.subscription_id == subscription_id)
    async with store.write() as connection:
        status = (await connection.execute(select(D.status).where(here))).scalar_one_or_none()
        if status is None:
            return None
        if status == PENDING:  # it may be in flight: only brought forward, its lease left alone
            await connection.execute(update(webhook_deliveries).where(here).values(next_attempt_at=now))
        else:
            await connection.execute(
                update(webhook_deliveries)
                .where(here)
                .values(status=PENDING, next_attempt_at=now, leased_until=None, lease_owner=None, delivered_at=None)
            )
        row = (await connection.execute(select(webhook_deliveries).where(D.id == delivery_id))).first()
        if row is None:  # pruned since its status was read (the retention sweep)
            return None
        if status != PENDING:
            await _rejoin_line(connection, row.subscription_id, row.order_key, int(row.id))
        attempts = await _attempts(connection, [delivery_id])
    return _delivery(row, attempts[delivery_id])


async def _rejoin_line(connection: AsyncConnection, subscription_id: str, order_key: str, delivery_id: int) -> None:
    """A replayed delivery goes back to its place in its line: the head when the line is empty or its
    head came later (the later ones wait for it, as they did the first time)."""
    statement = _head_upsert(
        connection, lambda proposed: case((proposed < H.delivery_id, proposed), else_=H.delivery_id)
    )
    await connection.execute(
        statement, {"subscription_id": subscription_id, "order_key": order_key, "delivery_id": delivery_id}
    )
