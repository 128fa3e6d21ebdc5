"""Storing normalised inbound events: idempotent, all-or-nothing per delivery.

``store_group`` writes several deliveries in one transaction (group commit), so
one commit (one fsync) serves them all, and one bad delivery never takes the
others down: customer messages go together by a set-based path that is retried
one delivery at a time in a new transaction if it fails, and other deliveries
each go in a savepoint of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, case, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus import BusEvent
from hub.events import ConversationWaiting, ConversationWithBot, IdentitySubscription, MessageCreated, MessageDelivery
from hub.model import (
    Author,
    Channel,
    ChannelAccount,
    ConversationState,
    CustomerActivity,
    DeliveryReceipt,
    DeliveryState,
    Direction,
    Echo,
    EventKind,
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    NumberChanged,
    ProfileUpdate,
    Subscription,
    SubscriptionChanged,
)
from hub.store._bulk_ingest import store_messages_bulk
from hub.store._db import Store, upsert
from hub.store._inbound import message_insert, message_row, people, upsert_identities
from hub.store._opening import add_timeline_event, entered, open_conversation
from hub.store.events import Journal, JournalFailed, journal_or_raise
from hub.store.health import webhook_stamp
from hub.store.media import attachment_rows, insert_attachments
from hub.store.tables import (
    UTCDateTime,
    conversations,
    identities,
    messages,
    pending_receipts,
    timeline_events,
)
from hub.store.webhooks_out import record_outgoing

__all__ = [
    "DeliveryOutcome",
    "apply_found_receipts",
    "apply_known_receipts",
    "open_conversation",
    "prune_pending_receipts",
    "store_group",
    "store_profile",
]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class DeliveryOutcome:
    """What one webhook delivery changed."""

    stored: int = 0
    duplicates: int = 0
    updated: int = 0
    ignored: list[str] = field(default_factory=list)
    events: list[BusEvent] = field(default_factory=list)


class _ConcurrentDuplicate(Exception):
    """Another process stored the same provider message between our check and insert."""


async def store_group(
    store: Store,
    deliveries: Sequence[Sequence[InboundEvent]],
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
    *,
    journal: Journal | None = None,
    stamp: Collection[str] | None = None,
) -> list[DeliveryOutcome | BaseException]:
    """Store each delivery atomically, all of them in one transaction.

    Deliveries made only of customer messages (the bulk of the traffic) take the set-based fast path
    together, first in the transaction; the others go one by one, each in a savepoint. ``journal``, if given,
    records the stored deliveries' events before the commit. ``stamp``: the accounts whose ``last_webhook_at``
    becomes ``now`` (None: every account the group heard from).

    Neither the fast path nor the journal has a savepoint of its own: on PostgreSQL that is two round trips
    each on every group, to save a transaction on a failure that hardly happens (ADR 0052). If one fails, the
    transaction is rolled back and the group stored again in a new one: one delivery at a time if the fast path
    failed (so only a bad delivery fails), without the journal if it did (the events are then published
    unrecorded, and their subscribers record them as they would any other event; the deliveries still commit).
    """
    fast = [i for i, d in enumerate(deliveries) if d and all(isinstance(e, InboundMessage) for e in d)]
    while True:
        try:
            return await _store_in_one_transaction(store, deliveries, accounts, now, journal, fast=fast, stamp=stamp)
        except _FastPathFailed:
            logger.warning("group ingest failed; storing its deliveries one by one", exc_info=True)
            fast = []
        except JournalFailed:
            logger.warning("could not record a group's events in its transaction; storing it without", exc_info=True)
            journal = None


class _FastPathFailed(Exception):
    """The set-based path failed: its transaction is rolled back and the group stored one by one."""


async def _store_in_one_transaction(
    store: Store,
    deliveries: Sequence[Sequence[InboundEvent]],
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
    journal: Journal | None,
    *,
    fast: list[int],
    stamp: Collection[str] | None,
) -> list[DeliveryOutcome | BaseException]:
    """``deliveries`` in one write transaction: those at the indexes ``fast`` by the set-based path (it
    runs first, so its failure takes nothing else with it), the others each in a savepoint of its own.
    Raises ``_FastPathFailed`` or ``JournalFailed`` for the caller to roll back and try the surer way."""
    results: dict[int, DeliveryOutcome | BaseException] = {}
    async with store.write() as connection:
        if fast:
            batch = [cast(Sequence[InboundMessage], deliveries[i]) for i in fast]
            try:
                stored = await store_messages_bulk(connection, store.dialect, batch, accounts, now)
            except Exception as exc:
                raise _FastPathFailed from exc
            for i, (count, duplicates, events) in zip(fast, stored, strict=True):
                results[i] = DeliveryOutcome(stored=count, duplicates=duplicates, events=events)
        for i, delivery in enumerate(deliveries):
            if i not in results:
                results[i] = await _store_one(connection, store.dialect, delivery, accounts, now)
        stamped = sorted({e.account_id for d in deliveries for e in d} if stamp is None else stamp)
        if stamped:
            await connection.execute(
                webhook_stamp(store.dialect), [{"account_id": a, "last_webhook_at": now} for a in stamped]
            )
        in_order = [results[i] for i in range(len(deliveries))]
        stored_outcomes = [r for r in in_order if isinstance(r, DeliveryOutcome)]
        await _record_outgoing(connection, stored_outcomes, now)
        if journal is not None:  # in delivery order: the fast path's results were filled in first
            await _record(connection, journal, stored_outcomes)
    return in_order


async def _record_outgoing(connection: AsyncConnection, outcomes: list[DeliveryOutcome], now: datetime) -> None:
    """The outgoing webhooks' deliveries of what was stored, in its transaction (a new conversation is
    announced by ``ConversationWaiting`` or, for a bot, ``ConversationWithBot`` here: only here it means "opened")."""
    events = [event for outcome in outcomes for event in outcome.events]
    opened = {e.conversation_id for e in events if isinstance(e, ConversationWaiting | ConversationWithBot)}
    await record_outgoing(connection, events, now=now, new_conversations=opened)


async def _record(connection: AsyncConnection, journal: Journal, outcomes: list[DeliveryOutcome]) -> None:
    events = [event for outcome in outcomes for event in outcome.events]
    recorded = await journal_or_raise(connection, journal, events)
    position = 0
    for outcome in outcomes:
        count = len(outcome.events)
        outcome.events = recorded[position : position + count]
        position += count


async def _store_one(
    connection: AsyncConnection,
    dialect: str,
    delivery: Sequence[InboundEvent],
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
) -> DeliveryOutcome | BaseException:
    for attempt in range(2):
        outcome = DeliveryOutcome()
        try:
            async with connection.begin_nested():
                for event in delivery:
                    await _store_event(connection, dialect, event, accounts, now, outcome)
            return outcome
        except _ConcurrentDuplicate:
            if attempt:
                raise
            continue  # the retry sees the other process's row and reports a duplicate
        except Exception as exc:
            logger.exception("delivery not stored: rolled back")
            return exc
    raise AssertionError("unreachable")


async def _store_event(
    connection: AsyncConnection,
    dialect: str,
    event: InboundEvent,
    accounts: Mapping[str, ChannelAccount],
    now: datetime,
    outcome: DeliveryOutcome,
) -> None:
    match event:
        case InboundMessage():
            await _store_message(connection, dialect, event, accounts[event.account_id], now, outcome)
        case DeliveryReceipt():
            await _store_receipt(connection, event, now, outcome)
        case SubscriptionChanged():
            await _store_subscription(connection, dialect, event, now, outcome)
        case NumberChanged():
            await _store_number_change(connection, dialect, event, now, outcome)
        case CustomerActivity():
            await _store_activity(connection, event, outcome)
        case Echo():
            await _store_echo(connection, event, now, outcome)
        case IgnoredEvent():
            outcome.ignored.append(f"{event.channel.value}:{event.kind}")


# ------------------------------------------------------------------ messages


async def _existing_message(connection: AsyncConnection, account_id: str, provider_message_id: str) -> int | None:
    row = await connection.execute(
        select(messages.c.id).where(
            messages.c.account_id == account_id, messages.c.provider_message_id == provider_message_id
        )
    )
    return row.scalar_one_or_none()


def _later(column: Any, value: datetime) -> Any:
    """The later of the stored value and the new one (NULL-safe on both engines)."""
    bound = literal(value, UTCDateTime())
    return case((column.is_(None), bound), (bound > column, bound), else_=column)


async def _upsert_identity(
    connection: AsyncConnection,
    dialect: str,
    *,
    account_id: str,
    channel: str,
    external_id: str,
    now: datetime,
    values: Mapping[str, Any],
    update_set: Mapping[str, Any],
) -> int:
    stmt = upsert(
        dialect,
        identities,
        {"account_id": account_id, "channel": channel, "external_id": external_id, "created_at": now, **values},
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "external_id"], set_=dict(update_set) or {"external_id": external_id}
    ).returning(identities.c.id)
    return int((await connection.execute(stmt)).scalar_one())


async def _store_message(
    connection: AsyncConnection,
    dialect: str,
    event: InboundMessage,
    account: ChannelAccount,
    now: datetime,
    outcome: DeliveryOutcome,
) -> None:
    if await _existing_message(connection, event.account_id, event.provider_message_id) is not None:
        outcome.duplicates += 1
        return
    senders = people([event])
    identities_ = await upsert_identities(connection, dialect, senders, {account.id: account}, now)
    identity_id = identities_[(event.account_id, event.sender_id)]
    conversation_id, queue_id, is_new = await open_conversation(connection, dialect, identity_id, account, now)
    if is_new:
        outcome.events.append(entered(account, conversation_id, queue_id))
    inserted = (
        await connection.execute(message_insert(dialect), [message_row(event, identity_id, conversation_id, now)])
    ).first()
    if inserted is None:
        raise _ConcurrentDuplicate(event.provider_message_id)
    message_id = int(inserted.id)
    if event.attachments:  # pending: the media fetcher brings the bytes
        await insert_attachments(connection, attachment_rows(message_id, event.attachments, now))
    await connection.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(last_message_at=_later(conversations.c.last_message_at, now))
    )
    outcome.stored += 1
    outcome.events.append(
        MessageCreated(
            conversation_id=conversation_id,
            queue_id=queue_id,
            message_id=message_id,
            direction="in",
            identity_id=identity_id,
            with_attachments=bool(event.attachments),
        )
    )


# ------------------------------------------------------------------ receipts

_RANK = case(
    *((messages.c.delivery_state == state.value, state.rank) for state in DeliveryState),
    else_=0,
)


async def _store_receipt(
    connection: AsyncConnection, event: DeliveryReceipt, now: datetime, outcome: DeliveryOutcome
) -> None:
    """Move our messages forward, never backward (receipts arrive out of order)."""
    forward = and_(
        messages.c.direction == Direction.OUT.value,
        messages.c.account_id == event.account_id,
        messages.c.delivery_state.notin_([DeliveryState.FAILED.value, DeliveryState.READ.value]),
        event.state.rank > _RANK,
    )
    if event.provider_message_ids:
        where = and_(forward, messages.c.provider_message_id.in_(event.provider_message_ids))
    elif event.watermark is not None and event.recipient_id is not None:
        identity_id = (
            await connection.execute(
                select(identities.c.id).where(
                    identities.c.account_id == event.account_id, identities.c.external_id == event.recipient_id
                )
            )
        ).scalar_one_or_none()
        if identity_id is None:
            return
        where = and_(
            forward,
            messages.c.identity_id == identity_id,
            messages.c.sent_at.is_not(None),
            messages.c.sent_at <= event.watermark,
        )
    else:
        return
    values: dict[str, Any] = {"delivery_state": event.state.value, "delivery_changed_at": event.occurred_at}
    if event.state is DeliveryState.FAILED:
        values["error_code"] = event.error_code
        values["error_reason"] = event.error_reason
    rows = (
        await connection.execute(
            update(messages).where(where).values(values).returning(messages.c.id, messages.c.conversation_id)
        )
    ).all()
    outcome.updated += len(rows)
    if event.provider_message_ids and len(rows) < len(event.provider_message_ids):
        await _keep_early_receipt(connection, event, now)
    for row in rows:
        outcome.events.append(
            MessageDelivery(
                conversation_id=int(row.conversation_id),
                message_id=int(row.id),
                state=event.state.value,
                error_code=event.error_code,
                error_reason=event.error_reason,
            )
        )


async def _keep_early_receipt(connection: AsyncConnection, event: DeliveryReceipt, now: datetime) -> None:
    """Receipts for ids we do not know yet: the provider may call back before the outbox has stored the id
    it was given. Kept, they are applied when it is stored (``hub.store.outbox``, with ``apply_found_receipts``)."""
    known = {
        row.provider_message_id
        for row in await connection.execute(
            select(messages.c.provider_message_id).where(
                messages.c.account_id == event.account_id,
                messages.c.provider_message_id.in_(event.provider_message_ids),
            )
        )
    }
    unknown = [pid for pid in dict.fromkeys(event.provider_message_ids) if pid not in known]
    if not unknown:
        return
    dialect = connection.dialect.name
    await connection.execute(
        upsert(dialect, pending_receipts).on_conflict_do_nothing(
            index_elements=["account_id", "provider_message_id", "state"]
        ),
        [
            {
                "account_id": event.account_id,
                "provider_message_id": pid,
                "state": event.state.value,
                "occurred_at": event.occurred_at,
                "error_code": event.error_code,
                "error_reason": event.error_reason,
                "created_at": now,
            }
            for pid in unknown
        ],
    )


# early receipts whose message is stored with its provider id by now
_KNOWN_PENDING = (
    select(pending_receipts, identities.c.channel)
    .join(
        messages,
        and_(
            messages.c.account_id == pending_receipts.c.account_id,
            messages.c.provider_message_id == pending_receipts.c.provider_message_id,
        ),
    )
    .join(identities, identities.c.id == messages.c.identity_id)
)


async def apply_known_receipts(connection: AsyncConnection, now: datetime) -> list[BusEvent]:
    """Apply and forget the early receipts whose message has its provider id by now.

    Storing an acceptance looks for its early receipts, so this finds one only when that look missed it: a
    receipt stored concurrently with the acceptance (on PostgreSQL neither transaction sees the other's row),
    or an acceptance committed on its own whose process stopped before it applied them. The outbox runs this
    about once a second."""
    rows = (await connection.execute(_KNOWN_PENDING)).all()
    if not rows:
        return []
    return await apply_found_receipts(connection, {row.account_id: Channel(row.channel) for row in rows}, rows, now)


async def prune_pending_receipts(connection: AsyncConnection, now: datetime) -> None:
    """Forget early receipts older than a day: their message never came."""
    await connection.execute(delete(pending_receipts).where(pending_receipts.c.created_at < now - timedelta(days=1)))


async def apply_found_receipts(
    connection: AsyncConnection, channels: Mapping[str, Channel], pending: Sequence[Any], now: datetime
) -> list[BusEvent]:
    """Apply ``pending`` (rows of ``pending_receipts`` whose messages now have their provider ids), in the
    order their states go, and forget them."""
    events: list[BusEvent] = []
    for row in sorted(pending, key=lambda r: DeliveryState(r.state).rank):
        receipt = DeliveryReceipt(
            channel=channels[row.account_id],
            account_id=row.account_id,
            recipient_id=None,
            state=DeliveryState(row.state),
            occurred_at=row.occurred_at,
            provider_message_ids=(row.provider_message_id,),
            error_code=row.error_code,
            error_reason=row.error_reason,
        )
        outcome = DeliveryOutcome()
        await _store_receipt(connection, receipt, now, outcome)
        events.extend(outcome.events)
        await connection.execute(
            delete(pending_receipts).where(
                pending_receipts.c.account_id == row.account_id,
                pending_receipts.c.provider_message_id == row.provider_message_id,
                pending_receipts.c.state == row.state,
            )
        )
    return events


# ------------------------------------------------------------- subscriptions


async def _store_subscription(
    connection: AsyncConnection, dialect: str, event: SubscriptionChanged, now: datetime, outcome: DeliveryOutcome
) -> None:
    c = identities.c
    newer = func.coalesce(c.subscription_changed_at, event.occurred_at) <= event.occurred_at
    # conversation_started never downgrades a subscribed user
    state_value: Any = event.state.value
    if event.state is Subscription.OPENED:
        state_value = case((c.subscription == Subscription.SUBSCRIBED.value, c.subscription), else_=event.state.value)
    update_set: dict[str, Any] = {
        "subscription": case((newer, state_value), else_=c.subscription),
        "subscription_changed_at": _later(c.subscription_changed_at, event.occurred_at),
    }
    if event.display_name:
        update_set["display_name"] = event.display_name
    if event.avatar:
        update_set["avatar_url"] = event.avatar
    identity_id = await _upsert_identity(
        connection,
        dialect,
        account_id=event.account_id,
        channel=event.channel.value,
        external_id=event.user_id,
        now=now,
        values={
            "subscription": event.state.value,
            "subscription_changed_at": event.occurred_at,
            "display_name": event.display_name,
            "avatar_url": event.avatar,
        },
        update_set=update_set,
    )
    outcome.updated += 1
    outcome.events.append(IdentitySubscription(identity_id=identity_id, state=event.state.value))
    if event.state in (Subscription.SUBSCRIBED, Subscription.UNSUBSCRIBED):
        open_id = (
            await connection.execute(
                select(conversations.c.id).where(
                    conversations.c.identity_id == identity_id, conversations.c.state != ConversationState.CLOSED.value
                )
            )
        ).scalar_one_or_none()
        if open_id is not None:
            kind = EventKind.SUBSCRIBED if event.state is Subscription.SUBSCRIBED else EventKind.UNSUBSCRIBED
            await add_timeline_event(connection, int(open_id), kind, now)


# ----------------------------------------------------------- changed numbers


async def _store_number_change(
    connection: AsyncConnection, dialect: str, event: NumberChanged, now: datetime, outcome: DeliveryOutcome
) -> None:
    """The new address becomes an identity of the old one's contact (it keeps a contact it already has), and the
    old address's open conversation gets a timeline row naming it. Neither identity's window moves: the customer
    wrote nothing. A redelivery changes nothing more."""
    c = identities.c
    old = (
        await connection.execute(
            select(c.id, c.contact_id, c.display_name).where(
                c.account_id == event.account_id, c.external_id == event.user_id
            )
        )
    ).first()
    if old is None:  # a customer we never heard from: nothing to move
        outcome.ignored.append(f"{event.channel.value}:number_changed")
        return
    new_address = event.new_user_id
    phone = f"+{new_address}" if new_address.isdigit() else None  # a WhatsApp id is the number without its "+"
    new_id = await _upsert_identity(
        connection,
        dialect,
        account_id=event.account_id,
        channel=event.channel.value,
        external_id=new_address,
        now=now,
        values={
            "contact_id": old.contact_id,
            "display_name": old.display_name,
            "phone": phone,
        },
        update_set={"contact_id": func.coalesce(c.contact_id, old.contact_id)},
    )
    outcome.updated += 1
    open_id = (
        await connection.execute(
            select(conversations.c.id).where(
                conversations.c.identity_id == old.id, conversations.c.state != ConversationState.CLOSED.value
            )
        )
    ).scalar_one_or_none()
    if open_id is None:
        return
    data = {"identity": new_id, "new_address": phone or new_address}
    if event.description:
        data["description"] = event.description
    noted = await connection.execute(
        select(timeline_events.c.data).where(
            timeline_events.c.conversation_id == open_id,
            timeline_events.c.kind == EventKind.NUMBER_CHANGED.value,
        )
    )
    if any(row.data.get("identity") == new_id for row in noted):  # a redelivery, or the change told twice
        return
    await add_timeline_event(connection, int(open_id), EventKind.NUMBER_CHANGED, now, data)


# ------------------------------------------------------------ customer activity


async def _store_activity(connection: AsyncConnection, event: CustomerActivity, outcome: DeliveryOutcome) -> None:
    """A reaction or a link opened on an existing thread: the customer's last inbound time moves forward (never
    back), so the window it opens is open. Only for a customer who wrote before: nobody becomes contactable by it."""
    c = identities.c
    result = await connection.execute(
        update(identities)
        .where(
            c.account_id == event.account_id,
            c.external_id == event.sender_id,
            c.first_inbound_at.is_not(None),
        )
        .values(last_inbound_at=_later(c.last_inbound_at, event.occurred_at))
    )
    if result.rowcount:
        outcome.updated += 1
    else:
        outcome.ignored.append(f"{event.channel.value}:{event.kind}_from_unknown_customer")


# -------------------------------------------------------------------- echoes


async def _store_echo(connection: AsyncConnection, event: Echo, now: datetime, outcome: DeliveryOutcome) -> None:
    """Our own message, echoed. One we sent is already stored; one sent from the
    provider's own inbox is added to the customer's latest conversation."""
    if await _existing_message(connection, event.account_id, event.provider_message_id) is not None:
        outcome.duplicates += 1
        return
    row = (
        await connection.execute(
            select(identities.c.id, conversations.c.id.label("conversation_id"))
            .join(conversations, conversations.c.identity_id == identities.c.id)
            .where(identities.c.account_id == event.account_id, identities.c.external_id == event.recipient_id)
            .order_by(conversations.c.opened_at.desc(), conversations.c.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        outcome.ignored.append(f"{event.channel.value}:echo_without_conversation")
        return
    inserted = await connection.execute(
        messages.insert()
        .values(
            conversation_id=row.conversation_id,
            identity_id=row.id,
            account_id=event.account_id,
            direction=Direction.OUT.value,
            author=Author.SYSTEM.value,
            kind=event.kind.value,
            text=event.text,
            attachments=[a.to_json() for a in event.attachments] or None,
            provider_message_id=event.provider_message_id,
            sent_at=event.sent_at,
            created_at=now,
            delivery_state=DeliveryState.SENT.value,
            extra={"echo": "sent outside the hub"},
        )
        .returning(messages.c.id)
    )
    outcome.stored += 1
    outcome.events.append(
        MessageCreated(
            conversation_id=int(row.conversation_id),
            message_id=int(inserted.scalar_one()),
            direction="out",
            identity_id=int(row.id),
        )
    )


# ------------------------------------------------------------------ profiles


async def store_profile(store: Store, update_: ProfileUpdate) -> None:
    """Enrichment after the acknowledgement: fill what the provider told us later."""
    values: dict[str, Any] = {}
    if update_.display_name:
        values["display_name"] = update_.display_name
    if update_.avatar:
        values["avatar_url"] = update_.avatar
    if not values:
        return
    async with store.write() as connection:
        await connection.execute(
            update(identities)
            .where(identities.c.account_id == update_.account_id, identities.c.external_id == update_.external_id)
            .values(values)
        )
