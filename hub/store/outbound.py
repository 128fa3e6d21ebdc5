"""Queueing outbound messages: accepting a send writes the message (queued) and its outbox row in one
transaction, opening or closing the conversation too when the send asks for it.

The outbox (``hub.store.outbox``) then delivers it. Replies in existing conversations are written set-based
by the engine's ``OutboxWriter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus import BusEvent
from hub.events import ConversationClosed, ConversationOpened, MessageCreated
from hub.model import Author, Conversation, ConversationState, DeliveryState, Direction, Message
from hub.store._db import Store
from hub.store._opening import insert_open
from hub.store._outbox_rows import NewOutbound, OutboxJob, message_values, outbox_values
from hub.store.audit import append_entries
from hub.store.bots import answered, with_bots
from hub.store.conversations import conversation_from_row
from hub.store.media import insert_sent_attachments
from hub.store.messages import load_identity, open_conversation_of
from hub.store.outbox import outbox_writer
from hub.store.routing import RoutingRefused, close_within
from hub.store.tables import conversations, identities, messages, outbox, participants
from hub.store.webhooks_out import record_outgoing

__all__ = [
    "ConversationTaken",
    "HandOff",
    "NewOutbound",
    "NotTheBots",
    "Queued",
    "load_identity",  # the API reads these from here
    "open_conversation_of",
    "queue_outbound",
    "queue_outbound_group",
    "start_chat",
]


class ConversationTaken(Exception):
    """The identity's open conversation belongs to someone else (or appeared meanwhile)."""

    def __init__(self, conversation_id: int | None) -> None:
        super().__init__(f"conversation {conversation_id} is already open")
        self.conversation_id = conversation_id


class NotTheBots(Exception):
    """A bot's reply in a conversation the bot may no longer answer, as found when it was to be written:
    ``reason`` ``not_found`` (gone from the bot's queues) or ``not_with_bot`` (an agent has it now)."""

    def __init__(self, conversation_id: int, reason: str) -> None:
        super().__init__(f"conversation {conversation_id}: {reason}")
        self.conversation_id = conversation_id
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOff:
    """Claim replies for a sender in the transaction that queues them (ADR 0041): up to ``limit`` rows, marked
    as a claim by ``worker`` would mark them (sending, leased until the group's now + ``lease``)."""

    worker: str
    lease: timedelta
    limit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    message: Message
    conversation: Conversation | None  # read back when the send opened or closed it
    outbox_id: int
    opened: bool
    events: list[BusEvent] = field(default_factory=list)
    #: claimed for a sender in the queueing transaction (``HandOff``): the caller must send it, or leave it to
    #: be claimed again once its lease runs out
    handed: OutboxJob | None = None


async def queue_outbound(store: Store, send: NewOutbound, now: datetime) -> Queued:
    """Write the message and its outbox row in one transaction (opening or closing the conversation too)."""
    (result,) = await queue_outbound_group(store, [send], now)
    if isinstance(result, BaseException):
        raise result
    return result


async def queue_outbound_group(
    store: Store, sends: Sequence[NewOutbound], now: datetime, *, hand_off: HandOff | None = None
) -> list[Queued | BaseException]:
    """Several accepted sends in one transaction (group commit). Replies in an existing
    conversation (the common case, an agent's or a bot's) are written set-based, three statements for the
    whole group; a send that opens or closes a conversation gets its own savepoint, so one that fails (say, a
    conversation opened meanwhile) is reported and does not sink the others. A bot's reply is written only
    while its conversation is still the bot's (``NotTheBots`` otherwise), and stops the bot's silence clock
    in the same transaction. With ``hand_off``, the set-based replies that are the head of their conversation
    are claimed in the same transaction (``Queued.handed``), so that no claim of its own has to find them.
    Raises only when the commit itself fails (then none of them was accepted)."""
    results: list[Queued | BaseException | None] = [None] * len(sends)
    bots = [i for i, send in enumerate(sends) if send.author is Author.BOT and send.conversation_id is not None]
    async with store.write() as connection:
        checked = await with_bots(connection, [(int(sends[i].conversation_id or 0), sends[i].bot_queues) for i in bots])
        for i, reason in zip(bots, checked, strict=True):
            if reason is not None:
                results[i] = NotTheBots(int(sends[i].conversation_id or 0), reason)
        simple = [
            i
            for i, send in enumerate(sends)
            if results[i] is None
            and send.conversation_id is not None
            and send.close_status is None
            and send.author in _SET_BASED
        ]
        if simple:
            replies = await _queue_replies(connection, store, [sends[i] for i in simple], now)
            if hand_off is not None and hand_off.limit > 0:
                replies = await _hand_off(connection, store, replies, hand_off, now)
            for i, queued in zip(simple, replies, strict=True):
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
        for result in results:  # an agent's uploaded files: kept with the message, in its transaction
            if isinstance(result, Queued) and any(a.upload_id for a in result.message.attachments):
                await insert_sent_attachments(connection, result.message.id, result.message.attachments, now)
        # the bots that answered: their silence clocks stop with the reply
        await answered(
            connection, [int(sends[i].conversation_id or 0) for i in bots if isinstance(results[i], Queued)], now
        )
        accepted = [event for r in results if isinstance(r, Queued) for event in r.events]
        await record_outgoing(connection, accepted, now=now)
        await append_entries(connection, _audit_entries(sends, results))
    return [r for r in results if r is not None]


_SET_BASED = (Author.AGENT, Author.BOT)


def _audit_entries(sends: Sequence[NewOutbound], results: Sequence[Queued | BaseException | None]) -> list[Any]:
    """The audit entries of the sends that were queued (a send that failed has none: nothing happened)."""
    return [
        entry
        for send, result in zip(sends, results, strict=True)
        if send.audit is not None and isinstance(result, Queued)
        for entry in send.audit(result.message.conversation_id, result.message.id)
    ]


def _queued_message(send: NewOutbound, message_id: int, conversation_id: int, now: datetime) -> Message:
    return Message(
        id=int(message_id),
        conversation_id=conversation_id,
        direction=Direction.OUT,
        author=send.author,
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


async def _queue_replies(
    connection: AsyncConnection, store: Store, sends: Sequence[NewOutbound], now: datetime
) -> list[Queued]:
    """Replies in their existing conversations, set-based (the engine's ``OutboxWriter``)."""
    message_ids, outbox_ids = await outbox_writer(store).insert_replies(connection, sends, now)
    queued = []
    for send, message_id, outbox_id in zip(sends, message_ids, outbox_ids, strict=True):
        message = _queued_message(send, message_id, int(send.conversation_id or 0), now)
        queued.append(
            Queued(
                message=message, conversation=None, outbox_id=outbox_id, opened=False, events=[_created(send, message)]
            )
        )
    return queued


async def _hand_off(
    connection: AsyncConnection, store: Store, replies: list[Queued], hand_off: HandOff, now: datetime
) -> list[Queued]:
    """The first ``hand_off.limit`` replies that are heads of their conversations, claimed for a sender."""
    jobs = await outbox_writer(store).claim_queued(
        connection,
        [queued.outbox_id for queued in replies[: hand_off.limit]],
        now=now,
        worker=hand_off.worker,
        lease=hand_off.lease,
    )
    by_id = {job.id: job for job in jobs}
    return [replace(queued, handed=by_id.get(queued.outbox_id)) for queued in replies]


def _sender(send: NewOutbound) -> int:
    """The agent who opens or closes by sending (a bot only replies in a conversation it has)."""
    if send.agent_id is None:
        raise ValueError("only an agent's send may open or close a conversation")
    return send.agent_id


async def _queue_one(connection: AsyncConnection, dialect: str, send: NewOutbound, now: datetime) -> Queued:
    events: list[BusEvent] = []
    conversation_id = send.conversation_id
    opened = conversation_id is None
    if conversation_id is None:
        conversation_id = await _open_for_agent(connection, dialect, send, now)
        events.append(
            ConversationOpened(conversation_id=conversation_id, agent_id=_sender(send), identity_id=send.identity_id)
        )
    message_id = (
        await connection.execute(
            insert(messages).values(message_values(send, conversation_id, now)).returning(messages.c.id)
        )
    ).scalar_one()
    outbox_id = (
        await connection.execute(
            insert(outbox).values(outbox_values(send, message_id, conversation_id, now)).returning(outbox.c.id)
        )
    ).scalar_one()
    await connection.execute(
        update(conversations).where(conversations.c.id == conversation_id).values(last_message_at=now)
    )
    if send.close_status is not None:
        await _close(connection, conversation_id, _sender(send), send.close_status, now)
        events.append(
            ConversationClosed(conversation_id=conversation_id, agent_id=_sender(send), status=send.close_status)
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
    return await _open_owned(
        connection,
        dialect,
        account_id=send.account_id,
        identity_id=send.identity_id,
        queue_id=send.queue_id,
        agent_id=_sender(send),
        now=now,
        last_message_at=now,
    )


async def _open_owned(
    connection: AsyncConnection,
    dialect: str,
    *,
    account_id: str,
    identity_id: int,
    queue_id: str | None,
    agent_id: int,
    now: datetime,
    last_message_at: datetime | None,
) -> int:
    """Insert an active conversation owned by ``agent_id`` (ConversationTaken: the identity has one open)."""
    channel = (
        await connection.execute(select(identities.c.channel).where(identities.c.id == identity_id))
    ).scalar_one()
    row = {
        "account_id": account_id,
        "channel": channel,
        "identity_id": identity_id,
        "queue_id": queue_id,
        "state": ConversationState.ACTIVE.value,
        "owner_agent_id": agent_id,
        "opened_at": now,
        "last_message_at": last_message_at,
    }
    inserted = await insert_open(connection, dialect, [row], now, agent_id=agent_id, data={"outbound": True})
    if not inserted:
        raise ConversationTaken(None)
    conversation_id = int(inserted[0].id)
    await connection.execute(
        insert(participants).values(conversation_id=conversation_id, agent_id=agent_id, role="owner", joined_at=now)
    )
    return conversation_id


async def start_chat(
    store: Store, *, account_id: str, identity_id: int, queue_id: str, agent_id: int, now: datetime
) -> Conversation:
    """Start a chat with no message: an active conversation owned by the agent, nothing sent (the window
    rules apply to the first message they send). ConversationTaken: the identity has one open already."""
    try:
        async with store.write() as connection:
            conversation_id = await _open_owned(
                connection,
                store.dialect,
                account_id=account_id,
                identity_id=identity_id,
                queue_id=queue_id,
                agent_id=agent_id,
                now=now,
                last_message_at=None,
            )
            row = (await connection.execute(select(conversations).where(conversations.c.id == conversation_id))).one()
            return conversation_from_row(row)
    except IntegrityError:
        raise ConversationTaken(None) from None


async def _close(connection: AsyncConnection, conversation_id: int, agent_id: int, status: str, now: datetime) -> None:
    """Close as the close action does (``hub.store.routing.close_within``: the lifecycle's rule, one
    guarded update); a conversation closed or changed meanwhile is no longer this sender's to close."""
    try:
        await close_within(connection, conversation_id, agent_id, status, now=now)
    except RoutingRefused:
        raise ConversationTaken(conversation_id) from None
