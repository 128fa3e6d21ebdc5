"""The fast path of ingest: customer messages of many deliveries in a few set-based statements.

Storing one message one statement at a time costs five or six round trips; a group of deliveries that are
all customer messages is stored instead with one lookup of known ids, one multi-row identity upsert, one
lookup of open conversations, one insert of new conversations, one insert of messages and one update. The
effects are those of ``ingest._store_message`` applied in order; if anything fails, the caller rolls the
savepoint back and stores the deliveries one by one, so a bad delivery still fails alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, case, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus import BusEvent
from hub.events import ConversationWaiting, MessageCreated
from hub.model import Author, ChannelAccount, ConversationState, DeliveryState, Direction, InboundMessage
from hub.store._db import upsert
from hub.store.tables import conversations, identities, messages, timeline_events

__all__ = ["store_messages_bulk"]


@dataclass(slots=True)
class _Person:
    """Everything a group says about one customer: the identity upsert's row."""

    account_id: str
    channel: str
    external_id: str
    first: datetime
    last: datetime
    name: str | None
    avatar: str | None
    phone: str | None


async def store_messages_bulk(
    connection: AsyncConnection,
    dialect: str,
    deliveries: Sequence[Sequence[InboundMessage]],
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
) -> list[tuple[int, int, list[BusEvent]]]:
    """Store every delivery's messages; returns (stored, duplicates, bus events) per delivery."""
    flat = [event for delivery in deliveries for event in delivery]
    known = await _known_message_ids(connection, flat)
    fresh: dict[tuple[str, str], InboundMessage] = {}
    for event in flat:
        key = (event.account_id, event.provider_message_id)
        if key not in known and key not in fresh:
            fresh[key] = event
    people = _people(fresh.values())
    identity_ids = await _upsert_identities(connection, dialect, people, accounts, now) if people else {}
    opened: dict[int, int] = {}
    conversation_of: dict[int, tuple[int, str]] = {}
    if identity_ids:
        conversation_of, opened = await _open_conversations(connection, dialect, identity_ids, accounts, now)
    message_ids = await _insert_messages(connection, dialect, fresh, identity_ids, conversation_of, now)
    if message_ids:
        touched = sorted({conversation_of[identity_ids[(e.account_id, e.sender_id)]][0] for e in fresh.values()})
        await connection.execute(_TOUCH_CONVERSATIONS, {"touched": touched, "now": now})

    results: list[tuple[int, int, list[BusEvent]]] = []
    announced: set[int] = set()
    claimed: set[tuple[str, str]] = set()
    for delivery in deliveries:
        stored = duplicates = 0
        events: list[BusEvent] = []
        for event in delivery:
            key = (event.account_id, event.provider_message_id)
            message_id = message_ids.get(key)
            if message_id is None or key in claimed:
                duplicates += 1
                continue
            claimed.add(key)
            stored += 1
            identity_id = identity_ids[(event.account_id, event.sender_id)]
            conversation_id, queue_id = conversation_of[identity_id]
            if conversation_id in opened and conversation_id not in announced:
                announced.add(conversation_id)
                events.append(ConversationWaiting(conversation_id=conversation_id, queue_id=queue_id))
            events.append(
                MessageCreated(
                    conversation_id=conversation_id,
                    queue_id=queue_id,
                    message_id=message_id,
                    direction="in",
                    identity_id=identity_id,
                )
            )
        results.append((stored, duplicates, events))
    return results


async def _known_message_ids(connection: AsyncConnection, flat: Sequence[InboundMessage]) -> set[tuple[str, str]]:
    by_account: dict[str, list[str]] = {}
    for event in flat:
        by_account.setdefault(event.account_id, []).append(event.provider_message_id)
    known: set[tuple[str, str]] = set()
    for account_id, ids in by_account.items():
        rows = await connection.execute(_KNOWN_IDS, {"account": account_id, "ids": ids})
        known.update((account_id, row.provider_message_id) for row in rows)
    return known


def _people(fresh: Iterable[InboundMessage]) -> dict[tuple[str, str], _Person]:
    people: dict[tuple[str, str], _Person] = {}
    for event in fresh:
        key = (event.account_id, event.sender_id)
        person = people.get(key)
        if person is None:
            people[key] = _Person(
                account_id=event.account_id,
                channel=event.channel.value,
                external_id=event.sender_id,
                first=event.sent_at,
                last=event.sent_at,
                name=event.sender_name,
                avatar=event.sender_avatar,
                phone=event.sender_phone,
            )
            continue
        person.first = min(person.first, event.sent_at)
        if event.sent_at >= person.last:
            person.last = event.sent_at
        person.name = event.sender_name or person.name
        person.avatar = event.sender_avatar or person.avatar
        person.phone = event.sender_phone or person.phone
    return people


def _later_of(current: Any, new: Any) -> Any:
    return case((new.is_(None), current), (current.is_(None), new), (new > current, new), else_=current)


@cache
def _identity_upsert(dialect: str) -> Any:
    """The identities' multi-row upsert, built once per dialect (building it cost more CPU than running it)."""
    stmt = upsert(dialect, identities)
    new, c = stmt.excluded, identities.c
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "external_id"],
        set_={
            "display_name": func.coalesce(new.display_name, c.display_name),
            "avatar_url": func.coalesce(new.avatar_url, c.avatar_url),
            "phone": func.coalesce(new.phone, c.phone),
            "last_inbound_at": _later_of(c.last_inbound_at, new.last_inbound_at),
            "first_inbound_at": case(
                (c.first_inbound_at.is_(None), new.first_inbound_at),
                (new.first_inbound_at < c.first_inbound_at, new.first_inbound_at),
                else_=c.first_inbound_at,
            ),
            "last_received_at": new.last_received_at,
            "subscription": case(
                (
                    and_(
                        new.subscription.is_not(None),
                        func.coalesce(c.subscription_changed_at, new.subscription_changed_at)
                        <= new.subscription_changed_at,
                    ),
                    new.subscription,
                ),
                else_=c.subscription,
            ),
            "subscription_changed_at": _later_of(c.subscription_changed_at, new.subscription_changed_at),
        },
    ).returning(identities.c.id, identities.c.account_id, identities.c.external_id)
    return stmt


async def _upsert_identities(
    connection: AsyncConnection,
    dialect: str,
    people: Mapping[tuple[str, str], _Person],
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
) -> dict[tuple[str, str], int]:
    rows = []
    for person in people.values():
        subscribes = accounts[person.account_id].subscribes_on_message
        rows.append(
            {
                "account_id": person.account_id,
                "channel": person.channel,
                "external_id": person.external_id,
                "display_name": person.name,
                "avatar_url": person.avatar,
                "phone": person.phone,
                "first_inbound_at": person.first,
                "last_inbound_at": person.last,
                "last_received_at": now,
                # a Viber user who writes is subscribed (channels.md 4.7)
                "subscription": "subscribed" if subscribes else None,
                "subscription_changed_at": person.last if subscribes else None,
                "created_at": now,
            }
        )
    result = await connection.execute(_identity_upsert(dialect), rows)
    return {(row.account_id, row.external_id): int(row.id) for row in result}


async def _open_conversations(
    connection: AsyncConnection,
    dialect: str,
    identity_ids: Mapping[tuple[str, str], int],
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
) -> tuple[dict[int, tuple[int, str]], dict[int, int]]:
    """identity id -> (open conversation id, queue); plus the conversations opened here."""
    from hub.store.ingest import open_conversation  # the one-by-one path, for reopen-after-close accounts

    ids = list(identity_ids.values())
    found = await _open_rows(connection, ids)
    missing = [key for key, identity_id in identity_ids.items() if identity_id not in found]
    opened: dict[int, int] = {}
    to_insert: list[dict[str, Any]] = []
    for key in missing:
        account = accounts[key[0]]
        identity_id = identity_ids[key]
        if account.reopen_after_close:
            conversation_id, queue_id, is_new = await open_conversation(connection, dialect, identity_id, account, now)
            found[identity_id] = (conversation_id, queue_id)
            if is_new:
                opened[conversation_id] = identity_id
            continue
        to_insert.append(
            {
                "account_id": account.id,
                "channel": account.channel.value,
                "identity_id": identity_id,
                "queue_id": account.queue,
                "state": ConversationState.WAITING.value,
                "waiting_since": now,
                "opened_at": now,
            }
        )
    if to_insert:
        inserted = await connection.execute(_conversation_insert(dialect), to_insert)
        new_rows = inserted.all()
        for row in new_rows:
            found[int(row.identity_id)] = (int(row.id), str(row.queue_id))
            opened[int(row.id)] = int(row.identity_id)
        if new_rows:
            await connection.execute(
                timeline_events.insert(),
                [{"conversation_id": int(r.id), "kind": "opened", "data": {}, "created_at": now} for r in new_rows],
            )
        late = [int(row["identity_id"]) for row in to_insert if row["identity_id"] not in found]
        if late:  # another writer opened them a moment ago
            found.update(await _open_rows(connection, late))
    return found, opened


@cache
def _conversation_insert(dialect: str) -> Any:
    return (
        upsert(dialect, conversations)
        .on_conflict_do_nothing(index_elements=["identity_id"], index_where=text("state != 'closed'"))
        .returning(conversations.c.id, conversations.c.identity_id, conversations.c.queue_id)
    )


async def _open_rows(connection: AsyncConnection, identity_ids: list[int]) -> dict[int, tuple[int, str]]:
    rows = await connection.execute(_OPEN_ROWS, {"identities": identity_ids})
    return {int(row.identity_id): (int(row.id), str(row.queue_id)) for row in rows}


async def _insert_messages(
    connection: AsyncConnection,
    dialect: str,
    fresh: Mapping[tuple[str, str], InboundMessage],
    identity_ids: Mapping[tuple[str, str], int],
    conversation_of: Mapping[int, tuple[int, str]],
    now: datetime,
) -> dict[tuple[str, str], int]:
    if not fresh:
        return {}
    rows = []
    for event in fresh.values():
        identity_id = identity_ids[(event.account_id, event.sender_id)]
        rows.append(
            {
                "conversation_id": conversation_of[identity_id][0],
                "identity_id": identity_id,
                "account_id": event.account_id,
                "direction": Direction.IN.value,
                "author": Author.CUSTOMER.value,
                "kind": event.kind.value,
                "text": event.text,
                "attachments": [a.to_json() for a in event.attachments] or None,
                "location": event.location.to_json() if event.location else None,
                "payload": event.payload,
                "reply_to": event.reply_to,
                "extra": dict(event.extra) or None,
                "provider_message_id": event.provider_message_id,
                "sent_at": event.sent_at,
                "created_at": now,
                "delivery_state": DeliveryState.RECEIVED.value,
            }
        )
    result = await connection.execute(_message_insert(dialect), rows)
    # a row missing here was stored by another process a moment ago: a duplicate, nothing to undo
    return {(row.account_id, row.provider_message_id): int(row.id) for row in result}


@cache
def _message_insert(dialect: str) -> Any:
    return (
        upsert(dialect, messages)
        .on_conflict_do_nothing(index_elements=["account_id", "provider_message_id"])
        .returning(messages.c.id, messages.c.account_id, messages.c.provider_message_id)
    )


# The group's other statements, built once with bound parameters (expanding ones for the id lists).
_KNOWN_IDS = select(messages.c.provider_message_id).where(
    messages.c.account_id == bindparam("account"),
    messages.c.provider_message_id.in_(bindparam("ids", expanding=True)),
)
_OPEN_ROWS = select(conversations.c.id, conversations.c.identity_id, conversations.c.queue_id).where(
    conversations.c.identity_id.in_(bindparam("identities", expanding=True)),
    conversations.c.state != ConversationState.CLOSED.value,
)
_TOUCH_CONVERSATIONS = (
    update(conversations)
    .where(conversations.c.id.in_(bindparam("touched", expanding=True)))
    .values(last_message_at=bindparam("now", type_=conversations.c.last_message_at.type))
)
