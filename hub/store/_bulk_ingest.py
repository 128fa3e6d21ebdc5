"""The fast path of ingest: customer messages of many deliveries in a few set-based statements.

Storing one message one statement at a time costs five or six round trips; a group of deliveries that are
all customer messages is stored instead with one lookup of known ids, one multi-row identity upsert, one
lookup of open conversations, one insert of new conversations, one insert of messages and one update. The
effects are those of ``ingest._store_message`` applied in order: both write their rows with the same builders
and statements (``_inbound``, ``_opening``). If anything fails, the caller rolls its transaction back and
stores the deliveries again one by one in a new one, so a bad delivery still fails alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus import BusEvent
from hub.events import MessageCreated
from hub.model import ChannelAccount, ConversationState, InboundMessage
from hub.store._db import DIALECTS, one_of
from hub.store._inbound import message_insert, message_row, people, upsert_identities
from hub.store._opening import entered, insert_open, name_the_bot, open_conversation, waiting_row
from hub.store.media import attachment_rows, insert_attachments
from hub.store.tables import conversations, messages

__all__ = ["store_messages_bulk"]


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
    senders = people(fresh.values())
    identity_ids = await upsert_identities(connection, dialect, senders, accounts, now) if senders else {}
    opened: dict[int, int] = {}
    conversation_of: dict[int, tuple[int, str]] = {}
    if identity_ids:
        conversation_of, opened = await _open_conversations(connection, dialect, identity_ids, accounts, now)
    message_ids = await _insert_messages(connection, dialect, fresh, identity_ids, conversation_of, now)
    media = [
        row
        for key, event in fresh.items()
        if event.attachments and key in message_ids
        for row in attachment_rows(message_ids[key], event.attachments, now)
    ]
    await insert_attachments(connection, media)  # pending: the media fetcher brings the bytes
    if message_ids:
        touched = sorted({conversation_of[identity_ids[(e.account_id, e.sender_id)]][0] for e in fresh.values()})
        await connection.execute(_TOUCH_CONVERSATIONS[dialect], {"touched": touched, "now": now})

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
                events.append(entered(accounts[event.account_id], conversation_id, queue_id))
            events.append(
                MessageCreated(
                    conversation_id=conversation_id,
                    queue_id=queue_id,
                    message_id=message_id,
                    direction="in",
                    identity_id=identity_id,
                    with_attachments=bool(event.attachments),
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
        rows = await connection.execute(_KNOWN_IDS[connection.dialect.name], {"account": account_id, "ids": ids})
        known.update((account_id, row.provider_message_id) for row in rows)
    return known


async def _open_conversations(
    connection: AsyncConnection,
    dialect: str,
    identity_ids: Mapping[tuple[str, str], int],
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
) -> tuple[dict[int, tuple[int, str]], dict[int, int]]:
    """identity id -> (open conversation id, queue); plus the conversations opened here."""
    ids = list(identity_ids.values())
    found = await _open_rows(connection, ids)
    missing = [key for key, identity_id in identity_ids.items() if identity_id not in found]
    opened: dict[int, int] = {}
    to_insert: list[dict[str, Any]] = []
    for key in missing:
        account = accounts[key[0]]
        identity_id = identity_ids[key]
        if account.reopen_after_close:  # the one-by-one path
            conversation_id, queue_id, is_new = await open_conversation(connection, dialect, identity_id, account, now)
            found[identity_id] = (conversation_id, queue_id)
            if is_new:
                opened[conversation_id] = identity_id
            continue
        to_insert.append(waiting_row(account, identity_id, now))
    if to_insert:
        bot_of = {row["identity_id"]: accounts[row["account_id"]].bot for row in to_insert}
        with_bots: list[tuple[int, str]] = []
        named = {identity: bot for identity, bot in bot_of.items() if bot is not None}
        for row in await insert_open(connection, dialect, to_insert, now, bots=named):
            found[int(row.identity_id)] = (int(row.id), str(row.queue_id))
            opened[int(row.id)] = int(row.identity_id)
            bot = bot_of[int(row.identity_id)]
            if bot is not None:
                with_bots.append((int(row.id), bot))
        await name_the_bot(connection, dialect, with_bots, now)
        late = [int(row["identity_id"]) for row in to_insert if row["identity_id"] not in found]
        if late:  # another writer opened them a moment ago
            found.update(await _open_rows(connection, late))
    return found, opened


async def _open_rows(connection: AsyncConnection, identity_ids: list[int]) -> dict[int, tuple[int, str]]:
    rows = await connection.execute(_OPEN_ROWS[connection.dialect.name], {"identities": identity_ids})
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
        rows.append(message_row(event, identity_id, conversation_of[identity_id][0], now))
    result = await connection.execute(message_insert(dialect), rows)
    # a row missing here was stored by another process a moment ago: a duplicate, nothing to undo
    return {(row.account_id, row.provider_message_id): int(row.id) for row in result}


# The group's other statements, built once per engine; each list of ids is one parameter (``one_of``).
_KNOWN_IDS = {
    dialect: select(messages.c.provider_message_id).where(
        messages.c.account_id == bindparam("account"), one_of(messages.c.provider_message_id, "ids", dialect)
    )
    for dialect in DIALECTS
}
_OPEN_ROWS = {
    dialect: select(conversations.c.id, conversations.c.identity_id, conversations.c.queue_id).where(
        one_of(conversations.c.identity_id, "identities", dialect),
        conversations.c.state != ConversationState.CLOSED.value,
    )
    for dialect in DIALECTS
}
_TOUCH_CONVERSATIONS = {
    dialect: update(conversations)
    .where(one_of(conversations.c.id, "touched", dialect))
    .values(last_message_at=bindparam("now", type_=conversations.c.last_message_at.type))
    for dialect in DIALECTS
}
