"""A conversation's history: messages and timeline events interleaved, newest page first.

When the conversation itself is exhausted the pages go on into the older
closed conversations of the same identity, or of any identity paired with the
same contact ("load older messages"). Paging is by keyset
``(conversation, created_at, kind rank, id)``, so a page costs the same at any depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Conversation, ConversationState
from hub.store._db import Store
from hub.store.media import attachments_by_message, render_attachments
from hub.store.tables import conversations, identities, messages, timeline_events

__all__ = ["HistoryCursor", "history_page", "message_view"]

_EVENT, _MESSAGE = 0, 1  # at the same instant an event (offered, accepted) sorts before a message


@dataclass(frozen=True, slots=True)
class HistoryCursor:
    """Everything older than this position; ``conversation_id`` is where paging continues."""

    conversation_id: int
    created_at: datetime
    rank: int
    id: int


def _message(row: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "id": int(row.id),
        "conversation_id": int(row.conversation_id),
        "direction": row.direction,
        "author": row.author,
        "agent_id": row.agent_id,
        "kind": row.kind,
        "text": row.text,
        "attachments": row.attachments or [],
        "location": row.location,
        "payload": row.payload,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
        "delivery_state": row.delivery_state,
        "error_code": row.error_code,
        "error_reason": row.error_reason,
        "template_name": row.template_name,
        "provider_message_id": row.provider_message_id,
        "reply_to": row.reply_to,
        "referral": _referral(row.extra),
        "forwarded": _forwarded(row.extra),
    }


def message_view(row: Any) -> dict[str, Any]:
    """A ``messages`` row as the history (and the outgoing webhooks) show it."""
    return _message(row)


def _referral(extra: dict[str, Any] | None) -> dict[str, str] | None:
    """The ad or link that brought the customer, from the provider facts kept with the message:
    ``referral_*`` (Meta) or ``Referral*`` (Twilio), as snake_case names without the prefix."""
    found = {}
    for key, value in (extra or {}).items():
        if key.startswith("referral_"):
            found[key.removeprefix("referral_")] = value
        elif key.startswith("Referral") and len(key) > len("Referral"):
            found[_snake(key.removeprefix("Referral"))] = value
    return found if set(found) - {"num_media"} else None  # Twilio sends ReferralNumMedia=0 with every message


def _forwarded(extra: dict[str, Any] | None) -> bool:
    facts = extra or {}
    return any(str(facts.get(key, "")).lower() == "true" for key in ("forwarded", "Forwarded"))


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _event(row: Any) -> dict[str, Any]:
    return {
        "type": "event",
        "id": int(row.id),
        "conversation_id": int(row.conversation_id),
        "kind": row.kind,
        "agent_id": row.agent_id,
        "data": row.data or {},
        "created_at": row.created_at,
    }


async def _page_of_one(
    connection: AsyncConnection, conversation_id: int, before: HistoryCursor | None, limit: int
) -> list[tuple[tuple[datetime, int, int], dict[str, Any]]]:
    m, e = messages.c, timeline_events.c
    mq = select(messages).where(m.conversation_id == conversation_id)
    eq = select(timeline_events).where(e.conversation_id == conversation_id)
    if before is not None:
        t, r, i = before.created_at, before.rank, before.id
        if r == _MESSAGE:
            mq = mq.where(or_(m.created_at < t, and_(m.created_at == t, m.id < i)))
            eq = eq.where(e.created_at <= t)
        else:
            mq = mq.where(m.created_at < t)
            eq = eq.where(or_(e.created_at < t, and_(e.created_at == t, e.id < i)))
    mq = mq.order_by(m.created_at.desc(), m.id.desc()).limit(limit)
    eq = eq.order_by(e.created_at.desc(), e.id.desc()).limit(limit)
    found = [((row.created_at, _MESSAGE, int(row.id)), _message(row)) for row in await connection.execute(mq)]
    found += [((row.created_at, _EVENT, int(row.id)), _event(row)) for row in await connection.execute(eq)]
    found.sort(key=lambda pair: pair[0], reverse=True)
    return found[:limit]


async def _older_related(connection: AsyncConnection, current: Conversation, after_id: int) -> int | None:
    """The next older closed conversation of the same identity or the same paired contact."""
    contact_id = (
        await connection.execute(select(identities.c.contact_id).where(identities.c.id == current.identity_id))
    ).scalar_one_or_none()
    identity_ids = select(identities.c.id).where(identities.c.id == current.identity_id)
    if contact_id is not None:
        identity_ids = select(identities.c.id).where(
            or_(identities.c.id == current.identity_id, identities.c.contact_id == contact_id)
        )
    anchor = (
        await connection.execute(
            select(conversations.c.opened_at, conversations.c.id).where(conversations.c.id == after_id)
        )
    ).first()
    if anchor is None:
        return None
    found = (
        await connection.execute(
            select(conversations.c.id)
            .where(
                conversations.c.identity_id.in_(identity_ids),
                conversations.c.state == ConversationState.CLOSED.value,
                conversations.c.id != current.id,
                tuple_(conversations.c.opened_at, conversations.c.id) < tuple_(anchor.opened_at, anchor.id),
            )
            .order_by(conversations.c.opened_at.desc(), conversations.c.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return None if found is None else int(found)


async def history_page(
    store: Store, current: Conversation, *, before: HistoryCursor | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], HistoryCursor | None]:
    """One page, oldest to newest within the page, and the cursor for the page before it (or None)."""
    conversation_id = before.conversation_id if before is not None else current.id
    position = before
    collected: list[tuple[tuple[datetime, int, int], dict[str, Any]]] = []
    async with store.read() as connection:
        while True:
            collected += await _page_of_one(connection, conversation_id, position, limit + 1 - len(collected))
            if len(collected) > limit:
                break
            older = await _older_related(connection, current, conversation_id)
            if older is None:
                break
            conversation_id, position = older, None
        page = collected[:limit]
        media = await attachments_by_message(connection, [int(i["id"]) for _, i in page if i["type"] == "message"])
    more = len(collected) > limit
    cursor = None
    if more and page:
        (created_at, rank, item_id), item = page[-1]
        cursor = HistoryCursor(int(item["conversation_id"]), created_at, rank, item_id)
    for _, item in page:
        if item["type"] == "message":
            item["attachments"] = render_attachments(item["attachments"], media.get(int(item["id"])))
    return [item for _, item in reversed(page)], cursor
