"""Reading conversations and who takes part in them (the API's access checks and views)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Agent, Channel, Conversation, ConversationState, Queue
from hub.routing import open_url
from hub.store._db import Store
from hub.store.catalogue import load_queues
from hub.store.tables import bot_conversations, contacts, conversations, identities, participants

__all__ = [
    "ConversationAccess",
    "conversation_from_row",
    "conversation_view",
    "conversation_views",
    "get_conversation",
    "list_conversations",
    "load_conversation",
    "load_former_participants",
    "load_participants",
    "view_query",
    "views_of_rows",
    "waiting_lists",
]


def conversation_from_row(row: Any) -> Conversation:
    return Conversation(
        id=int(row.id),
        account_id=row.account_id,
        channel=Channel(row.channel),
        identity_id=int(row.identity_id),
        queue_id=row.queue_id,
        state=ConversationState(row.state),
        waiting_since=row.waiting_since,
        opened_at=row.opened_at,
        owner_agent_id=row.owner_agent_id,
        offered_agent_id=row.offered_agent_id,
        offer_deadline=row.offer_deadline,
        offered_at=row.offered_at,
        important=bool(row.important),
        status_id=row.status_id,
        ticket_id=row.ticket_id,
        closed_at=row.closed_at,
        last_message_at=row.last_message_at,
    )


async def load_conversation(connection: AsyncConnection, conversation_id: int) -> Conversation | None:
    row = (await connection.execute(select(conversations).where(conversations.c.id == conversation_id))).first()
    return None if row is None else conversation_from_row(row)


async def load_participants(connection: AsyncConnection, conversation_id: int) -> dict[int, str]:
    """agent id -> role (owner | invited) of everyone currently in the conversation."""
    rows = await connection.execute(
        select(participants.c.agent_id, participants.c.role).where(
            participants.c.conversation_id == conversation_id, participants.c.left_at.is_(None)
        )
    )
    return {int(r.agent_id): str(r.role) for r in rows}


async def load_former_participants(connection: AsyncConnection, conversation_id: int) -> set[int]:
    """Agents who took part and left (they may still read the history)."""
    rows = await connection.execute(
        select(participants.c.agent_id).where(
            participants.c.conversation_id == conversation_id, participants.c.left_at.is_not(None)
        )
    )
    return {int(r) for r in rows.scalars()}


class ConversationAccess(NamedTuple):
    conversation: Conversation
    participants: dict[int, str]  # current: agent id -> owner | invited
    former: set[int]  # agents who took part earlier


async def get_conversation(store: Store, conversation_id: int) -> ConversationAccess | None:
    """The conversation and who takes (or took) part in it, or None."""
    async with store.read() as connection:
        conversation = await load_conversation(connection, conversation_id)
        if conversation is None:
            return None
        current = await load_participants(connection, conversation_id)
        former = await load_former_participants(connection, conversation_id)
        return ConversationAccess(conversation, current, former - set(current))


# ------------------------------------------------------------------- views


def _view(row: Any, people: list[dict[str, Any]], queue: Queue | None) -> dict[str, Any]:
    """A conversation as the API shows it (datetimes stay datetimes; the API formats them)."""
    contact = None
    if row.contact_id is not None:
        contact = {"id": int(row.contact_id), "name": row.contact_name, "company": row.contact_company}
    return {
        "id": int(row.id),
        "state": row.state,
        "queue": row.queue_id,
        "queue_name": queue.name if queue else row.queue_id,
        "queue_number": queue.number if queue else None,
        "channel": row.channel,
        "account": row.account_id,
        "identity": {
            "id": int(row.identity_id),
            "external_id": row.external_id,
            "display_name": row.display_name,
            "avatar_url": row.avatar_url,
            "phone": row.phone,
            "contact_id": int(row.contact_id) if row.contact_id is not None else None,
        },
        "contact": contact,
        "waiting_since": row.waiting_since,
        "opened_at": row.opened_at,
        "closed_at": row.closed_at,
        "last_message_at": row.last_message_at,
        "important": bool(row.important),
        "status": row.status_id,
        "ticket_id": row.ticket_id,
        "owner": row.owner_agent_id,
        "offered_to": row.offered_agent_id,
        "offered_at": row.offered_at,
        "offer_deadline": row.offer_deadline,
        "participants": people,
        "open_url": open_url(queue, _url_fields(row)) if queue else None,
        **_bot_fields(row),
    }


def _bot_fields(row: Any) -> dict[str, Any]:
    """The bot's part (ADR 0028): which bot has or had it, and why it handed the conversation over."""
    handoff = None
    if row.handoff_reason is not None:
        handoff = {"reason": row.handoff_reason, "note": row.handoff_note, "at": row.handed_off_at}
    variables = {k: v for k, v in (row.bot_variables or {}).items() if not k.startswith("_")}
    return {"bot": row.bot_id, "handoff": handoff, "variables": variables}


def _url_fields(row: Any) -> dict[str, Any]:
    return {
        "conversation_id": row.id,
        "identity_id": row.identity_id,
        "external_id": row.external_id,
        "channel": row.channel,
        "account_id": row.account_id,
        "queue_id": row.queue_id,
        "contact_id": row.contact_id,
        "display_name": row.display_name,
        "phone": row.phone,
    }


def view_query() -> Any:
    """The SELECT of a conversation as the API shows it (identity, contact, bot columns); add its WHERE."""
    return (
        select(
            conversations,
            identities.c.external_id,
            identities.c.display_name,
            identities.c.avatar_url,
            identities.c.phone,
            identities.c.contact_id,
            contacts.c.name.label("contact_name"),
            contacts.c.company.label("contact_company"),
            bot_conversations.c.bot_id,
            bot_conversations.c.handoff_reason,
            bot_conversations.c.handoff_note,
            bot_conversations.c.handed_off_at,
            bot_conversations.c.variables.label("bot_variables"),
        )
        .join(identities, identities.c.id == conversations.c.identity_id)
        .outerjoin(contacts, contacts.c.id == identities.c.contact_id)
        .outerjoin(bot_conversations, bot_conversations.c.conversation_id == conversations.c.id)
    )


def _participants_of(where: Any) -> Any:
    """The participants a view shows: those in it now and those who closed their part (ADR 0030)."""
    p = participants.c
    return (
        select(p.conversation_id, p.agent_id, p.role, p.joined_at, p.left_at, p.status_id)
        .where(where, or_(p.left_at.is_(None), p.status_id.is_not(None)))
        .order_by(p.joined_at, p.agent_id)
    )


# one conversation's, built once: the view of a single conversation is read on every bot turn and console open
_PARTICIPANTS_OF_ONE = _participants_of(participants.c.conversation_id == bindparam("view_conversation_id"))


async def views_of_rows(connection: AsyncConnection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows of ``view_query()`` as the API shows them, with their participants and queues, in two reads."""
    ids = [int(r.id) for r in rows]
    people: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    closed_parts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        if len(ids) == 1:
            found = await connection.execute(_PARTICIPANTS_OF_ONE, {"view_conversation_id": ids[0]})
        else:
            found = await connection.execute(_participants_of(participants.c.conversation_id.in_(ids)))
        for part in found:
            if part.left_at is None:
                people[int(part.conversation_id)].append(
                    {"agent_id": int(part.agent_id), "role": part.role, "joined_at": part.joined_at}
                )
            else:  # someone who closed their part while colleagues went on (ADR 0030)
                closed_parts[int(part.conversation_id)].append(
                    {"agent_id": int(part.agent_id), "status": part.status_id, "closed_at": part.left_at}
                )
    queues = await load_queues(connection)
    views = []
    for r in rows:
        view = _view(r, people[int(r.id)], queues.get(r.queue_id))
        view["closed_parts"] = closed_parts[int(r.id)]
        views.append(view)
    return views


async def conversation_views(connection: AsyncConnection, conversation_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Several conversations as the API shows them, in one round of queries."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    rows = (await connection.execute(view_query().where(conversations.c.id.in_(ids)))).all()
    return {int(view["id"]): view for view in await views_of_rows(connection, rows)}


async def conversation_view(connection: AsyncConnection, conversation_id: int) -> dict[str, Any] | None:
    rows = (await connection.execute(view_query().where(conversations.c.id == conversation_id))).all()
    views = await views_of_rows(connection, rows)
    return views[0] if views else None


async def list_conversations(
    store: Store,
    *,
    viewer: Agent,
    everything: bool,
    state: ConversationState | None = None,
    queue: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first, keyset-paged by id; an agent sees only their own and their queues' waiting list."""
    c = conversations.c
    query = view_query()
    if not everything:
        # a UNION of three indexed lookups: an OR with EXISTS made SQLite scan every conversation
        visible = union_all(
            select(c.id).where(
                c.state.in_(
                    (ConversationState.WAITING.value, ConversationState.OFFERED.value, ConversationState.BOT.value)
                ),
                c.queue_id.in_(viewer.queues),
            ),
            select(c.id).where(c.state == ConversationState.OFFERED.value, c.offered_agent_id == viewer.id),
            select(participants.c.conversation_id).where(
                participants.c.agent_id == viewer.id, participants.c.left_at.is_(None)
            ),
        )
        query = query.where(c.id.in_(select(visible.subquery().c[0])))
    if state is not None:
        query = query.where(c.state == state.value)
    if queue is not None:
        query = query.where(c.queue_id == queue)
    if before_id is not None:
        query = query.where(c.id < before_id)
    query = query.order_by(c.id.desc()).limit(limit + 1)
    async with store.read() as connection:
        rows = (await connection.execute(query)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = await views_of_rows(connection, rows)
    return items, (int(rows[-1].id) if more and rows else None)


async def waiting_lists(store: Store, queue_ids: Sequence[str]) -> dict[str, tuple[int, datetime | None]]:
    """Per queue: how many conversations wait, and since when the longest has (one indexed query)."""
    found: dict[str, tuple[int, datetime | None]] = dict.fromkeys(queue_ids, (0, None))
    if not queue_ids:
        return found
    c = conversations.c
    query = (
        select(c.queue_id, func.count(), func.min(c.waiting_since))
        .where(c.queue_id.in_(sorted(set(queue_ids))), c.state == ConversationState.WAITING.value)
        .group_by(c.queue_id)
    )
    async with store.read() as connection:
        for queue_id, count, oldest in await connection.execute(query):
            found[str(queue_id)] = (int(count), oldest)
    return found
