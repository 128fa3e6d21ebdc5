"""The OutboxWriter contract: the outbox's hot statements, one implementation per engine, the same
behaviour on both (queue replies, claim heads and the rows behind them, store acceptances)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from hub.model import Author, Channel, DeliveryState, MessageKind, Role, Subscription
from hub.store import Store
from hub.store._outbox_postgresql import PostgresqlOutbox
from hub.store._outbox_sqlite import SqliteOutbox
from hub.store.agents import create_agent
from hub.store.outbound import NewOutbound
from hub.store.outbox import Accepted, OutboxJob, OutboxState, outbox_writer
from hub.store.tables import conversations, identities, messages, outbox, pending_receipts

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


async def _conversations(store: Store, count: int) -> tuple[int, list[tuple[int, int]]]:
    """An agent and ``count`` customers on a Viber account, each with an open conversation:
    (agent id, [(identity id, conversation id)])."""
    agent = await create_agent(store, login="ana", password="pw-ana-12345", role=Role.AGENT, now=NOW)
    made = []
    async with store.write() as connection:
        for n in range(count):
            identity_id = (
                await connection.execute(
                    insert(identities)
                    .values(
                        account_id="vb",
                        channel=Channel.VIBER.value,
                        external_id=f"customer-{n}",
                        created_at=NOW,
                        last_inbound_at=NOW - timedelta(hours=1),
                        subscription=Subscription.SUBSCRIBED.value,
                    )
                    .returning(identities.c.id)
                )
            ).scalar_one()
            conversation_id = (
                await connection.execute(
                    insert(conversations)
                    .values(
                        account_id="vb",
                        channel=Channel.VIBER.value,
                        identity_id=identity_id,
                        queue_id="sales",
                        state="active",
                        owner_agent_id=agent.id,
                        opened_at=NOW,
                    )
                    .returning(conversations.c.id)
                )
            ).scalar_one()
            made.append((int(identity_id), int(conversation_id)))
    return agent.id, made


def _reply(agent_id: int, identity_id: int, conversation_id: int, text: str, **extra: Any) -> NewOutbound:
    return NewOutbound(
        account_id="vb",
        identity_id=identity_id,
        agent_id=agent_id,
        kind=MessageKind.TEXT,
        send_plan={"template": {"name": "greeting"}, "binding": {"name": "hello"}},
        conversation_id=conversation_id,
        text=text,
        **extra,
    )


async def _queue(store: Store, sends: list[NewOutbound], now: datetime = NOW) -> tuple[list[int], list[int]]:
    async with store.write() as connection:
        return await outbox_writer(store).insert_replies(connection, sends, now)


async def _claim(store: Store, *, now: datetime = NOW, limit: int = 10, follow: int = 0) -> list[OutboxJob]:
    async with store.write() as connection:
        return await outbox_writer(store).claim(
            connection, now=now, worker="w1", lease=LEASE, limit=limit, follow=follow
        )


def test_the_store_picks_its_engines_writer(store: Store) -> None:
    writer = outbox_writer(store)
    expected = PostgresqlOutbox if store.dialect == "postgresql" else SqliteOutbox
    assert isinstance(writer, expected)
    assert writer is outbox_writer(store)  # chosen once, not built per call
    assert writer.accepts_alone is (store.dialect == "postgresql")


async def test_replies_are_queued_in_the_order_given(store: Store) -> None:
    agent_id, [(i1, c1), (i2, c2)] = await _conversations(store, 2)
    sends = [_reply(agent_id, i1, c1, "one"), _reply(agent_id, i2, c2, "two"), _reply(agent_id, i1, c1, "three")]
    message_ids, outbox_ids = await _queue(store, sends)
    assert len(message_ids) == len(outbox_ids) == 3
    assert message_ids == sorted(message_ids)
    assert outbox_ids == sorted(outbox_ids)
    async with store.read() as connection:
        stored = (await connection.execute(select(messages).order_by(messages.c.id))).all()
        boxed = (await connection.execute(select(outbox).order_by(outbox.c.id))).all()
        touched = (await connection.execute(select(conversations.c.last_message_at))).scalars().all()
    assert [m.id for m in stored] == message_ids
    assert [(m.text, m.conversation_id, m.delivery_state, m.direction, m.author) for m in stored] == [
        ("one", c1, "queued", "out", "agent"),
        ("two", c2, "queued", "out", "agent"),
        ("three", c1, "queued", "out", "agent"),
    ]
    assert all(m.created_at == NOW and m.delivery_changed_at == NOW for m in stored)
    assert stored[0].send_plan == sends[0].send_plan
    assert stored[0].attachments is None
    assert [(b.id, b.message_id, b.state, b.attempts, b.next_attempt_at) for b in boxed] == [
        (o, m, OutboxState.PENDING, 0, NOW) for o, m in zip(outbox_ids, message_ids, strict=True)
    ]
    assert touched == [NOW, NOW]


async def test_a_bots_replies_are_queued_with_the_agents_in_one_set(store: Store) -> None:
    agent_id, [(i1, c1), (i2, c2)] = await _conversations(store, 2)
    sends = [
        _reply(agent_id, i1, c1, "from ana"),
        replace(_reply(agent_id, i2, c2, "from the bot"), agent_id=None, author=Author.BOT, bot_queues=("sales",)),
    ]
    message_ids, outbox_ids = await _queue(store, sends)
    assert len(message_ids) == len(outbox_ids) == 2
    async with store.read() as connection:
        stored = (await connection.execute(select(messages).order_by(messages.c.id))).all()
    assert [(m.id, m.text, m.author, m.agent_id, m.conversation_id) for m in stored] == [
        (message_ids[0], "from ana", "agent", agent_id, c1),
        (message_ids[1], "from the bot", "bot", None, c2),
    ]


async def test_a_claim_takes_only_the_oldest_unfinished_row_of_each_conversation(store: Store) -> None:
    agent_id, [(i1, c1), (i2, c2)] = await _conversations(store, 2)
    message_ids, outbox_ids = await _queue(
        store, [_reply(agent_id, i1, c1, "a1"), _reply(agent_id, i2, c2, "b1"), _reply(agent_id, i1, c1, "a2")]
    )
    jobs = await _claim(store)
    assert [(j.id, j.message_id, j.attempts) for j in jobs] == [
        (outbox_ids[0], message_ids[0], 1),
        (outbox_ids[1], message_ids[1], 1),
    ]
    first = jobs[0]
    assert (first.channel, first.recipient_id, first.text, first.kind) == (
        Channel.VIBER,
        "customer-0",
        "a1",
        MessageKind.TEXT,
    )
    assert (first.template_name, first.binding, first.subscription) == (
        "greeting",
        {"name": "hello"},
        Subscription.SUBSCRIBED,
    )
    assert first.provider_message_id is None
    assert first.attachments == ()
    assert await _claim(store) == []  # the heads are leased, and the row behind one waits for it
    async with store.read() as connection:
        rows = (await connection.execute(select(outbox.c.state, outbox.c.locked_by, outbox.c.locked_until))).all()
    assert sorted(rows, key=str) == sorted(
        [(OutboxState.SENDING, "w1", NOW + LEASE)] * 2 + [(OutboxState.PENDING, None, None)], key=str
    )


async def test_a_claim_honours_its_limit_in_the_order_rows_fell_due(store: Store) -> None:
    agent_id, made = await _conversations(store, 3)
    _, outbox_ids = await _queue(store, [_reply(agent_id, i, c, "hi") for i, c in made])
    async with store.write() as connection:  # the first row is due last
        await connection.execute(
            update(outbox).where(outbox.c.id == outbox_ids[0]).values(next_attempt_at=NOW - timedelta(seconds=1))
        )
        await connection.execute(
            update(outbox).where(outbox.c.id != outbox_ids[0]).values(next_attempt_at=NOW - timedelta(seconds=5))
        )
    assert [j.id for j in await _claim(store, limit=2)] == outbox_ids[1:]
    assert [j.id for j in await _claim(store, limit=2)] == outbox_ids[:1]


async def test_a_claim_follows_a_head_with_the_due_rows_behind_it_up_to_the_first_not_due(store: Store) -> None:
    agent_id, [(i1, c1), (i2, c2)] = await _conversations(store, 2)
    _, first = await _queue(store, [_reply(agent_id, i1, c1, f"a{n}") for n in range(4)])
    _, second = await _queue(store, [_reply(agent_id, i2, c2, f"b{n}") for n in range(4)])
    async with store.write() as connection:  # a retry waits: the run behind the head stops before it
        await connection.execute(
            update(outbox).where(outbox.c.id == first[2]).values(next_attempt_at=NOW + timedelta(minutes=1))
        )
    jobs = await _claim(store, follow=2)
    assert [j.id for j in jobs] == [*first[:2], *second[:3]]
    assert [j.attempts for j in jobs] == [1] * 5
    assert await _claim(store, follow=2) == []


async def test_a_claim_takes_back_a_row_whose_lease_ran_out(store: Store) -> None:
    agent_id, [(i1, c1)] = await _conversations(store, 1)
    _, [outbox_id] = await _queue(store, [_reply(agent_id, i1, c1, "hi")])
    assert [j.attempts for j in await _claim(store)] == [1]
    assert await _claim(store, now=NOW + LEASE) == []  # not before the lease ends
    (again,) = await _claim(store, now=NOW + LEASE + timedelta(seconds=1))
    assert (again.id, again.attempts) == (outbox_id, 2)


async def test_accepting_marks_the_message_sent_and_the_row_done_and_finds_its_early_receipts(store: Store) -> None:
    agent_id, [(i1, c1), (i2, c2)] = await _conversations(store, 2)
    message_ids, _ = await _queue(store, [_reply(agent_id, i1, c1, "a"), _reply(agent_id, i2, c2, "b")])
    jobs = await _claim(store)
    at = NOW + timedelta(seconds=2)
    async with store.write() as connection:
        await connection.execute(  # a receipt applied before the acceptance: the state must not go back
            update(messages)
            .where(messages.c.id == message_ids[1])
            .values(delivery_state=DeliveryState.DELIVERED.value, delivery_changed_at=NOW + timedelta(seconds=1))
        )
        await connection.execute(
            insert(pending_receipts).values(
                account_id="vb", provider_message_id="p-a", state="read", occurred_at=at, created_at=at
            )
        )
        await connection.execute(  # another account's receipt for the same id is not this one's
            insert(pending_receipts).values(
                account_id="other", provider_message_id="p-b", state="read", occurred_at=at, created_at=at
            )
        )
    items = [Accepted(job=job, provider_message_id=f"p-{job.text}", accepted_at=at) for job in jobs]
    async with store.write() as connection:
        found = await outbox_writer(store).accept(connection, items, {"vb": Channel.VIBER})
    assert [(row.account_id, row.provider_message_id, row.state) for row in found] == [("vb", "p-a", "read")]
    async with store.read() as connection:
        stored = (
            await connection.execute(
                select(
                    messages.c.provider_message_id,
                    messages.c.sent_at,
                    messages.c.delivery_state,
                    messages.c.delivery_changed_at,
                ).order_by(messages.c.id)
            )
        ).all()
        boxed = (await connection.execute(select(outbox.c.state, outbox.c.locked_until).order_by(outbox.c.id))).all()
    assert [tuple(row) for row in stored] == [
        ("p-a", at, DeliveryState.SENT.value, at),
        ("p-b", at, DeliveryState.DELIVERED.value, NOW + timedelta(seconds=1)),
    ]
    assert [tuple(row) for row in boxed] == [(OutboxState.DONE, None)] * 2


async def test_accepting_commits_on_its_own_where_the_engine_allows_it(store: Store) -> None:
    writer = outbox_writer(store)
    if not writer.accepts_alone:
        pytest.skip("this engine stores acceptances inside a transaction only")
    agent_id, [(i1, c1)] = await _conversations(store, 1)
    await _queue(store, [_reply(agent_id, i1, c1, "a")])
    (job,) = await _claim(store)
    async with store.autocommit() as connection:
        assert await writer.accept(connection, [Accepted(job=job, provider_message_id="p", accepted_at=NOW)], {}) == []
    async with store.read() as connection:
        assert (await connection.execute(select(outbox.c.state))).scalar_one() == OutboxState.DONE
