"""The outbox's hot statements on PostgreSQL (``OutboxWriter``).

Each operation is one statement of fixed text, its rows bound as arrays: every round trip waits a turn of
an event loop busy with a hundred sends, and a text that changed with the number of rows was a statement
prepared anew each time, pushing the others out of each connection's cache of prepared statements
(ADR 0019, ADR 0020)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    Text,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Channel, DeliveryState, Direction
from hub.store._outbox_rows import (
    CLAIMED,
    JOB_COLUMNS,
    Accepted,
    NewOutbound,
    OutboxJob,
    OutboxState,
    attachments_json,
    claim_heads,
    due,
    is_head,
    job,
    now_sent,
    unfinished,
)
from hub.store.tables import UTCDateTime, conversations, identities, messages, outbox, pending_receipts

__all__ = ["PostgresqlOutbox"]


def _queue_replies() -> Any:
    """A group's replies in one statement of fixed text, the rows as arrays. A multi-row ``INSERT`` differs
    in text with every group size: each size was a statement prepared anew (a round trip that waits a turn of
    the busy loop), about fifty of them a burst, and they pushed the outbox writer's own statements out of
    each connection's cache of prepared statements (ADR 0020). The messages are inserted in the arrays'
    order, so their new ids rise in it; the outbox rows and the conversations' last activity go in
    data-modifying CTEs of the same statement."""
    conversation_ids = bindparam("q_conversation_ids", type_=ARRAY(BigInteger))
    now = bindparam("q_now", type_=UTCDateTime())
    rows = (
        func.unnest(
            conversation_ids,
            bindparam("q_identity_ids", type_=ARRAY(BigInteger)),
            bindparam("q_account_ids", type_=ARRAY(messages.c.account_id.type)),
            bindparam("q_authors", type_=ARRAY(messages.c.author.type)),
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
            column("author", messages.c.author.type),
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
                rows.c.author,
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


def _claim() -> Any:
    """The heads, the due rows behind them and what their delivery needs, in one statement (two
    data-modifying CTEs). The first claim of a burst takes everything due at once (ADR 0015), and nothing is
    sent until it is back: as four statements that was four round trips and three result sets to process on
    the client (heads, the rows behind them, the load) before the first send.

    The rows behind a head are not locked by a ``SELECT ... FOR UPDATE`` first (a window function cannot
    take one): nobody else can claim them while their head is claimed (a claimed head is unfinished, so
    every row behind it is blocked), and the ``taken`` update locks the ones it takes."""
    heads = claim_heads(skip_locked=True).returning(outbox.c.message_id, outbox.c.attempts).cte("heads")
    behind = (
        select(
            outbox.c.id,
            func.row_number().over(partition_by=outbox.c.conversation_id, order_by=outbox.c.id).label("place"),
            # rows at or before this one that are not due: the run stops at the first of them, leaving no gap
            func.sum(case((due(outbox), 0), else_=1))
            .over(partition_by=outbox.c.conversation_id, order_by=outbox.c.id)
            .label("not_due"),
        )
        .where(
            outbox.c.conversation_id.in_(select(heads.c.conversation_id)),
            unfinished(outbox),
            outbox.c.id.notin_(select(heads.c.id)),
        )
        .cte("behind")
    )
    follow = bindparam("claim_follow", type_=Integer())
    taken = (
        update(outbox)
        .where(outbox.c.id.in_(select(behind.c.id).where(behind.c.not_due == 0, behind.c.place <= follow)))
        .values(CLAIMED)
        .returning(outbox.c.id, outbox.c.message_id, outbox.c.attempts)
        .cte("taken")
    )
    # this statement's own reads of outbox do not see its CTEs' updates: the ids and the attempt counts come
    # from their RETURNING
    claimed = union_all(
        select(heads.c.id, heads.c.message_id, heads.c.attempts),
        select(taken.c.id, taken.c.message_id, taken.c.attempts),
    ).subquery("claimed")
    return _jobs_of(claimed)


def _hand() -> Any:
    """Of the rows just queued, the heads claimed and what their delivery needs, in one statement (as
    ``_claim``: a data-modifying CTE, read through its ``RETURNING``)."""
    handed = (
        update(outbox)
        .where(outbox.c.id == any_(bindparam("hand_ids", type_=ARRAY(BigInteger))), is_head())
        .values(CLAIMED)
        .returning(outbox.c.id, outbox.c.message_id, outbox.c.attempts)
        .cte("handed")
    )
    return _jobs_of(handed)


def _jobs_of(rows: Any) -> Any:
    """The claimed ``rows`` (their ``id``, ``message_id`` and ``attempts``) with what their delivery needs, in id
    order: the claim's and the hand-off's last step alike."""
    return (
        select(rows.c.id, rows.c.attempts, *JOB_COLUMNS)
        .select_from(
            rows.join(messages, messages.c.id == rows.c.message_id).join(
                identities, identities.c.id == messages.c.identity_id
            )
        )
        .order_by(rows.c.id)
    )


def _accept() -> Any:
    """Both acceptance updates and the early-receipts lookup in one statement, the rows as arrays. The
    writer's transactions run while a hundred sends are in flight, and each round trip then waits a turn of
    the busy event loop (20-60 ms measured): three fewer round trips per transaction, and no statement
    prepared anew for every length of an ``IN`` list."""
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
            **now_sent(accepted.c.accepted_at),
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


_QUEUE_REPLIES = _queue_replies()
_CLAIM = _claim()
_HAND = _hand()
_ACCEPT = _accept()


class PostgresqlOutbox:
    """``OutboxWriter`` on PostgreSQL: each operation one statement of fixed text."""

    accepts_alone: ClassVar[bool] = True

    async def insert_replies(
        self, connection: AsyncConnection, sends: Sequence[NewOutbound], now: datetime
    ) -> tuple[list[int], list[int]]:
        pairs = (
            await connection.execute(
                _QUEUE_REPLIES,
                {
                    "q_now": now,
                    "q_conversation_ids": [int(send.conversation_id or 0) for send in sends],
                    "q_identity_ids": [send.identity_id for send in sends],
                    "q_account_ids": [send.account_id for send in sends],
                    "q_authors": [send.author.value for send in sends],
                    "q_agent_ids": [send.agent_id for send in sends],
                    "q_kinds": [send.kind.value for send in sends],
                    "q_texts": [send.text for send in sends],
                    "q_attachments": [
                        None if (attachments := attachments_json(send)) is None else json.dumps(attachments)
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
        return [int(m) for m, _ in pairs], [int(o) for _, o in pairs]

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
        claimed = await connection.execute(
            _CLAIM,
            {
                "claim_now": now,
                "claim_until": now + lease,
                "claim_worker": worker,
                "claim_limit": limit,
                "claim_follow": follow,
            },
        )
        return [job(row) for row in claimed.all()]

    async def claim_queued(
        self, connection: AsyncConnection, outbox_ids: Sequence[int], *, now: datetime, worker: str, lease: timedelta
    ) -> list[OutboxJob]:
        if not outbox_ids:
            return []
        handed = await connection.execute(
            _HAND, {"hand_ids": list(outbox_ids), "claim_until": now + lease, "claim_worker": worker}
        )
        return [job(row) for row in handed.all()]

    async def accept(
        self, connection: AsyncConnection, items: Sequence[Accepted], channels: Mapping[str, Channel]
    ) -> list[Any]:
        found = await connection.execute(
            _ACCEPT,
            {
                "a_message_ids": [i.job.message_id for i in items],
                "a_provider_ids": [i.provider_message_id for i in items],
                "a_accepted_at": [i.accepted_at for i in items],
                "a_outbox_ids": [i.job.id for i in items],
                "a_accounts": sorted(channels),
            },
        )
        return list(found.all())
