"""What the outbox's queries share on both engines: its row types, the values of a queued message and its
outbox row, what a claim reads and marks, and ``OutboxWriter``, the interface of the hot statements that
each engine implements in its own module (``_outbox_sqlite``, ``_outbox_postgresql``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from sqlalchemy import Integer, and_, bindparam, case, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Attachment, Author, Button, Channel, DeliveryState, Direction, MessageKind, Subscription
from hub.store.tables import identities, messages, outbox

__all__ = [
    "CLAIMED",
    "JOB_COLUMNS",
    "Accepted",
    "NewOutbound",
    "OutboxJob",
    "OutboxState",
    "OutboxWriter",
    "attachments_json",
    "claim_heads",
    "due",
    "is_head",
    "job",
    "message_values",
    "now_sent",
    "outbox_values",
    "unfinished",
]


class OutboxState:
    PENDING = "pending"  # waiting for its (next) attempt
    SENDING = "sending"  # claimed by a worker until locked_until
    DONE = "done"  # the provider accepted it
    FAILED = "failed"  # refused for good, out of attempts, or stopped by the policy


_UNFINISHED = (OutboxState.PENDING, OutboxState.SENDING)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewOutbound:
    """One accepted send, as the API hands it to the store."""

    account_id: str
    identity_id: int
    agent_id: int | None  # None only for a bot's message (``author`` bot)
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
    author: Author = Author.AGENT  # or a bot (hub/usecases/bots.py)
    #: a bot's reply: written only while its conversation is with a bot and in one of these queues (the bot's),
    #: as checked in the transaction that writes it (``hub.store.bots.with_bots``)
    bot_queues: tuple[str, ...] = ()
    # the audit log's entries for this send (hub.audit.entry_values), given its conversation and message ids
    # once written: appended in the send's own transaction, so a queued send is never missing from the log
    audit: Callable[[int, int], Sequence[Mapping[str, Any]]] | None = None


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
    buttons: tuple[Button, ...] = ()  # the send plan's quick replies, for a provider that shows them
    automated: bool = False  # written by a bot or the hub itself (the policy: never with HUMAN_AGENT)


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """The provider accepted ``job``'s message under ``provider_message_id``."""

    job: OutboxJob
    provider_message_id: str
    accepted_at: datetime
    #: the account's provider echoes its sends (``ChannelAccount.echoes_own_sends``): an echo of this one
    #: stored before it (as a message sent outside the hub) is removed with the acceptance
    echoed: bool = False


class OutboxWriter(Protocol):
    """The outbox's hot statements on one engine; the Store's dialect picks the implementation once
    (``hub.store.outbox.outbox_writer``). Each runs inside the caller's transaction."""

    accepts_alone: ClassVar[bool]
    """Acceptances without a claim may be stored by ``accept`` on an autocommit connection: one statement,
    atomic by itself (ADR 0019)."""

    async def insert_replies(
        self, connection: AsyncConnection, sends: Sequence[NewOutbound], now: datetime
    ) -> tuple[list[int], list[int]]:
        """Queue replies in their existing conversations (each ``conversation_id`` set, each by its own
        ``author``: an agent or a bot): the messages, their outbox rows (due now) and the conversations' last
        activity. Returns the message ids and outbox ids, in the order of ``sends``."""
        ...

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
        """Up to ``limit`` heads (each the oldest unfinished row of its conversation) and, with ``follow``, up
        to that many due rows queued behind each head (the run stops at the first row not due). Each claimed
        row is sending under ``worker``'s lease until ``now + lease``, one more attempt counted. Ordered by
        id, so each conversation's rows come in the order they must leave."""
        ...

    async def claim_queued(
        self, connection: AsyncConnection, outbox_ids: Sequence[int], *, now: datetime, worker: str, lease: timedelta
    ) -> list[OutboxJob]:
        """Claim, of the rows just queued as ``outbox_ids`` in this transaction, those that are the head of their
        conversation, exactly as ``claim`` marks a row (sending under ``worker``'s lease until ``now + lease``,
        one attempt counted), and return them as ``claim`` does: the queueing transaction hands them to a sender
        (ADR 0041). A row behind an unfinished one stays pending for a claim."""
        ...

    async def accept(
        self, connection: AsyncConnection, items: Sequence[Accepted], channels: Mapping[str, Channel]
    ) -> list[Any]:
        """Store acceptances: each message sent under its provider id (its delivery state moves forward
        only: an early receipt may have moved it further), each outbox row done. Returns the rows of
        ``pending_receipts`` waiting for these provider ids (``channels``: each account's channel), not applied."""
        ...


def message_values(send: NewOutbound, conversation_id: int, now: datetime) -> dict[str, Any]:
    """A queued message's row."""
    return {
        "conversation_id": conversation_id,
        "identity_id": send.identity_id,
        "account_id": send.account_id,
        "direction": Direction.OUT.value,
        "author": send.author.value,
        "agent_id": send.agent_id,
        "kind": send.kind.value,
        "text": send.text,
        "attachments": attachments_json(send),
        "created_at": now,
        "delivery_state": DeliveryState.QUEUED.value,
        "delivery_changed_at": now,
        "template_name": send.template_name,
        "template_version": send.template_version,
        "tag": send.tag,
        "send_plan": send.send_plan,
    }


def outbox_values(send: NewOutbound, message_id: int, conversation_id: int, now: datetime) -> dict[str, Any]:
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


def attachments_json(send: NewOutbound) -> list[dict[str, Any]] | None:
    """As stored: SQL NULL when there are none."""
    return [a.to_json() for a in send.attachments] or None


_STILL_QUEUED = messages.c.delivery_state == DeliveryState.QUEUED.value


def now_sent(at: Any) -> dict[str, Any]:
    """An accepted message's delivery state and the time it changed: sent ``at``, unless an early receipt
    moved it further already (the state moves forward only, and with it the time it changed)."""
    return {
        "delivery_state": case((_STILL_QUEUED, DeliveryState.SENT.value), else_=messages.c.delivery_state),
        "delivery_changed_at": case((_STILL_QUEUED, at), else_=messages.c.delivery_changed_at),
    }


# what a claimed row's delivery needs beside its outbox id and attempt count, in ``job``'s order
JOB_COLUMNS = (
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
    messages.c.send_plan["buttons"],  # quick replies (hub/quick_replies.py); JSON null when there are none
    messages.c.author,
)
_CLAIM_NOW = bindparam("claim_now", type_=outbox.c.next_attempt_at.type)
# a claimed row: sending under this worker's lease, one more attempt counted
CLAIMED = {
    "state": OutboxState.SENDING,
    "locked_until": bindparam("claim_until", type_=outbox.c.locked_until.type),
    "locked_by": bindparam("claim_worker", type_=outbox.c.locked_by.type),
    "attempts": outbox.c.attempts + 1,
}


def due(table: Any) -> Any:
    """The row may be attempted at ``claim_now``: pending and its time has come, or claimed by a worker whose
    lease ran out (it died)."""
    return or_(
        and_(table.c.state == OutboxState.PENDING, table.c.next_attempt_at <= _CLAIM_NOW),
        and_(table.c.state == OutboxState.SENDING, table.c.locked_until < _CLAIM_NOW),
    )


def unfinished(table: Any) -> Any:
    # literals, so that the partial index's predicate is provable under a generic (prepared) plan too
    return table.c.state.in_([literal_column(f"'{state}'") for state in _UNFINISHED])


def is_head() -> Any:
    """The outbox row is the oldest unfinished row of its conversation: no earlier one waits or is being sent
    (only a head may be sent, so a conversation's messages leave in order)."""
    earlier = outbox.alias("earlier")
    # A scalar subquery, not NOT EXISTS: PostgreSQL turns NOT EXISTS into an anti-join, and with the stale
    # statistics of a queue that just filled up it picked a nested loop over the whole backlog (about 160 ms
    # for 4,000 due rows). A scalar subquery stays one probe of ix_outbox_unfinished per candidate.
    blocked = (
        select(earlier.c.id)
        .where(earlier.c.conversation_id == outbox.c.conversation_id, earlier.c.id < outbox.c.id, unfinished(earlier))
        .limit(1)
        .scalar_subquery()
    )
    return blocked.is_(None)


def claim_heads(*, skip_locked: bool) -> Any:
    """Claim up to ``claim_limit`` heads, each the oldest unfinished row of its conversation (only a head is
    ever due on its own, so a conversation's messages leave in order); returns their ids and conversations.
    ``skip_locked``: candidates another transaction holds are passed over (``FOR UPDATE SKIP LOCKED``)."""
    candidates = (
        select(outbox.c.id)
        .where(due(outbox), is_head())
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(bindparam("claim_limit", type_=Integer()))
    )
    if skip_locked:
        candidates = candidates.with_for_update(skip_locked=True, of=outbox)
    return (
        update(outbox)
        .where(outbox.c.id.in_(candidates.scalar_subquery()))
        .values(CLAIMED)
        .returning(outbox.c.id, outbox.c.conversation_id)
    )


# value -> member, looked up per claimed row (calling the Enum class costs several times more)
_KINDS = {k.value: k for k in MessageKind}
_AUTOMATED = frozenset({Author.BOT.value, Author.SYSTEM.value})
_CHANNELS = {c.value: c for c in Channel}
_SUBSCRIPTIONS = {s.value: s for s in Subscription}


def job(row: Any) -> OutboxJob:
    """A claimed row: its outbox id and attempts, then ``JOB_COLUMNS``."""
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
        buttons,
        author,
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
        buttons=tuple(Button(title=str(b["title"]), payload=str(b["payload"])) for b in buttons or ()),
        automated=author in _AUTOMATED,
    )
