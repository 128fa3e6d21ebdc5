"""Replies claimed where they are queued and handed to a running worker (ADR 0041), on SQLite and PostgreSQL:
sent once without a claim of their own, resumed once after a crash, in order behind an earlier message of their
conversation, and never when the conversation left the bot before the reply was written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from hub import outbox as outbox_module
from hub.model import Author, ConversationState, MessageKind, OutboundMessage, SendReceipt
from hub.outbox import Outbox, facts_for, send_plan
from hub.policy import Allowed, Draft, decide
from hub.settings import Settings
from hub.store import Store
from hub.store.messages import load_identity, open_conversation_of
from hub.store.outbound import NewOutbound, NotTheBots, Queued
from hub.store.outbox import OutboxState, outbox_counts
from hub.store.tables import bot_conversations, conversations, outbox
from tests.integration.test_outbox import ACCOUNTS, Hub, make_hub, texts

# idle workers look for due rows only every 30 s: whatever is sent sooner was handed over or woken for
SLOW_POLL = ACCOUNTS.replace("lease_seconds = 30.0", "lease_seconds = 30.0\npoll_seconds = 30.0")


@pytest.fixture
async def hub(store: Store, make_settings: Callable[..., Settings]) -> Hub:
    return await make_hub(store, lambda toml: make_settings(toml.replace(ACCOUNTS, SLOW_POLL)))


async def reply(hub: Hub, identity_id: int, text: str, *, bot: bool = False) -> NewOutbound:
    """A reply in the identity's open conversation, as the API (or, ``bot``, the bot runner) builds it."""
    identity = await load_identity(hub.store, identity_id)
    assert identity is not None
    decision = decide(facts_for(identity, "twilio"), Draft(text=text), hub.clock())
    assert isinstance(decision, Allowed), decision
    found = await open_conversation_of(hub.store, identity_id)
    assert found is not None
    return NewOutbound(
        account_id="wa",
        identity_id=identity_id,
        agent_id=None if bot else hub.agent_id,
        author=Author.BOT if bot else Author.AGENT,
        bot_queues=("support",) if bot else (),
        kind=MessageKind.TEXT,
        send_plan=send_plan(decision),
        conversation_id=found[0].id,
        text=text,
    )


def count_claims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each claim of the workers found (the real claim still runs)."""
    found: list[int] = []
    real = outbox_module.record_and_claim

    async def counting(*args: Any, **kwargs: Any) -> Any:
        events, jobs = await real(*args, **kwargs)
        if args[2]:  # a claim was asked for
            found.append(len(jobs))
        return events, jobs

    monkeypatch.setattr(outbox_module, "record_and_claim", counting)
    return found


class HeldProvider:
    """The adapter's sends wait until ``go_on`` is set; ``sending`` is set at the first."""

    def __init__(self, hub: Hub) -> None:
        self.adapter = hub.adapters["wa"]
        self.send = self.adapter.send
        self.sending, self.go_on = asyncio.Event(), asyncio.Event()
        self.adapter.send = self.held  # type: ignore[method-assign]

    async def held(self, message: OutboundMessage) -> SendReceipt:
        self.sending.set()
        await self.go_on.wait()
        return await self.send(message)

    def restore(self) -> None:
        self.adapter.send = self.send  # type: ignore[method-assign]


async def row(hub: Hub, outbox_id: int) -> Any:
    async with hub.store.read() as connection:
        return (await connection.execute(select(outbox).where(outbox.c.id == outbox_id))).one()


async def started(hub: Hub, name: str) -> Outbox:
    """Running workers, past their first claim (which finds nothing)."""
    worker = hub.outbox(name=name)
    await worker.start()
    await asyncio.sleep(0.1)
    return worker


async def test_a_reply_queued_while_workers_run_is_claimed_at_commit_and_sent_once_without_a_claim(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = count_claims(monkeypatch)
    identity = await hub.customer_writes("+420600000001")
    provider = HeldProvider(hub)
    worker = await started(hub, "w")

    queued = await worker.accept(await reply(hub, identity, "hello"), hub.clock())
    assert queued.handed is not None
    assert queued.handed.id == queued.outbox_id
    claimed = await row(hub, queued.outbox_id)  # as a claim marks it: this process's, leased, one attempt
    assert (claimed.state, claimed.locked_by, claimed.attempts) == (OutboxState.SENDING, "w", 1)
    assert claimed.locked_until is not None
    await asyncio.wait_for(provider.sending.wait(), 5)

    provider.go_on.set()
    while worker.recorded < 1:  # noqa: ASYNC110  (the worker signals nothing else to wait on)
        await asyncio.sleep(0.01)
    await worker.stop()
    assert texts(hub.adapters["wa"]) == ["hello"]
    assert await outbox_counts(hub.store) == {OutboxState.DONE: 1}
    assert sum(claims) == 0  # no claim found it: it was never pending


async def test_a_handed_reply_whose_process_died_is_sent_once_by_the_next_claim_after_its_lease(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    provider = HeldProvider(hub)
    worker = await started(hub, "w1")
    queued = await worker.accept(await reply(hub, identity, "hello"), hub.clock())
    assert queued.handed is not None
    await asyncio.wait_for(provider.sending.wait(), 5)
    await worker.stop(grace=0)  # the send is cut off: the row stays claimed
    provider.restore()
    assert (await row(hub, queued.outbox_id)).state == OutboxState.SENDING

    assert await hub.outbox(name="w2").drain() == 0  # its lease holds: nobody else sends it meanwhile
    hub.clock.advance(31)
    assert await hub.outbox(name="w2").drain() == 1
    assert texts(hub.adapters["wa"]) == ["hello"]
    resumed = await row(hub, queued.outbox_id)
    assert (resumed.state, resumed.attempts) == (OutboxState.DONE, 2)
    assert await hub.outbox(name="w3").drain() == 0


async def test_a_reply_behind_a_handed_one_waits_for_it_and_follows_at_once(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    provider = HeldProvider(hub)
    worker = await started(hub, "w")
    first = await worker.accept(await reply(hub, identity, "first"), hub.clock())
    await asyncio.wait_for(provider.sending.wait(), 5)

    second = await worker.accept(await reply(hub, identity, "second"), hub.clock())
    assert first.handed is not None
    assert second.handed is None
    assert (await row(hub, second.outbox_id)).state == OutboxState.PENDING

    provider.go_on.set()
    # far sooner than the workers' poll: the first one's end wakes a claim, which follows its acceptance
    async with asyncio.timeout(10):
        while worker.recorded < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await worker.stop()
    assert texts(hub.adapters["wa"]) == ["first", "second"]


async def test_two_replies_of_one_conversation_in_one_group_hand_over_only_the_first(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    provider = HeldProvider(hub)
    worker = await started(hub, "w")
    sends = [await reply(hub, identity, text) for text in ("one", "two")]
    both = await asyncio.gather(*(worker.accept(send, hub.clock()) for send in sends))
    assert [q.handed is not None for q in both] == [True, False]
    provider.go_on.set()
    async with asyncio.timeout(10):
        while worker.recorded < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await worker.stop()
    assert texts(hub.adapters["wa"]) == ["one", "two"]


async def test_an_agents_take_still_wins_over_a_late_bot_reply_while_workers_run(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    found = await open_conversation_of(hub.store, identity)
    assert found is not None
    conversation_id = found[0].id
    async with hub.store.write() as connection:
        await connection.execute(
            insert(bot_conversations).values(
                conversation_id=conversation_id, bot_id="faq", variables={}, updated_at=hub.clock()
            )
        )
    late = await reply(hub, identity, "too late", bot=True)  # built while the bot had it
    async with hub.store.write() as connection:  # an agent takes it before the reply is written
        await connection.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(state=ConversationState.ACTIVE.value, owner_agent_id=hub.agent_id)
        )
    worker = await started(hub, "w")
    with pytest.raises(NotTheBots):
        await worker.accept(late, hub.clock())
    await asyncio.sleep(0.1)
    await worker.stop()
    assert texts(hub.adapters["wa"]) == []
    assert await outbox_counts(hub.store) == {}


async def test_without_running_workers_a_reply_waits_for_a_claim(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    worker = hub.outbox(name="w")
    queued = await worker.accept(await reply(hub, identity, "hello"), hub.clock())
    assert isinstance(queued, Queued)
    assert queued.handed is None
    assert (await row(hub, queued.outbox_id)).state == OutboxState.PENDING
    assert await worker.drain() == 1
    assert texts(hub.adapters["wa"]) == ["hello"]
