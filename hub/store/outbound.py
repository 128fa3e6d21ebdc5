"""Outbound messages and the outbox: accepting a send, claiming due rows, recording outcomes.

A send is accepted by writing the message (queued) and its outbox row in one
transaction; delivery workers claim due rows with a lease (``locked_until``),
only the oldest unfinished row of each conversation (order within a
conversation). Acceptances are stored together with the next claim in one
transaction (``record_and_claim``; on PostgreSQL the outbox stores them apart,
each one statement, ADR 0019); failures and retries in their own short ones.
See docs/decisions/0010-outbox-delivery.md and 0011.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus import BusEvent
from hub.events import ConversationClosed, ConversationOpened, MessageCreated, MessageDelivery
from hub.model import (
    Attachment,
    Author,
    Channel,
    Conversation,
    ConversationState,
    DeliveryState,
    Direction,
    EventKind,
    Identity,
    Message,
    MessageKind,
    Subscription,
)
from hub.store._db import Store, in_json_array, upsert
from hub.store._per_row import PerRow
from hub.store.conversations import conversation_from_row
from hub.store.ingest import (
    apply_found_receipts,
    apply_known_receipts,
    apply_pending_receipts,
    prune_pending_receipts,
)
from hub.store.routing import RoutingRefused, close_within
from hub.store.tables import (
    UTCDateTime,
    account_health,
    conversations,
    identities,
    messages,
    outbox,
    participants,
    pending_receipts,
    timeline_events,
)

__all__ = [
    "Accepted",
    "ConversationTaken",
    "NewOutbound",
    "OutboxJob",
    "OutboxState",
    "Queued",
    "claim_outbox",
    "get_message",
    "identity_from_row",
    "load_identity",
    "message_from_row",
    "open_conversation_of",
    "outbox_counts",
    "outbox_upkeep",
    "queue_outbound",
    "queue_outbound_group",
    "record_and_claim",
    "record_failed",
    "record_retry",
    "release_claims",
]


class OutboxState:
    PENDING = "pending"  # waiting for its (next) attempt
    SENDING = "sending"  # claimed by a worker until locked_until
    DONE = "done"  # the provider accepted it
    FAILED = "failed"  # refused for good, out of attempts, or stopped by the policy


_UNFINISHED = (OutboxState.PENDING, OutboxState.SENDING)


class ConversationTaken(Exception):
    """The identity's open conversation belongs to someone else (or appeared meanwhile)."""

    def __init__(self, conversation_id: int | None) -> None:
        super().__init__(f"conversation {conversation_id} is already open")
        self.conversation_id = conversation_id


# --------------------------------------------------------------------- rows


def identity_from_row(row: Any) -> Identity:
    return Identity(
        id=int(row.id),
        account_id=row.account_id,
        channel=Channel(row.channel),
        external_id=row.external_id,
        display_name=row.display_name,
        avatar_url=row.avatar_url,
        phone=row.phone,
        first_inbound_at=row.first_inbound_at,
        last_inbound_at=row.last_inbound_at,
        subscription=Subscription(row.subscription) if row.subscription else None,
        subscription_changed_at=row.subscription_changed_at,
        contact_id=row.contact_id,
        welcome_sent=bool(row.welcome_sent),
    )


def message_from_row(row: Any) -> Message:
    return Message(
        id=int(row.id),
        conversation_id=int(row.conversation_id),
        direction=Direction(row.direction),
        author=Author(row.author),
        kind=MessageKind(row.kind),
        created_at=row.created_at,
        text=row.text,
        attachments=tuple(Attachment.from_json(a) for a in row.attachments or ()),
        provider_message_id=row.provider_message_id,
        sent_at=row.sent_at,
        delivery_state=DeliveryState(row.delivery_state),
        error_code=row.error_code,
        error_reason=row.error_reason,
        agent_id=row.agent_id,
        template_name=row.template_name,
        template_version=row.template_version,
    )


async def load_identity(store: Store, identity_id: int) -> Identity | None:
    async with store.read() as connection:
        row = (await connection.execute(select(identities).where(identities.c.id == identity_id))).first()
    return None if row is None else identity_from_row(row)


async def get_message(store: Store, message_id: int) -> tuple[Message, dict[str, Any] | None, str | None] | None:
    """The message, its send plan and its tag."""
    async with store.read() as connection:
        row = (await connection.execute(select(messages).where(messages.c.id == message_id))).first()
    return None if row is None else (message_from_row(row), row.send_plan, row.tag)


async def open_conversation_of(store: Store, identity_id: int) -> tuple[Conversation, dict[int, str]] | None:
    """The identity's open conversation and its current participants, if any."""
    async with store.read() as connection:
        row = (
            await connection.execute(
                select(conversations).where(
                    conversations.c.identity_id == identity_id,
                    conversations.c.state != ConversationState.CLOSED.value,
                )
            )
        ).first()
        if row is None:
            return None
        people = await connection.execute(
            select(participants.c.agent_id, participants.c.role).where(
                participants.c.conversation_id == row.id, participants.c.left_at.is_(None)
            )
        )
        return conversation_from_row(row), {int(p.agent_id): str(p.role) for p in people}


# -------------------------------------------------------------- accepting


@dataclass(frozen=True, slots=True, kw_only=True)
class NewOutbound:
    """One accepted send, as the API hands it to the store."""

    account_id: str
    identity_id: int
    agent_id: int
    kind: MessageKind
    send_plan: dict[str, Any]
    conversation_id: int | None = None  # None: open an active conversation owned by the agent
    queue_id: str | None = None  # for a new conversation
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    template_name: str | None = None
    template_version: int | None = None
    tag: str | None = None
    close_status: str | None = None  # close the conversation with this status once queued


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    message: Message
    conversation: Conversation | None  # read back when the send opened or closed it
    outbox_id: int
    opened: bool
    events: list[BusEvent] = field(default_factory=list)


async def queue_outbound(store: Store, send: NewOutbound, now: datetime) -> Queued:
    """Write the message and its outbox row in one transaction (opening or closing the conversation too)."""
    (result,) = await queue_outbound_group(store, [send], now)
    if isinstance(result, BaseException):
        raise result
    return result


async def queue_outbound_group(
    store: Store, sends: Sequence[NewOutbound], now: datetime
) -> list[Queued | BaseException]:
    """Several accepted sends in one transaction (group commit). Replies in an existing
    conversation (the common case) are written set-based, three statements for the whole group;
    a send that opens or closes a conversation gets its own savepoint, so one that fails (say, a
    conversation opened meanwhile) is reported and does not sink the others. Raises only when the
    commit itself fails (then none of them was accepted)."""
    results: list[Queued | BaseException | None] = [None] * len(sends)
    simple = [i for i, send in enumerate(sends) if send.conversation_id is not None and send.close_status is None]
    async with store.write() as connection:
        if simple:
            for i, queued in zip(
                simple, await _queue_replies(connection, store.dialect, [sends[i] for i in simple], now), strict=True
            ):
                results[i] = queued
        for i, send in enumerate(sends):
            if results[i] is not None:
                continue
            try:
                async with connection.begin_nested():
                    results[i] = await _queue_one(connection, store.dialect, send, now)
            except IntegrityError as exc:
                results[i] = ConversationTaken(None) if send.conversation_id is None else exc
            except Exception as exc:  # reported to that sender; the others go on
                results[i] = exc
    return [r for r in results if r is not None]


def _message_values(send: NewOutbound, conversation_id: int, now: datetime) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "identity_id": send.identity_id,
        "account_id": send.account_id,
        "direction": Direction.OUT.value,
        "author": Author.AGENT.value,
        "agent_id": send.agent_id,
        "kind": send.kind.value,
        "text": send.text,
        "attachments": _attachments_json(send),
        "created_at": now,
        "delivery_state": DeliveryState.QUEUED.value,
        "delivery_changed_at": now,
        "template_name": send.template_name,
        "template_version": send.template_version,
        "tag": send.tag,
        "send_plan": send.send_plan,
    }


def _outbox_values(send: NewOutbound, message_id: int, conversation_id: int, now: datetime) -> dict[str, Any]:
    """A new outbox row: due now, not attempted."""
    return {
        "message_id": message_id,
        "account_id": send.account_id,
        "conversation_id": conversation_id,
        "state": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _attachments_json(send: NewOutbound) -> list[dict[str, Any]] | None:
    """As stored: SQL NULL when there are none."""
    return [a.to_json() for a in send.attachments] or None


def _queued_message(send: NewOutbound, message_id: int, conversation_id: int, now: datetime) -> Message:
    return Message(
        id=int(message_id),
        conversation_id=conversation_id,
        direction=Direction.OUT,
        author=Author.AGENT,
        kind=send.kind,
        created_at=now,
        text=send.text,
        attachments=send.attachments,
        delivery_state=DeliveryState.QUEUED,
        agent_id=send.agent_id,
        template_name=send.template_name,
        template_version=send.template_version,
    )


def _created(send: NewOutbound, message: Message) -> BusEvent:
    return MessageCreated(
        conversation_id=message.conversation_id,
        agent_id=send.agent_id,
        message_id=message.id,
        direction="out",
        identity_id=send.identity_id,
        state="queued",
    )


def _queue_replies_postgresql() -> Any:
    """PostgreSQL: a group's replies in one statement of fixed text, the rows as arrays. The multi-row ``INSERT``
    the other path builds differs in text with every group size: each size was a statement prepared anew (a round
    trip that waits a turn of the busy loop), about fifty of them a burst, and they pushed the outbox writer's own
    statements out of each connection's cache of prepared statements (ADR 0020). The messages are inserted in the
    arrays' order, so their new ids rise in it; the outbox rows and the conversations' last activity go in
    data-modifying CTEs of the same statement."""
    conversation_ids = bindparam("q_conversation_ids", type_=ARRAY(BigInteger))
    now = bindparam("q_now", type_=UTCDateTime())
    rows = (
        func.unnest(
            conversation_ids,
            bindparam("q_identity_ids", type_=ARRAY(BigInteger)),
            bindparam("q_account_ids", type_=ARRAY(messages.c.account_id.type)),
            bindparam("q_agent_ids", type_=ARRAY(BigInteger)),
            bindparam("q_kinds", type_=ARRAY(messages.c.kind.type)),
            bindparam("q_texts", type_=ARRAY(Text)),
            bindparam("q_attachments", type_=ARRAY(Text)),
            bindparam("q_template_names", type_=ARRAY(messages.c.template_name.type)),
            bindparam("q_template_versions", type_=ARRAY(Integer)),
            bindparam("q_tags", type_=ARRAY(messages.c.tag.type)),
            bindparam("q_send_plans", type_=ARRAY(Text)),
        )
        .table_valued(
            column("conversation_id", BigInteger),
            column("identity_id", BigInteger),
            column("account_id", messages.c.account_id.type),
            column("agent_id", BigInteger),
            column("kind", messages.c.kind.type),
            column("text", Text),
            column("attachments", Text),
            column("template_name", messages.c.template_name.type),
            column("template_version", Integer),
            column("tag", messages.c.tag.type),
            column("send_plan", Text),
            with_ordinality="place",
        )
        .render_derived(name="queued")
    )
    inserted = (
        insert(messages)
        .from_select(
            [
                "conversation_id",
                "identity_id",
                "account_id",
                "direction",
                "author",
                "agent_id",
                "kind",
                "text",
                "attachments",
                "created_at",
                "delivery_state",
                "delivery_changed_at",
                "template_name",
                "template_version",
                "tag",
                "send_plan",
            ],
            select(
                rows.c.conversation_id,
                rows.c.identity_id,
                rows.c.account_id,
                literal(Direction.OUT.value, messages.c.direction.type),
                literal(Author.AGENT.value, messages.c.author.type),
                rows.c.agent_id,
                rows.c.kind,
                rows.c.text,
                cast(rows.c.attachments, JSON),
                now,
                literal(DeliveryState.QUEUED.value, messages.c.delivery_state.type),
                now,
                rows.c.template_name,
                rows.c.template_version,
                rows.c.tag,
                cast(rows.c.send_plan, JSON),
            ).order_by(rows.c.place),
        )
        .returning(messages.c.id, messages.c.account_id, messages.c.conversation_id)
        .cte("inserted")
    )
    boxed = (
        insert(outbox)
        .from_select(
            ["message_id", "account_id", "conversation_id", "state", "attempts", "next_attempt_at", "created_at"],
            select(
                inserted.c.id,
                inserted.c.account_id,
                inserted.c.conversation_id,
                literal(OutboxState.PENDING, outbox.c.state.type),
                literal(0, Integer),
                now,
                now,
            ).order_by(inserted.c.id),
        )
        .returning(outbox.c.id, outbox.c.message_id)
        .cte("boxed")
    )
    touched = (
        update(conversations).where(conversations.c.id == any_(conversation_ids)).values(last_message_at=now)
    ).cte("touched")
    return select(boxed.c.message_id, boxed.c.id).add_cte(touched).order_by(boxed.c.message_id)


_QUEUE_REPLIES_POSTGRESQL = _queue_replies_postgresql()


async def _queue_replies(
    connection: AsyncConnection, dialect: str, sends: Sequence[NewOutbound], now: datetime
) -> list[Queued]:
    if dialect == "postgresql":
        pairs = (
            await connection.execute(
                _QUEUE_REPLIES_POSTGRESQL,
                {
                    "q_now": now,
                    "q_conversation_ids": [int(send.conversation_id or 0) for send in sends],
                    "q_identity_ids": [send.identity_id for send in sends],
                    "q_account_ids": [send.account_id for send in sends],
                    "q_agent_ids": [send.agent_id for send in sends],
                    "q_kinds": [send.kind.value for send in sends],
                    "q_texts": [send.text for send in sends],
                    "q_attachments": [
                        None if (attachments := _attachments_json(send)) is None else json.dumps(attachments)
                        for send in sends
                    ],
                    "q_template_names": [send.template_name for send in sends],
                    "q_template_versions": [send.template_version for send in sends],
                    "q_tags": [send.tag for send in sends],
                    "q_send_plans": [json.dumps(send.send_plan) for send in sends],
                },
            )
        ).all()
        if len(pairs) != len(sends):
            raise RuntimeError(f"queued {len(pairs)} replies of {len(sends)}")  # the transaction rolls back
        return _queued_replies(sends, [int(m) for m, _ in pairs], [int(o) for _, o in pairs], now)
    message_ids = [
        int(i)
        for i in (
            await connection.execute(
                insert(messages).returning(messages.c.id, sort_by_parameter_order=True),
                [_message_values(send, int(send.conversation_id or 0), now) for send in sends],
            )
        ).scalars()
    ]
    outbox_ids = [
        int(i)
        for i in (
            await connection.execute(
                insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True),
                [
                    _outbox_values(send, message_id, int(send.conversation_id or 0), now)
                    for send, message_id in zip(sends, message_ids, strict=True)
                ],
            )
        ).scalars()
    ]
    await connection.execute(
        update(conversations)
        .where(conversations.c.id.in_({int(send.conversation_id or 0) for send in sends}))
        .values(last_message_at=now)
    )
    return _queued_replies(sends, message_ids, outbox_ids, now)


def _queued_replies(
    sends: Sequence[NewOutbound], message_ids: Sequence[int], outbox_ids: Sequence[int], now: datetime
) -> list[Queued]:
    queued = []
    for send, message_id, outbox_id in zip(sends, message_ids, outbox_ids, strict=True):
        message = _queued_message(send, message_id, int(send.conversation_id or 0), now)
        queued.append(
            Queued(
                message=message, conversation=None, outbox_id=outbox_id, opened=False, events=[_created(send, message)]
            )
        )
    return queued


async def _queue_one(connection: AsyncConnection, dialect: str, send: NewOutbound, now: datetime) -> Queued:
    events: list[BusEvent] = []
    conversation_id = send.conversation_id
    opened = conversation_id is None
    if conversation_id is None:
        conversation_id = await _open_for_agent(connection, dialect, send, now)
        events.append(
            ConversationOpened(conversation_id=conversation_id, agent_id=send.agent_id, identity_id=send.identity_id)
        )
    message_id = (
        await connection.execute(
            insert(messages).values(_message_values(send, conversation_id, now)).returning(messages.c.id)
        )
    ).scalar_one()
    outbox_id = (
        await connection.execute(
            insert(outbox).values(_outbox_values(send, message_id, conversation_id, now)).returning(outbox.c.id)
        )
    ).scalar_one()
    await connection.execute(
        update(conversations).where(conversations.c.id == conversation_id).values(last_message_at=now)
    )
    if send.close_status is not None:
        await _close(connection, conversation_id, send.agent_id, send.close_status, now)
        events.append(
            ConversationClosed(conversation_id=conversation_id, agent_id=send.agent_id, status=send.close_status)
        )
    conversation: Conversation | None = None
    if opened or send.close_status is not None:
        conversation_row = (
            await connection.execute(select(conversations).where(conversations.c.id == conversation_id))
        ).one()
        conversation = conversation_from_row(conversation_row)
    message = _queued_message(send, message_id, conversation_id, now)
    events.insert(1 if opened else 0, _created(send, message))
    return Queued(
        message=message,
        conversation=conversation,
        outbox_id=int(outbox_id),
        opened=opened,
        events=events,
    )


async def _open_for_agent(connection: AsyncConnection, dialect: str, send: NewOutbound, now: datetime) -> int:
    """An active conversation owned by the agent: "send a new message" in the manual."""
    inserted = await connection.execute(
        upsert(
            dialect,
            conversations,
            {
                "account_id": send.account_id,
                "channel": (
                    await connection.execute(select(identities.c.channel).where(identities.c.id == send.identity_id))
                ).scalar_one(),
                "identity_id": send.identity_id,
                "queue_id": send.queue_id,
                "state": ConversationState.ACTIVE.value,
                "owner_agent_id": send.agent_id,
                "opened_at": now,
                "last_message_at": now,
            },
        )
        .on_conflict_do_nothing(index_elements=["identity_id"], index_where=conversations.c.state != "closed")
        .returning(conversations.c.id)
    )
    conversation_id = inserted.scalar_one_or_none()
    if conversation_id is None:
        raise ConversationTaken(None)
    await connection.execute(
        insert(participants).values(
            conversation_id=conversation_id, agent_id=send.agent_id, role="owner", joined_at=now
        )
    )
    await connection.execute(
        insert(timeline_events).values(
            conversation_id=conversation_id,
            kind=EventKind.OPENED.value,
            agent_id=send.agent_id,
            data={"outbound": True},
            created_at=now,
        )
    )
    return int(conversation_id)


async def _close(connection: AsyncConnection, conversation_id: int, agent_id: int, status: str, now: datetime) -> None:
    """Close as the close action does (``hub.store.routing.close_within``: the lifecycle's rule, one
    guarded update); a conversation closed or changed meanwhile is no longer this sender's to close."""
    try:
        await close_within(connection, conversation_id, agent_id, status, now=now)
    except RoutingRefused:
        raise ConversationTaken(conversation_id) from None


# ---------------------------------------------------------------- the outbox


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxJob:
    """One claimed row with what its delivery needs, read at claim time (the identity's window facts
    included, so the policy is asked with them as they are now). Only the columns the worker uses:
    building whole Message and Identity objects for every claimed row cost more CPU than the claim's SQL."""

    id: int
    attempts: int  # including this one
    account_id: str
    conversation_id: int
    message_id: int
    kind: MessageKind
    text: str | None
    attachments: tuple[Attachment, ...]
    provider_message_id: str | None  # set: the provider accepted it before a crash
    sent_at: datetime | None
    tag: str | None
    template_name: str | None  # of the send plan: the rest of it is the API's decision, asked again at send time
    binding: dict[str, Any] | None  # the send plan's approved provider template, as stored
    channel: Channel  # the identity's
    recipient_id: str  # the identity's id on the provider
    first_inbound_at: datetime | None
    last_inbound_at: datetime | None
    subscription: Subscription | None
    welcome_sent: bool


# what a claimed row's delivery needs beside its outbox id and attempt count, in ``_job``'s order
_JOB_COLUMNS = (
    messages.c.account_id,
    messages.c.conversation_id,
    messages.c.id,
    messages.c.kind,
    messages.c.text,
    messages.c.attachments,
    messages.c.provider_message_id,
    messages.c.sent_at,
    messages.c.tag,
    # only the parts delivery reads: parsing the whole plan (the API's decision, with its times) was a
    # quarter of the claim's CPU on SQLite
    messages.c.send_plan[("template", "name")].as_string(),
    messages.c.send_plan["binding"],
    identities.c.channel,
    identities.c.external_id,
    identities.c.first_inbound_at,
    identities.c.last_inbound_at,
    identities.c.subscription,
    identities.c.welcome_sent,
)
_CLAIM_NOW = bindparam("claim_now", type_=outbox.c.next_attempt_at.type)
# a claimed row: sending under this worker's lease, one more attempt counted
_CLAIMED = {
    "state": OutboxState.SENDING,
    "locked_until": bindparam("claim_until", type_=outbox.c.locked_until.type),
    "locked_by": bindparam("claim_worker", type_=outbox.c.locked_by.type),
    "attempts": outbox.c.attempts + 1,
}


def _due(table: Any) -> Any:
    """The row may be attempted at ``claim_now``: pending and its time has come, or claimed by a worker whose
    lease ran out (it died)."""
    return or_(
        and_(table.c.state == OutboxState.PENDING, table.c.next_attempt_at <= _CLAIM_NOW),
        and_(table.c.state == OutboxState.SENDING, table.c.locked_until < _CLAIM_NOW),
    )


def _unfinished(table: Any) -> Any:
    # literals, so that the partial index's predicate is provable under a generic (prepared) plan too
    return table.c.state.in_([literal_column(f"'{state}'") for state in _UNFINISHED])


def _claim_heads(dialect: str) -> Any:
    """Claim up to ``claim_limit`` heads, each the oldest unfinished row of its conversation (only a head is
    ever due on its own, so a conversation's messages leave in order); returns their ids and conversations."""
    earlier = outbox.alias("earlier")
    # A scalar subquery, not NOT EXISTS: PostgreSQL turns NOT EXISTS into an anti-join, and with the stale
    # statistics of a queue that just filled up it picked a nested loop over the whole backlog (about 160 ms
    # for 4,000 due rows). A scalar subquery stays one probe of ix_outbox_unfinished per candidate.
    blocked = (
        select(earlier.c.id)
        .where(earlier.c.conversation_id == outbox.c.conversation_id, earlier.c.id < outbox.c.id, _unfinished(earlier))
        .limit(1)
        .scalar_subquery()
    )
    candidates = (
        select(outbox.c.id)
        .where(_due(outbox), blocked.is_(None))
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(bindparam("claim_limit", type_=Integer()))
    )
    if dialect == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=outbox)
    return (
        update(outbox)
        .where(outbox.c.id.in_(candidates.scalar_subquery()))
        .values(_CLAIMED)
        .returning(outbox.c.id, outbox.c.conversation_id)
    )


def _claim_in_one_statement_postgresql() -> Any:
    """PostgreSQL: the heads, the due rows behind them and what their delivery needs, in one statement (two
    data-modifying CTEs). The first claim of a burst takes everything due at once (ADR 0015), and nothing is
    sent until it is back: as four statements that was four round trips and three result sets to process on
    the client (heads, the rows behind them, the load) before the first send.

    The rows behind a head are not locked by a ``SELECT ... FOR UPDATE`` first (a window function cannot
    take one): nobody else can claim them while their head is claimed (a claimed head is unfinished, so
    every row behind it is blocked), and the ``taken`` update locks the ones it takes."""
    heads = _claim_heads("postgresql").returning(outbox.c.message_id, outbox.c.attempts).cte("heads")
    behind = (
        select(
            outbox.c.id,
            func.row_number().over(partition_by=outbox.c.conversation_id, order_by=outbox.c.id).label("place"),
            # rows at or before this one that are not due: the run stops at the first of them, leaving no gap
            func.sum(case((_due(outbox), 0), else_=1))
            .over(partition_by=outbox.c.conversation_id, order_by=outbox.c.id)
            .label("not_due"),
        )
        .where(
            outbox.c.conversation_id.in_(select(heads.c.conversation_id)),
            _unfinished(outbox),
            outbox.c.id.notin_(select(heads.c.id)),
        )
        .cte("behind")
    )
    follow = bindparam("claim_follow", type_=Integer())
    taken = (
        update(outbox)
        .where(outbox.c.id.in_(select(behind.c.id).where(behind.c.not_due == 0, behind.c.place <= follow)))
        .values(_CLAIMED)
        .returning(outbox.c.id, outbox.c.message_id, outbox.c.attempts)
        .cte("taken")
    )
    # this statement's own reads of outbox do not see its CTEs' updates: the ids and the attempt counts come
    # from their RETURNING
    claimed = union_all(
        select(heads.c.id, heads.c.message_id, heads.c.attempts),
        select(taken.c.id, taken.c.message_id, taken.c.attempts),
    ).subquery("claimed")
    return (
        select(claimed.c.id, claimed.c.attempts, *_JOB_COLUMNS)
        .select_from(
            claimed.join(messages, messages.c.id == claimed.c.message_id).join(
                identities, identities.c.id == messages.c.identity_id
            )
        )
        .order_by(claimed.c.id)
    )


# SQLite: the heads; their conversations' unfinished rows, each with whether it is due; the update that takes
# the followers; the load. Built once: building them and their cache keys on every call cost more CPU than
# running them.
_CLAIM_HEADS_SQLITE = _claim_heads("sqlite")
_BEHIND_SQLITE = (
    select(outbox.c.id, outbox.c.conversation_id, _due(outbox).label("due"))
    .where(in_json_array(outbox.c.conversation_id, "follow_conversations"), _unfinished(outbox))
    .order_by(outbox.c.conversation_id, outbox.c.id)
)
_TAKE_SQLITE = update(outbox).where(in_json_array(outbox.c.id, "follow_ids")).values(_CLAIMED)
_LOAD_SQLITE = (
    select(outbox.c.id, outbox.c.attempts, *_JOB_COLUMNS)
    .join(messages, messages.c.id == outbox.c.message_id)
    .join(identities, identities.c.id == messages.c.identity_id)
    .where(in_json_array(outbox.c.id, "claim_ids"))
    .order_by(outbox.c.id)
)
_CLAIM_POSTGRESQL = _claim_in_one_statement_postgresql()


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


# value -> member, looked up per claimed row (calling the Enum class costs several times more)
_KINDS = {k.value: k for k in MessageKind}
_CHANNELS = {c.value: c for c in Channel}
_SUBSCRIPTIONS = {s.value: s for s in Subscription}


def _job(row: Any) -> OutboxJob:
    (
        outbox_id,
        attempts,
        account_id,
        conversation_id,
        message_id,
        kind,
        text,
        attachments,
        provider_message_id,
        sent_at,
        tag,
        template_name,
        binding,
        channel,
        external_id,
        first_inbound_at,
        last_inbound_at,
        subscription,
        welcome_sent,
    ) = row
    return OutboxJob(
        id=int(outbox_id),
        attempts=int(attempts),
        account_id=account_id,
        conversation_id=int(conversation_id),
        message_id=int(message_id),
        kind=_KINDS[kind],
        text=text,
        attachments=tuple(Attachment.from_json(a) for a in attachments) if attachments else (),
        provider_message_id=provider_message_id,
        sent_at=sent_at,
        tag=tag,
        template_name=template_name,
        binding=binding,
        channel=_CHANNELS[channel],
        recipient_id=external_id,
        first_inbound_at=first_inbound_at,
        last_inbound_at=last_inbound_at,
        subscription=_SUBSCRIPTIONS[subscription] if subscription else None,
        welcome_sent=bool(welcome_sent),
    )


async def claim_outbox(
    store: Store, *, now: datetime, worker: str, lease: timedelta, limit: int = 1
) -> list[OutboxJob]:
    """Claim up to ``limit`` due rows atomically: pending rows whose time has come, and rows
    whose lease expired (their worker died). Only the oldest unfinished row of a
    conversation is ever due, so a conversation's messages leave in order."""
    async with store.write() as connection:
        return await _claim(connection, store.dialect, now=now, worker=worker, lease=lease, limit=limit)


async def _claim(
    connection: AsyncConnection,
    dialect: str,
    *,
    now: datetime,
    worker: str,
    lease: timedelta,
    limit: int,
    follow: int = 0,
) -> list[OutboxJob]:
    """Up to ``limit`` heads (each the oldest unfinished row of its conversation) and, with ``follow``,
    up to that many due rows queued behind each head, in the same transaction. Ordered by id, so each
    conversation's rows come in the order they must leave."""
    parameters = {"claim_now": now, "claim_until": now + lease, "claim_worker": worker, "claim_limit": limit}
    if dialect == "postgresql":
        claimed = await connection.execute(_CLAIM_POSTGRESQL, {**parameters, "claim_follow": follow})
        return [_job(row) for row in claimed.all()]
    heads = (await connection.execute(_CLAIM_HEADS_SQLITE, parameters)).all()
    if not heads:
        return []
    ids = [int(outbox_id) for outbox_id, _ in heads]
    if follow:
        conversations = sorted({int(conversation_id) for _, conversation_id in heads})
        rows = (
            await connection.execute(_BEHIND_SQLITE, {"claim_now": now, "follow_conversations": conversations})
        ).all()
        followers = _followers(rows, set(ids), follow)
        if followers:
            await connection.execute(
                _TAKE_SQLITE, {"follow_ids": followers, "claim_until": now + lease, "claim_worker": worker}
            )
            ids += followers
    return [_job(row) for row in (await connection.execute(_LOAD_SQLITE, {"claim_ids": ids})).all()]


async def release_claims(store: Store, outbox_ids: Sequence[int], *, worker: str) -> None:
    """Give back claimed rows that were never attempted (the rest of a run whose earlier message must
    wait for a retry, or whose lease ran short): pending again, the claim's attempt not counted."""
    if not outbox_ids:
        return
    async with store.write() as connection:
        await connection.execute(
            update(outbox)
            .where(
                outbox.c.id.in_(list(outbox_ids)),
                outbox.c.state == OutboxState.SENDING,
                outbox.c.locked_by == worker,
            )
            .values(state=OutboxState.PENDING, locked_until=None, locked_by=None, attempts=outbox.c.attempts - 1)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """The provider accepted ``job``'s message under ``provider_message_id``."""

    job: OutboxJob
    provider_message_id: str
    accepted_at: datetime
    #: the account's provider echoes its sends (``ChannelAccount.echoes_own_sends``): an echo of this one
    #: stored before it (as a message sent outside the hub) is removed with the acceptance
    echoed: bool = False


_ACCEPTED_AT = bindparam("a_at", type_=UTCDateTime())
_STILL_QUEUED = messages.c.delivery_state == DeliveryState.QUEUED.value
# the state moves forward only (an early receipt may have moved it further), and with it the time it changed
_ACCEPT_MESSAGE = PerRow(
    update(messages)
    .where(messages.c.id == bindparam("a_id"))
    .values(
        provider_message_id=bindparam("a_pid"),
        sent_at=_ACCEPTED_AT,
        delivery_state=case((_STILL_QUEUED, DeliveryState.SENT.value), else_=messages.c.delivery_state),
        delivery_changed_at=case((_STILL_QUEUED, _ACCEPTED_AT), else_=messages.c.delivery_changed_at),
    ),
    ("a_id", "a_pid", "a_at"),
)
_OUTBOX_DONE = PerRow(
    update(outbox)
    .where(outbox.c.id == bindparam("done_id"))
    .values(state=OutboxState.DONE, locked_until=None, last_error=None),
    ("done_id",),
)


def _accept_all_postgresql() -> Any:
    """PostgreSQL: both acceptance updates and the early-receipts lookup in one statement, the rows as arrays.
    The writer's transactions run while a hundred sends are in flight, and each round trip then waits a turn
    of the busy event loop (20-60 ms measured): three fewer round trips per transaction, and no statement prepared anew
    for every length of an ``IN`` list."""
    message_ids = bindparam("a_message_ids", type_=ARRAY(BigInteger))
    provider_ids = bindparam("a_provider_ids", type_=ARRAY(messages.c.provider_message_id.type))
    outbox_ids = bindparam("a_outbox_ids", type_=ARRAY(BigInteger))
    accepted = (
        func.unnest(message_ids, provider_ids, bindparam("a_accepted_at", type_=ARRAY(UTCDateTime())), outbox_ids)
        .table_valued(
            column("message_id", BigInteger),
            column("provider_message_id", messages.c.provider_message_id.type),
            column("accepted_at", UTCDateTime()),
            column("outbox_id", BigInteger),
        )
        .render_derived(name="accepted")
    )
    sent = (
        update(messages)
        # the array's ids again, as a condition on the table's own key: joined to the unnest alone, the
        # planner may pick a hash join over a scan of the whole table
        .where(messages.c.id == accepted.c.message_id, messages.c.id == any_(message_ids))
        .values(
            provider_message_id=accepted.c.provider_message_id,
            sent_at=accepted.c.accepted_at,
            delivery_state=case((_STILL_QUEUED, DeliveryState.SENT.value), else_=messages.c.delivery_state),
            delivery_changed_at=case((_STILL_QUEUED, accepted.c.accepted_at), else_=messages.c.delivery_changed_at),
        )
        .cte("sent")
    )
    done = (
        update(outbox)
        .where(outbox.c.id == accepted.c.outbox_id, outbox.c.id == any_(outbox_ids))
        .values(state=OutboxState.DONE, locked_until=None, last_error=None)
        .cte("done")
    )
    # the CTEs' updates run to completion whether or not the query reads them; pending_receipts is not one
    # of the tables they change, so reading it in the same statement sees what a later statement would
    return (
        select(pending_receipts)
        .add_cte(sent, done)
        .where(
            pending_receipts.c.account_id
            == any_(bindparam("a_accounts", type_=ARRAY(pending_receipts.c.account_id.type))),
            pending_receipts.c.provider_message_id == any_(provider_ids),
        )
    )


_ACCEPT_ALL_POSTGRESQL = _accept_all_postgresql()


async def _accept_in_one_statement(
    connection: AsyncConnection, items: Sequence[Accepted], channels: dict[str, Channel]
) -> list[Any]:
    """Store the acceptances; returns the early receipts found for them (not applied yet)."""
    found = await connection.execute(
        _ACCEPT_ALL_POSTGRESQL,
        {
            "a_message_ids": [i.job.message_id for i in items],
            "a_provider_ids": [i.provider_message_id for i in items],
            "a_accepted_at": [i.accepted_at for i in items],
            "a_outbox_ids": [i.job.id for i in items],
            "a_accounts": sorted(channels),
        },
    )
    return list(found.all())


async def record_and_claim(
    store: Store,
    items: Sequence[Accepted],
    limit: int,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    follow: int = 0,
) -> tuple[list[BusEvent], list[OutboxJob]]:
    """Store acceptances, then claim up to ``limit`` heads for ``worker`` (with ``follow``: and the due rows
    queued behind each, see ``_claim``), in one transaction (all or none): the delivery workers of a process
    share one commit for both. The claim sees the acceptances, so the next message of a conversation whose
    previous one was just accepted is due.

    On PostgreSQL, acceptances without a claim (and without an echo to clean up) are one statement
    that commits on its own: atomic by itself, and one round trip instead of a transaction's three
    (``BEGIN``, the statement, ``COMMIT``), each of which waits a turn of an event loop busy with a hundred
    sends (ADR 0019)."""
    if store.dialect == "postgresql" and items and not limit and not _echoes_possible(items):
        return await _record_accepted_alone(store, items, now), []
    async with store.write() as connection:
        events = await _record_accepted(connection, store.dialect, items, now=now) if items else []
        jobs = (
            await _claim(connection, store.dialect, now=now, worker=worker, lease=lease, limit=limit, follow=follow)
            if limit
            else []
        )
    return events, jobs


def _echoes_possible(items: Sequence[Accepted]) -> bool:
    return any(item.echoed for item in items)


def _sent_events(items: Sequence[Accepted]) -> list[BusEvent]:
    return [
        MessageDelivery(
            conversation_id=i.job.conversation_id, message_id=i.job.message_id, state=DeliveryState.SENT.value
        )
        for i in items
    ]


async def _record_accepted_alone(store: Store, items: Sequence[Accepted], now: datetime) -> list[BusEvent]:
    """PostgreSQL: the acceptance statement on its own (autocommit). Early receipts it found are applied in a
    transaction after it; any left behind by a stop in between are applied by ``outbox_upkeep``."""
    channels = {item.job.account_id: item.job.channel for item in items}
    async with store.autocommit() as connection:
        pending = await _accept_in_one_statement(connection, items, channels)
    early: list[BusEvent] = []
    if pending:
        async with store.write() as connection:
            early = await apply_found_receipts(connection, channels, pending, now)
    return _sent_events(items) + early


async def outbox_upkeep(store: Store, account_ids: Sequence[str], *, now: datetime) -> list[BusEvent]:
    """What the outbox does about once a second, apart from the acceptances: stamp the accounts' last send
    (account health), forget early receipts older than a day, and apply early receipts whose message has its
    provider id by now (``apply_known_receipts``)."""
    async with store.write() as connection:
        for account_id in sorted(account_ids):
            await _health(connection, store.dialect, account_id, {"last_send_at": now})
        await prune_pending_receipts(connection, now)
        return await apply_known_receipts(connection, now)


async def _record_accepted(
    connection: AsyncConnection, dialect: str, items: Sequence[Accepted], *, now: datetime
) -> list[BusEvent]:
    by_account: dict[str, list[Accepted]] = {}
    for item in items:
        by_account.setdefault(item.job.account_id, []).append(item)
    for account_id, group in by_account.items():
        if not group[0].echoed:
            continue
        # an echo of one of these sends (Messenger's) may have arrived first and been stored on its own
        await connection.execute(
            delete(messages).where(
                messages.c.account_id == account_id,
                messages.c.provider_message_id.in_([i.provider_message_id for i in group]),
                messages.c.id.notin_([i.job.message_id for i in group]),
                messages.c.author == Author.SYSTEM.value,
            )
        )
    channels = {account_id: group[0].job.channel for account_id, group in by_account.items()}
    if dialect == "postgresql":
        pending = await _accept_in_one_statement(connection, items, channels)
        early = await apply_found_receipts(connection, channels, pending, now) if pending else []
    else:
        # two executemanys of statements compiled once, each one call into SQLite
        await _ACCEPT_MESSAGE.run(connection, [(i.job.message_id, i.provider_message_id, i.accepted_at) for i in items])
        await _OUTBOX_DONE.run(connection, [(i.job.id,) for i in items])
        early = await apply_pending_receipts(connection, channels, [i.provider_message_id for i in items], now)
    return _sent_events(items) + early


async def record_retry(store: Store, job: OutboxJob, *, next_attempt_at: datetime, error: str, now: datetime) -> None:
    """A transient failure: release the row until ``next_attempt_at``; the message stays queued."""
    async with store.write() as connection:
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == job.id, outbox.c.state == OutboxState.SENDING)
            .values(
                state=OutboxState.PENDING,
                next_attempt_at=next_attempt_at,
                locked_until=None,
                locked_by=None,
                last_error=error[:1000],
            )
        )
        await _health(connection, store.dialect, job.account_id, {"last_send_error": error, "last_send_error_at": now})


async def record_failed(
    store: Store, job: OutboxJob, *, code: str, reason: str, now: datetime, provider_error: bool = True
) -> list[BusEvent]:
    """Failed for good: the message shows the code and a reason an agent understands."""
    async with store.write() as connection:
        await connection.execute(
            update(messages)
            .where(messages.c.id == job.message_id)
            .values(
                delivery_state=DeliveryState.FAILED.value,
                delivery_changed_at=now,
                error_code=code[:64],
                error_reason=reason,
            )
        )
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == job.id)
            .values(state=OutboxState.FAILED, locked_until=None, last_error=f"{code}: {reason}"[:1000])
        )
        if provider_error:
            await _health(
                connection,
                store.dialect,
                job.account_id,
                {"last_send_error": f"{code}: {reason}", "last_send_error_at": now},
            )
    return [
        MessageDelivery(
            conversation_id=job.conversation_id,
            message_id=job.message_id,
            state=DeliveryState.FAILED.value,
            error_code=code,
            error_reason=reason,
        )
    ]


async def _health(connection: AsyncConnection, dialect: str, account_id: str, values: dict[str, Any]) -> None:
    stmt = upsert(dialect, account_health, {"account_id": account_id, **values})
    await connection.execute(stmt.on_conflict_do_update(index_elements=["account_id"], set_=values))


async def outbox_counts(store: Store) -> dict[str, int]:
    """Rows per outbox state (for tests, metrics and the bench)."""
    async with store.read() as connection:
        rows = await connection.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
        return {str(state): int(count) for state, count in rows.all()}
