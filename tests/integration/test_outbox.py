"""The durable outbox on SQLite and PostgreSQL: retries, Retry-After, permanent refusals,
crash recovery, order within a conversation, and concurrent workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from hub.audit import entry_values
from hub.bus import BusEvent, EventBus
from hub.errors import ProviderRejected, ProviderUnavailable
from hub.model import (
    Attachment,
    Author,
    Channel,
    ConversationState,
    DeliveryReceipt,
    DeliveryState,
    InboundMessage,
    MessageKind,
    OutboundMessage,
    Role,
    SendReceipt,
)
from hub.outbox import Outbox, facts_for, send_plan
from hub.policy import Allowed, Draft, Refused, decide
from hub.send_rate import SharedTokenBucket
from hub.settings import Settings
from hub.store import Store, store_group
from hub.store.agents import create_agent
from hub.store.messages import load_identity, open_conversation_of
from hub.store.outbound import ConversationTaken, NewOutbound, NotTheBots, queue_outbound, queue_outbound_group
from hub.store.outbox import Accepted, OutboxState, claim_outbox, outbox_counts, outbox_upkeep, record_and_claim
from hub.store.tables import (
    account_health,
    audit_log,
    bot_conversations,
    conversations,
    identities,
    messages,
    outbox,
    pending_receipts,
)
from tests.fakes import RecordingAdapter

ACCOUNTS = """
[outbox]
workers = 2
max_attempts = 4
base_backoff = 1.0
max_backoff = 8.0
rate_limit = 1000.0
lease_seconds = 30.0

[[accounts]]
id = "wa"
channel = "whatsapp"
provider = "twilio"
queue = "support"
account_sid = "ACtest"
auth_token = "secret-token"
from_number = "+15550001111"

[[accounts]]
id = "fb"
channel = "messenger"
queue = "support"
page_id = "100"
app_secret = "app-secret"
verify_token = "verify"
page_access_token = "page-token"
"""

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Hub:
    store: Store
    settings: Settings
    clock: Clock
    agent_id: int
    adapters: dict[str, RecordingAdapter]
    events: list[BusEvent] = field(default_factory=list)
    bus: EventBus = field(default_factory=EventBus)
    _ids: Any = field(default_factory=lambda: iter(range(1, 10_000)))

    def outbox(self, store: Store | None = None, name: str | None = None) -> Outbox:
        return Outbox(
            store or self.store,
            self.bus,
            self.adapters,
            self.settings,
            clock=self.clock,
            name=name,  # type: ignore[arg-type]
        )

    async def customer_writes(self, sender: str, *, account: str = "wa", ago: float = 3600) -> int:
        """An inbound message ``ago`` seconds before now; returns the identity id."""
        channel = self.settings.account(account).channel
        event = InboundMessage(
            channel=channel,
            account_id=account,
            sender_id=sender,
            provider_message_id=f"in-{next(self._ids)}",
            sent_at=self.clock() - timedelta(seconds=ago),
            text="hello",
        )
        accounts = {a.id: a for a in self.settings.accounts}
        (outcome,) = await store_group(self.store, [[event]], accounts, self.clock())
        assert not isinstance(outcome, BaseException)
        async with self.store.read() as connection:
            return int(
                (
                    await connection.execute(
                        select(identities.c.id).where(
                            identities.c.account_id == account, identities.c.external_id == sender
                        )
                    )
                ).scalar_one()
            )

    async def queue(self, identity_id: int, text: str, *, tag: str | None = None, author: Author = Author.AGENT) -> int:
        """Queue a reply in the identity's open conversation, as the API does; returns the message id."""
        identity = await load_identity(self.store, identity_id)
        assert identity is not None
        account = self.settings.account(identity.account_id)

        automated = author is not Author.AGENT
        draft = Draft(text=text, tag=tag, automated=automated)
        decision = decide(facts_for(identity, account.provider), draft, self.clock())
        assert isinstance(decision, Allowed), decision
        found = await open_conversation_of(self.store, identity_id)
        assert found is not None
        queued = await queue_outbound(
            self.store,
            NewOutbound(
                account_id=identity.account_id,
                identity_id=identity_id,
                agent_id=None if automated else self.agent_id,
                author=author,
                kind=MessageKind.TEXT,
                send_plan=send_plan(decision),
                conversation_id=found[0].id,
                text=text,
                tag=tag,
            ),
            self.clock(),
        )
        return queued.message.id

    async def message(self, message_id: int) -> Any:
        async with self.store.read() as connection:
            return (await connection.execute(select(messages).where(messages.c.id == message_id))).one()

    async def outbox_row(self, message_id: int) -> Any:
        async with self.store.read() as connection:
            return (await connection.execute(select(outbox).where(outbox.c.message_id == message_id))).one()


async def make_hub(store: Store, make_settings: Callable[..., Settings]) -> Hub:
    """The outbox's surroundings: settings with a WhatsApp (Twilio) and a Messenger account,
    an agent, recording adapters and a clock that moves only when told to."""
    settings = make_settings(ACCOUNTS)
    clock = Clock()
    agent = await create_agent(store, login="ana", password="pw-ana-12345", role=Role.AGENT, now=clock())
    adapters = {a.id: RecordingAdapter(a) for a in settings.accounts}
    return Hub(store=store, settings=settings, clock=clock, agent_id=agent.id, adapters=adapters)


@pytest.fixture
async def hub(store: Store, make_settings: Callable[..., Settings]) -> Hub:
    return await make_hub(store, make_settings)


def texts(adapter: RecordingAdapter) -> list[str | None]:
    return [m.text for m in adapter.sent]


async def test_provider_down_then_back_loses_nothing_and_sends_each_message_once(hub: Hub) -> None:
    ids = [await hub.customer_writes(f"+42060000000{i}") for i in range(3)]
    queued = [await hub.queue(identity, f"reply {i}") for i, identity in enumerate(ids)]
    adapter = hub.adapters["wa"]
    adapter.fail_always = ProviderUnavailable("connection refused")
    worker = hub.outbox()

    assert await worker.run_once() == 3
    assert adapter.sent == []
    for message_id in queued:
        row = await hub.outbox_row(message_id)
        assert (row.state, row.attempts) == (OutboxState.PENDING, 1)
        assert row.next_attempt_at > hub.clock()
        assert (await hub.message(message_id)).delivery_state == DeliveryState.QUEUED.value

    hub.clock.advance(60)
    assert await worker.run_once() == 3  # still down: a second attempt each
    adapter.fail_always = None
    hub.clock.advance(60)
    await worker.drain()

    assert sorted(texts(adapter)) == ["reply 0", "reply 1", "reply 2"]
    assert Counter(m.idempotency_key for m in adapter.sent).most_common(1)[0][1] == 1
    for message_id in queued:
        message = await hub.message(message_id)
        assert message.delivery_state == DeliveryState.SENT.value
        assert message.provider_message_id.startswith("fake-")
    assert await outbox_counts(hub.store) == {OutboxState.DONE: 3}
    hub.clock.advance(3600)
    assert await worker.drain() == 0
    assert len(adapter.sent) == 3


async def test_rate_limited_send_waits_at_least_the_retry_after(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    message_id = await hub.queue(identity, "hello again")
    adapter = hub.adapters["wa"]
    adapter.fail_next(ProviderUnavailable("too many requests", provider_code="20429", retry_after=30))
    worker = hub.outbox()

    await worker.run_once()
    row = await hub.outbox_row(message_id)
    assert row.next_attempt_at >= hub.clock() + timedelta(seconds=30)
    assert row.last_error.startswith("20429")

    hub.clock.advance(29)
    assert await worker.run_once() == 0
    assert adapter.sent == []
    hub.clock.advance(2 + 8)  # past Retry-After plus the largest jitter of the schedule
    assert await worker.run_once() == 1
    assert texts(adapter) == ["hello again"]


async def test_permanent_refusal_fails_the_message_with_code_and_reason_and_is_not_retried(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    message_id = await hub.queue(identity, "are you there?")
    adapter = hub.adapters["wa"]
    adapter.fail_next(ProviderRejected("63016", "the 24-hour window is closed; send an approved template"))
    worker = hub.outbox()

    async with hub.bus.subscribe() as events:
        await worker.run_once()
        event = events.get_nowait()
    message = await hub.message(message_id)
    assert message.delivery_state == DeliveryState.FAILED.value
    assert message.error_code == "63016"
    assert "approved template" in message.error_reason
    assert (await hub.outbox_row(message_id)).state == OutboxState.FAILED
    assert event.kind == "message.delivery"
    assert event.data["state"] == "failed"
    assert event.data["error_code"] == "63016"
    async with hub.store.read() as connection:
        health = (await connection.execute(select(account_health).where(account_health.c.account_id == "wa"))).one()
    assert health.last_send_error.startswith("63016")

    hub.clock.advance(24 * 3600)
    assert await worker.drain() == 0
    assert len(adapter.attempts) == 1


async def test_transient_failures_fail_the_message_after_max_attempts(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    message_id = await hub.queue(identity, "hello")
    hub.adapters["wa"].fail_always = ProviderUnavailable("timeout")
    worker = hub.outbox()
    for _ in range(hub.settings.outbox.max_attempts):
        assert await worker.run_once() == 1
        hub.clock.advance(hub.settings.outbox.max_backoff + hub.settings.outbox.base_backoff)
    message = await hub.message(message_id)
    assert message.delivery_state == DeliveryState.FAILED.value
    assert "after 4 attempts" in message.error_reason
    assert await worker.drain() == 0


async def test_window_closed_while_queued_fails_with_the_rule_and_sends_nothing(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001", ago=24 * 3600 - 60)  # one minute of window left
    message_id = await hub.queue(identity, "just in time?")
    hub.clock.advance(61)
    await hub.outbox().run_once()
    message = await hub.message(message_id)
    assert message.delivery_state == DeliveryState.FAILED.value
    assert message.error_code == "window_closed"
    assert hub.adapters["wa"].attempts == []


async def test_messages_of_one_conversation_leave_in_order_under_retries(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    other = await hub.customer_writes("+420600000002")
    for i in range(4):
        await hub.queue(identity, f"m{i}")
    await hub.queue(other, "other")
    adapter = hub.adapters["wa"]
    adapter.fail_next(ProviderUnavailable("502 bad gateway"), when=lambda message: message.text == "m0")
    worker = hub.outbox()

    await worker.run_once()  # m0 fails; m1..m3 wait behind it; the other conversation goes on
    assert [m.text for m in adapter.attempts] in (["m0", "other"], ["other", "m0"])
    assert texts(adapter) == ["other"]
    assert await worker.run_once() == 0
    hub.clock.advance(60)
    await worker.drain()
    assert texts(adapter) == ["other", "m0", "m1", "m2", "m3"]


async def test_two_workers_never_send_one_row_twice(hub: Hub, database_url: str) -> None:
    senders = [f"+4206000001{i:02d}" for i in range(8)]
    ids = [await hub.customer_writes(s) for s in senders]
    for round_ in range(4):
        for identity in ids:
            await hub.queue(identity, f"{identity}:{round_}")
    second_store = Store(database_url)
    try:
        first, second = hub.outbox(name="a"), hub.outbox(store=second_store, name="b")

        async def run(worker: Outbox) -> None:
            for _ in range(200):
                await worker.run_once()
                await asyncio.sleep(0)

        await asyncio.gather(run(first), run(second), run(first), run(second))
    finally:
        await second_store.close()
    sent = hub.adapters["wa"].sent
    assert len(sent) == 32
    assert max(Counter(m.idempotency_key for m in sent).values()) == 1
    for identity in ids:  # and each conversation still in order
        assert [m.text for m in sent if m.text and m.text.startswith(f"{identity}:")] == [
            f"{identity}:{r}" for r in range(4)
        ]
    assert await outbox_counts(hub.store) == {OutboxState.DONE: 32}


class _SlowRate:
    """A send-rate bucket that is empty: ``acquire`` runs ``meanwhile`` (time passes, others work), then grants."""

    def __init__(self, meanwhile: Callable[[], Any]) -> None:
        self._meanwhile = meanwhile

    def try_acquire(self) -> bool:
        return False

    async def acquire(self) -> None:
        await self._meanwhile()


async def test_a_send_whose_rate_wait_outlasted_its_lease_is_left_to_the_claim_that_took_it_over(hub: Hub) -> None:
    """The shared send rate can hold a claimed row past its lease; another process then claims and sends it.
    The first worker must not send it as well (the row's attempt count tells the claims apart)."""
    identity = await hub.customer_writes("+420600000001")
    await hub.queue(identity, "only once")
    first, second = hub.outbox(name="a"), hub.outbox(name="b")

    async def lease_runs_out_and_b_sends() -> None:
        hub.clock.advance(31)  # past lease_seconds
        assert await second.run_once() == 1

    first._buckets["wa"] = _SlowRate(lease_runs_out_and_b_sends)  # type: ignore[assignment]
    assert await first.run_once() == 1  # attempted: it found the row taken over and sent nothing
    assert texts(hub.adapters["wa"]) == ["only once"]
    assert await outbox_counts(hub.store) == {OutboxState.DONE: 1}


async def test_a_send_that_waited_for_the_rate_past_its_lease_still_goes_when_nobody_took_it_over(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    await hub.queue(identity, "after the wait")
    worker, other = hub.outbox(name="a"), hub.outbox(name="b")

    async def wait_past_the_lease() -> None:
        hub.clock.advance(35)  # the lease (30 s) ran out, but no other claim came meanwhile

    worker._buckets["wa"] = _SlowRate(wait_past_the_lease)  # type: ignore[assignment]
    assert await worker.run_once() == 1
    assert texts(hub.adapters["wa"]) == ["after the wait"]
    assert await other.run_once() == 0  # renewed, then done: nothing left for another claim
    assert await outbox_counts(hub.store) == {OutboxState.DONE: 1}


async def test_provider_accepted_but_hub_died_before_recording_resends_with_the_same_idempotency_key(
    hub: Hub,
) -> None:
    """The remaining at-least-once window (ADR 0010): the provider accepted, the process died
    before the id was stored. After the lease the row is resumed and sent again, with the same
    idempotency key so providers that honour one drop the repeat."""
    identity = await hub.customer_writes("+420600000001")
    message_id = await hub.queue(identity, "hello")
    dying = hub.outbox(name="dying")
    (job,) = await claim_outbox(hub.store, now=hub.clock(), worker="dying", lease=timedelta(seconds=30))
    _, outbound = dying.plan(job, hub.clock())
    assert outbound is not None
    await hub.adapters["wa"].send(outbound)  # accepted ... and the process dies here

    restarted = hub.outbox(name="restarted")
    assert await restarted.drain() == 0  # the lease still holds
    hub.clock.advance(31)
    assert await restarted.drain() == 1
    sent = hub.adapters["wa"].sent
    assert len(sent) == 2
    assert sent[0].idempotency_key == sent[1].idempotency_key == f"channelhub-outbox-{job.id}"
    assert (await hub.message(message_id)).delivery_state == DeliveryState.SENT.value


async def test_the_worker_checks_the_provider_s_own_media_rules_again_before_the_call(hub: Hub) -> None:
    """Media rules are the provider's facts (ADR 0049): the worker's decision carries Twilio's complete rules, its
    own document rules and its sizes in decimal megabytes included, as the send's did before queueing."""
    identity = await hub.customer_writes("+420600000001")
    await hub.queue(identity, "your invoice")
    worker = hub.outbox(name="a")
    (job,) = await claim_outbox(hub.store, now=hub.clock(), worker="a", lease=timedelta(seconds=30))
    pdf = Attachment(kind=MessageKind.FILE, url="https://files.example/i.pdf", mime_type="application/pdf")
    image = Attachment(kind=MessageKind.IMAGE, url="https://files.example/a.png", size=5 * 1024 * 1024)
    for attachment, rule in [(pdf, "caption_not_allowed"), (image, "attachment_too_large")]:
        decision, outbound = worker.plan(replace(job, kind=attachment.kind, attachments=(attachment,)), hub.clock())
        assert (decision.rule if isinstance(decision, Refused) else None, outbound) == (rule, None)
    decision, outbound = worker.plan(replace(job, kind=MessageKind.FILE, text=None, attachments=(pdf,)), hub.clock())
    assert isinstance(decision, Allowed)
    assert outbound is not None


async def test_restart_after_the_provider_id_was_recorded_does_not_send_again(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    message_id = await hub.queue(identity, "hello")
    (_job,) = await claim_outbox(hub.store, now=hub.clock(), worker="dying", lease=timedelta(seconds=30))
    # the provider accepted and its id was stored; the process died before the row was released
    async with hub.store.write() as connection:
        await connection.execute(
            update(messages)
            .where(messages.c.id == message_id)
            .values(provider_message_id="SM-accepted", sent_at=hub.clock())
        )
    hub.clock.advance(31)
    assert await hub.outbox(name="restarted").drain() == 1
    assert hub.adapters["wa"].attempts == []
    message = await hub.message(message_id)
    assert (message.provider_message_id, message.delivery_state) == ("SM-accepted", DeliveryState.SENT.value)
    assert (await hub.outbox_row(message_id)).state == OutboxState.DONE


async def test_worker_cancelled_mid_send_is_resumed_after_the_lease_and_sends_once(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    message_id = await hub.queue(identity, "hello")
    adapter = hub.adapters["wa"]
    started = asyncio.Event()
    original = adapter.send

    async def hanging(message: OutboundMessage) -> SendReceipt:
        started.set()
        await asyncio.Event().wait()  # the provider never answers; the process is stopped
        return await original(message)

    adapter.send = hanging  # type: ignore[method-assign]
    worker = hub.outbox(name="w1")
    await worker.start()
    worker.wake()
    await started.wait()
    await worker.stop(grace=0)
    adapter.send = original  # type: ignore[method-assign]
    assert (await hub.outbox_row(message_id)).state == OutboxState.SENDING

    hub.clock.advance(31)
    assert await hub.outbox(name="w2").drain() == 1
    assert texts(adapter) == ["hello"]


async def test_receipts_move_a_sent_message_forward_never_backward(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    message_id = await hub.queue(identity, "hello")
    await hub.outbox().drain()
    provider_id = (await hub.message(message_id)).provider_message_id
    accounts = {a.id: a for a in hub.settings.accounts}

    def receipt(state: DeliveryState) -> DeliveryReceipt:
        return DeliveryReceipt(
            channel=Channel.WHATSAPP,
            account_id="wa",
            recipient_id="+420600000001",
            state=state,
            occurred_at=hub.clock(),
            provider_message_ids=(provider_id,),
        )

    await store_group(hub.store, [[receipt(DeliveryState.READ)]], accounts, hub.clock())
    await store_group(hub.store, [[receipt(DeliveryState.DELIVERED)]], accounts, hub.clock())
    assert (await hub.message(message_id)).delivery_state == DeliveryState.READ.value


async def test_messenger_reply_after_the_window_goes_with_its_tag(hub: Hub) -> None:
    identity = await hub.customer_writes("psid-1", account="fb", ago=3 * 24 * 3600)
    await hub.queue(identity, "your refund is approved", tag="HUMAN_AGENT")
    await hub.outbox().drain()
    (sent,) = hub.adapters["fb"].sent
    assert (sent.messaging_type, sent.tag, sent.recipient_id) == ("MESSAGE_TAG", "HUMAN_AGENT", "psid-1")


async def test_an_automated_reply_queued_in_the_window_never_leaves_with_human_agent_after_it(hub: Hub) -> None:
    """Queued inside the window (a RESPONSE), the hub's own message keeps the tag it asked for; when the window
    closes before it leaves, the policy asked again refuses HUMAN_AGENT for an automated message (Meta prohibits
    it)."""
    identity = await hub.customer_writes("psid-1", account="fb", ago=24 * 3600 - 60)  # one minute of window left
    message_id = await hub.queue(identity, "still on it", tag="HUMAN_AGENT", author=Author.SYSTEM)
    hub.clock.advance(61)
    await hub.outbox().run_once()
    message = await hub.message(message_id)
    assert (message.delivery_state, message.error_code) == (DeliveryState.FAILED.value, "tag_human_only")
    assert hub.adapters["fb"].attempts == []


async def test_the_send_rate_is_one_bucket_shared_by_every_process(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    """Two processes' buckets for one account (two outboxes on one database): together they keep to the rate."""
    now = [datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += timedelta(seconds=seconds)

    monkeypatch.setattr("hub.send_rate.asyncio.sleep", fake_sleep)
    first = SharedTokenBucket(store, "wa", rate=2.0, clock=lambda: now[0])
    second = SharedTokenBucket(store, "wa", rate=2.0, clock=lambda: now[0])
    # the burst (two tokens) is shared: one each, then each further send waits for the bucket to refill
    for bucket in (first, second, first, second, first, second):
        await bucket.acquire()
    assert sum(waits) == pytest.approx(2.0)  # four sends beyond the burst at two per second
    other = SharedTokenBucket(store, "fb", rate=2.0, clock=lambda: now[0])
    await other.acquire()  # another account has its own bucket
    assert sum(waits) == pytest.approx(2.0)


async def test_a_group_of_accepted_sends_reports_a_failed_one_and_keeps_the_others(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    found = await open_conversation_of(hub.store, identity)
    assert found is not None
    decision = decide(
        facts_for(await load_identity(hub.store, identity), "twilio"),  # type: ignore[arg-type]
        Draft(text="x"),
        hub.clock(),
    )
    assert isinstance(decision, Allowed)

    def reply(text: str, conversation_id: int | None) -> NewOutbound:
        def audit(conversation: int, message: int) -> list[dict[str, Any]]:
            return [
                entry_values(
                    "message.sent",
                    actor=None,
                    at=hub.clock(),
                    conversation_id=conversation,
                    after={"message_id": message, "text": text},
                )
            ]

        return NewOutbound(
            account_id="wa",
            identity_id=identity,
            agent_id=hub.agent_id,
            kind=MessageKind.TEXT,
            send_plan=send_plan(decision),
            conversation_id=conversation_id,
            queue_id="support",
            text=text,
            audit=audit,
        )

    results = await queue_outbound_group(
        hub.store,
        [reply("first", found[0].id), reply("opens a second conversation", None), reply("second", found[0].id)],
        hub.clock(),
    )
    assert isinstance(results[1], ConversationTaken)  # the customer already has an open conversation
    queued = [r for r in results if not isinstance(r, BaseException)]
    assert [r.message.text for r in queued] == ["first", "second"]
    # the queued sends' audit entries are in the group's transaction, with their ids; the failed one has none
    async with hub.store.read() as connection:
        entries = (await connection.execute(select(audit_log).order_by(audit_log.c.id))).all()
    assert [(e.action, e.conversation_id, e.after) for e in entries] == [
        ("message.sent", found[0].id, {"message_id": r.message.id, "text": r.message.text}) for r in queued
    ]
    await hub.outbox().drain()
    assert texts(hub.adapters["wa"]) == ["first", "second"]


async def test_a_bots_reply_is_written_only_while_the_conversation_is_the_bots_and_stops_its_silence_clock(
    hub: Hub,
) -> None:
    """Checked in the group's own transaction: a conversation an agent has now, or one outside the bot's queues,
    refuses the bot's reply and nothing else of the group; an answered conversation forgets what it awaited."""
    with_bot, taken = [await hub.customer_writes(f"+42060000000{i}") for i in (1, 2)]
    ids = {}
    for identity in (with_bot, taken):
        found = await open_conversation_of(hub.store, identity)
        assert found is not None
        ids[identity] = found[0].id
    async with hub.store.write() as connection:
        await connection.execute(
            update(conversations).where(conversations.c.id == ids[with_bot]).values(state=ConversationState.BOT.value)
        )
        await connection.execute(
            insert(bot_conversations).values(
                conversation_id=ids[with_bot],
                bot_id="faq",
                awaiting_since=hub.clock(),
                failures=2,
                variables={},
                updated_at=hub.clock(),
            )
        )
    decision = decide(
        facts_for(await load_identity(hub.store, with_bot), "twilio"),  # type: ignore[arg-type]
        Draft(text="x"),
        hub.clock(),
    )
    assert isinstance(decision, Allowed)

    def reply(identity: int, text: str, *, queues: tuple[str, ...] = ("support",), bot: bool = True) -> NewOutbound:
        return NewOutbound(
            account_id="wa",
            identity_id=identity,
            agent_id=None if bot else hub.agent_id,
            author=Author.BOT if bot else Author.AGENT,
            bot_queues=queues if bot else (),
            kind=MessageKind.TEXT,
            send_plan=send_plan(decision),
            conversation_id=ids[identity],
            text=text,
        )

    results = await queue_outbound_group(
        hub.store,
        [
            reply(with_bot, "bot answers"),
            reply(taken, "too late"),
            reply(with_bot, "not my queue", queues=("sales",)),
            reply(taken, "agent answers", bot=False),
        ],
        hub.clock(),
    )
    assert [r.reason if isinstance(r, NotTheBots) else type(r).__name__ for r in results] == [
        "Queued",
        "not_with_bot",
        "not_found",
        "Queued",
    ]
    async with hub.store.read() as connection:
        written = (
            await connection.execute(select(messages.c.text, messages.c.author).where(messages.c.direction == "out"))
        ).all()
        clock = (
            await connection.execute(
                select(bot_conversations.c.awaiting_since, bot_conversations.c.failures).where(
                    bot_conversations.c.conversation_id == ids[with_bot]
                )
            )
        ).one()
    assert sorted(written) == [("agent answers", "agent"), ("bot answers", "bot")]
    assert (clock.awaiting_since, clock.failures) == (None, 0)


async def test_a_group_of_replies_is_stored_whole_and_in_order(hub: Hub) -> None:
    """Replies group-committed together (one statement of fixed text on PostgreSQL, three on SQLite): each message
    with its own values and outbox row, ids rising in the order the replies came, the conversations' last activity
    moved to the group's time."""
    first, second = [await hub.customer_writes(f"+42060000000{i}", ago=7200) for i in (1, 2)]
    conversations_of = {}
    for identity in (first, second):
        found = await open_conversation_of(hub.store, identity)
        assert found is not None
        conversations_of[identity] = found[0].id
    decision = decide(
        facts_for(await load_identity(hub.store, first), "twilio"),  # type: ignore[arg-type]
        Draft(text="x"),
        hub.clock(),
    )
    assert isinstance(decision, Allowed)
    photo = Attachment(kind=MessageKind.IMAGE, url="https://example.com/p.jpg", mime_type="image/jpeg")

    def reply(identity: int, text: str | None, **extra: Any) -> NewOutbound:
        return NewOutbound(
            account_id="wa",
            identity_id=identity,
            agent_id=hub.agent_id,
            kind=extra.pop("kind", MessageKind.TEXT),
            send_plan=send_plan(decision, template="welcome", version=3) if extra.get("template_name") else {},
            conversation_id=conversations_of[identity],
            text=text,
            **extra,
        )

    sends = [
        reply(first, "one"),
        reply(second, None, kind=MessageKind.IMAGE, attachments=(photo,)),
        reply(first, "two", template_name="welcome", template_version=3, tag="HUMAN_AGENT"),
        reply(second, "three"),
    ]
    later = hub.clock() + timedelta(seconds=5)
    results = await queue_outbound_group(hub.store, sends, later)

    queued = [r for r in results if not isinstance(r, BaseException)]
    assert len(queued) == 4
    ids = [q.message.id for q in queued]
    assert ids == sorted(ids)
    for send, result in zip(sends, queued, strict=True):
        row = await hub.message(result.message.id)
        assert (row.conversation_id, row.identity_id, row.text, row.kind) == (
            send.conversation_id,
            send.identity_id,
            send.text,
            send.kind.value,
        )
        assert (row.direction, row.author, row.agent_id, row.delivery_state) == ("out", "agent", hub.agent_id, "queued")
        assert (row.template_name, row.template_version, row.tag) == (
            send.template_name,
            send.template_version,
            send.tag,
        )
        assert row.send_plan == send.send_plan
        assert row.attachments == ([a.to_json() for a in send.attachments] or None)
        assert row.created_at == later
        box = await hub.outbox_row(result.message.id)
        assert (box.id, box.state, box.attempts, box.conversation_id) == (
            result.outbox_id,
            "pending",
            0,
            send.conversation_id,
        )
    async with hub.store.read() as connection:
        touched = (
            await connection.execute(
                select(conversations.c.last_message_at).where(conversations.c.id.in_(conversations_of.values()))
            )
        ).scalars()
        assert set(touched) == {later}


async def test_a_receipt_that_arrives_before_the_send_is_recorded_is_applied_afterwards(hub: Hub) -> None:
    """Providers may call back before their own HTTP answer reaches us: the receipt is kept, not lost."""
    identity = await hub.customer_writes("+420600000001")
    message_id = await hub.queue(identity, "hello")
    accounts = {a.id: a for a in hub.settings.accounts}
    original_send = hub.adapters["wa"].send

    async def send_with_a_fast_callback(message: OutboundMessage) -> SendReceipt:
        receipt = await original_send(message)
        early = DeliveryReceipt(
            channel=Channel.WHATSAPP,
            account_id="wa",
            recipient_id="+420600000001",
            state=DeliveryState.DELIVERED,
            occurred_at=hub.clock(),
            provider_message_ids=(receipt.provider_message_id,),
        )
        (outcome,) = await store_group(hub.store, [[early]], accounts, hub.clock())
        assert not isinstance(outcome, BaseException)
        assert outcome.updated == 0  # nothing to move yet: the id is not stored
        return receipt

    hub.adapters["wa"].send = send_with_a_fast_callback  # type: ignore[method-assign]
    await hub.outbox().drain()
    assert (await hub.message(message_id)).delivery_state == DeliveryState.DELIVERED.value
    async with hub.store.read() as connection:
        left = (await connection.execute(select(func.count()).select_from(pending_receipts))).scalar_one()
    assert left == 0


async def accepted_by_the_provider(hub: Hub, text: str, provider_message_id: str) -> int:
    """A message queued, claimed, and its acceptance stored on its own (as the writer does on PostgreSQL)."""
    message_id = await hub.queue(await hub.customer_writes("+420600000001"), text)
    lease = timedelta(seconds=30)
    _, (job,) = await record_and_claim(hub.store, [], 1, worker="w", now=hub.clock(), lease=lease)
    accepted = Accepted(job=job, provider_message_id=provider_message_id, accepted_at=hub.clock())
    await record_and_claim(hub.store, [accepted], 0, worker="w", now=hub.clock(), lease=lease)
    return message_id


async def test_a_receipt_that_missed_its_acceptance_is_applied_by_the_upkeep(hub: Hub) -> None:
    """On PostgreSQL a receipt stored as early while its acceptance was being stored is seen by neither
    transaction (and an acceptance stored on its own may stop before applying what it found): the upkeep
    applies early receipts whose message has its provider id by now, and stamps the account's last send."""
    message_id = await accepted_by_the_provider(hub, "hello", "SM-raced")
    delivered_at = hub.clock() + timedelta(seconds=1)
    async with hub.store.write() as connection:  # what the webhook stored, not having seen the provider id
        await connection.execute(
            pending_receipts.insert().values(
                account_id="wa",
                provider_message_id="SM-raced",
                state=DeliveryState.DELIVERED.value,
                occurred_at=delivered_at,
                created_at=hub.clock(),
            )
        )
    hub.clock.advance(2)

    events = await outbox_upkeep(hub.store, ["wa"], now=hub.clock())

    message = await hub.message(message_id)
    assert (message.delivery_state, message.delivery_changed_at) == (DeliveryState.DELIVERED.value, delivered_at)
    assert [(e.kind, e.data["state"]) for e in events] == [("message.delivery", DeliveryState.DELIVERED.value)]
    async with hub.store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(pending_receipts))).scalar_one() == 0
        health = (await connection.execute(select(account_health).where(account_health.c.account_id == "wa"))).one()
    assert health.last_send_at == hub.clock()
    assert await outbox_upkeep(hub.store, ["wa"], now=hub.clock()) == []  # nothing left to apply


async def change_then_fail(store: Store, message_id: int) -> None:
    with contextlib.suppress(RuntimeError):
        async with store.write() as connection:
            await connection.execute(update(messages).where(messages.c.id == message_id).values(text="changed"))
            raise RuntimeError("roll it back")


async def test_an_acceptance_stored_on_its_own_leaves_later_transactions_whole(hub: Hub) -> None:
    """On PostgreSQL acceptances without a claim commit statement by statement (autocommit): the pooled
    connection must come back to the next caller transactional."""
    message_id = await accepted_by_the_provider(hub, "hello", "SM-1")
    for _ in range(3):  # whichever pooled connection comes next
        await change_then_fail(hub.store, message_id)
    assert (await hub.message(message_id)).text == "hello"
    assert (await hub.message(message_id)).provider_message_id == "SM-1"


async def test_running_workers_send_every_message_once_and_each_conversation_in_order(hub: Hub) -> None:
    """The workers' own loop (claim ahead, the writer storing acceptances and claiming in one
    transaction), not run_once: more messages than the workers hold at once, several per conversation."""
    ids = [await hub.customer_writes(f"+4206000002{i:02d}") for i in range(6)]
    for round_ in range(10):
        for identity in ids:
            await hub.queue(identity, f"{identity}:{round_}")
    worker = hub.outbox(name="w")
    async with hub.bus.subscribe() as events:
        await worker.start()
        worker.wake()
        while worker.recorded < 60:  # noqa: ASYNC110  (the workers signal nothing else to wait on)
            await asyncio.sleep(0.01)
        await worker.stop()
        delivered = [events.get_nowait() for _ in range(events.qsize())]
    sent = hub.adapters["wa"].sent
    assert len(sent) == 60
    assert max(Counter(m.idempotency_key for m in sent).values()) == 1
    for identity in ids:
        assert [m.text for m in sent if m.text and m.text.startswith(f"{identity}:")] == [
            f"{identity}:{r}" for r in range(10)
        ]
    assert await outbox_counts(hub.store) == {OutboxState.DONE: 60}
    assert sum(1 for e in delivered if e.kind == "message.delivery" and e.data["state"] == "sent") == 60


async def test_a_message_failed_for_good_does_not_hold_back_the_next_one_in_its_conversation(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    first = await hub.queue(identity, "first")
    await hub.queue(identity, "second")
    adapter = hub.adapters["wa"]
    adapter.fail_next(ProviderRejected("21211", "not a valid number"))
    worker = hub.outbox()
    assert await worker.run_once() == 1  # only the first: the second waits behind it
    assert (await hub.outbox_row(first)).state == OutboxState.FAILED
    assert await worker.run_once() == 1
    assert texts(adapter) == ["second"]


async def test_storing_an_acceptance_and_claiming_in_one_transaction_frees_the_next_message(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    first = await hub.queue(identity, "first")
    second = await hub.queue(identity, "second")
    lease = timedelta(seconds=30)
    (job,) = await claim_outbox(hub.store, now=hub.clock(), worker="w", lease=lease, limit=5)
    assert job.message_id == first
    accepted = Accepted(job=job, provider_message_id="SM-first", accepted_at=hub.clock())

    events, jobs = await record_and_claim(hub.store, [accepted], 5, worker="w", now=hub.clock(), lease=lease)

    assert [j.message_id for j in jobs] == [second]
    assert [e.data["message_id"] for e in events] == [first]
    assert (await hub.message(first)).provider_message_id == "SM-first"
    assert (await hub.outbox_row(first)).state == OutboxState.DONE


async def test_an_acceptance_never_moves_a_message_state_back(hub: Hub) -> None:
    """Several acceptances stored together, one of whose messages a receipt already moved further: that
    one keeps its state and the time it changed; the others become sent, at their own acceptance times."""
    identity = await hub.customer_writes("+420600000001")
    other = await hub.customer_writes("+420600000002")
    ahead, behind = await hub.queue(identity, "ahead"), await hub.queue(other, "behind")
    lease = timedelta(seconds=30)
    jobs = await claim_outbox(hub.store, now=hub.clock(), worker="w", lease=lease, limit=5)
    assert sorted(j.message_id for j in jobs) == sorted([ahead, behind])
    read_at = hub.clock() - timedelta(seconds=5)
    async with hub.store.write() as connection:
        await connection.execute(
            update(messages)
            .where(messages.c.id == ahead)
            .values(delivery_state=DeliveryState.READ.value, delivery_changed_at=read_at)
        )
    accepted_at = {ahead: hub.clock() - timedelta(seconds=2), behind: hub.clock() - timedelta(seconds=1)}
    items = [
        Accepted(job=j, provider_message_id=f"SM-{j.message_id}", accepted_at=accepted_at[j.message_id]) for j in jobs
    ]

    await record_and_claim(hub.store, items, 0, worker="w", now=hub.clock(), lease=lease)

    first, second = await hub.message(ahead), await hub.message(behind)
    assert (first.delivery_state, first.delivery_changed_at) == (DeliveryState.READ.value, read_at)
    assert (first.provider_message_id, first.sent_at) == (f"SM-{ahead}", accepted_at[ahead])
    assert (second.delivery_state, second.delivery_changed_at) == (DeliveryState.SENT.value, accepted_at[behind])
    assert (second.provider_message_id, second.sent_at) == (f"SM-{behind}", accepted_at[behind])
    assert {(await hub.outbox_row(m)).state for m in (ahead, behind)} == {OutboxState.DONE}


# ------------------------------------------------------------------ runs (ADR 0015)


def record_releases(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The outbox row ids each ``release_claims`` gave back (the real one still runs)."""
    import hub.outbox

    released: list[list[int]] = []
    real = hub.outbox.release_claims

    async def recording(store: Store, outbox_ids: Any, *, worker: str) -> None:
        released.append(list(outbox_ids))
        await real(store, outbox_ids, worker=worker)

    monkeypatch.setattr(hub.outbox, "release_claims", recording)
    return released


async def run_workers_until(worker: Outbox, done: Callable[[], bool]) -> None:
    """The workers' own loop (start, claim runs, send, store) until ``done()``, then a clean stop."""
    await worker.start()
    worker.wake()
    async with asyncio.timeout(10):
        while not done():  # noqa: ASYNC110  (the workers signal nothing else to wait on)
            await asyncio.sleep(0.01)
    await worker.stop()


async def test_a_claim_takes_the_due_rows_behind_each_conversations_first_as_one_run(hub: Hub) -> None:
    first, second = await hub.customer_writes("+420600000001"), await hub.customer_writes("+420600000002")
    ours = [await hub.queue(first, f"a{i}") for i in range(3)]
    theirs = [await hub.queue(second, f"b{i}") for i in range(3)]
    lease = timedelta(seconds=30)

    _, short = await record_and_claim(hub.store, [], 5, worker="w", now=hub.clock(), lease=lease, follow=1)
    assert [j.message_id for j in short] == [ours[0], ours[1], theirs[0], theirs[1]]  # at most one behind each
    _, rest = await record_and_claim(hub.store, [], 5, worker="w", now=hub.clock(), lease=lease, follow=7)
    assert rest == []  # a conversation's rows behind a claimed one are not heads of their own
    hub.clock.advance(31)  # the lease ran out: the run is claimed again whole, in order, with what was left
    _, again = await record_and_claim(hub.store, [], 5, worker="w2", now=hub.clock(), lease=lease, follow=7)
    assert [j.message_id for j in again] == ours + theirs


async def test_a_run_stops_at_a_row_that_is_not_due_yet(hub: Hub) -> None:
    identity = await hub.customer_writes("+420600000001")
    queued = [await hub.queue(identity, f"m{i}") for i in range(3)]
    async with hub.store.write() as connection:
        await connection.execute(
            update(outbox)
            .where(outbox.c.message_id == queued[1])
            .values(next_attempt_at=hub.clock() + timedelta(minutes=5))
        )
    _, jobs = await record_and_claim(
        hub.store, [], 5, worker="w", now=hub.clock(), lease=timedelta(seconds=30), follow=7
    )
    assert [j.message_id for j in jobs] == [queued[0]]  # m2 must not overtake m1


async def test_a_transient_failure_inside_a_run_gives_the_rest_back_and_the_order_holds(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = record_releases(monkeypatch)
    identity = await hub.customer_writes("+420600000001")
    queued = [await hub.queue(identity, f"m{i}") for i in range(4)]
    adapter = hub.adapters["wa"]
    send = adapter.send
    failed: list[str | None] = []

    async def m1_fails_once(message: OutboundMessage) -> SendReceipt:
        if message.text == "m1" and not failed:
            failed.append(message.text)
            adapter.attempts.append(message)
            raise ProviderUnavailable("503 from the provider")
        return await send(message)

    adapter.send = m1_fails_once  # type: ignore[method-assign]
    worker = hub.outbox(name="w")
    await run_workers_until(worker, lambda: worker.recorded >= 1 and worker.retried >= 1)

    assert texts(adapter) == ["m0"]
    rows = [await hub.outbox_row(message_id) for message_id in queued]
    assert [(r.state, r.attempts) for r in rows] == [
        (OutboxState.DONE, 1),
        (OutboxState.PENDING, 1),  # waits for its retry
        (OutboxState.PENDING, 0),  # given back unattempted: the claim's attempt is not counted
        (OutboxState.PENDING, 0),
    ]
    assert [r.locked_by for r in rows[1:]] == [None, None, None]
    assert released == [[rows[2].id, rows[3].id]]  # claimed with m0 as one run, never sent
    hub.clock.advance(60)
    assert await worker.drain() == 3
    assert texts(adapter) == ["m0", "m1", "m2", "m3"]
    assert [(await hub.outbox_row(m)).attempts for m in queued] == [1, 2, 1, 1]


async def test_rows_behind_a_run_are_given_back_when_the_lease_runs_short(
    store: Store, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    released = record_releases(monkeypatch)
    # half a lease of 0.1 µs has passed before the second row of any run could go: each run sends its
    # first row only and gives back the rest, which later claims take in order
    hub = await make_hub(
        store, lambda toml: make_settings(toml.replace("lease_seconds = 30.0", "lease_seconds = 0.0000001"))
    )
    identity = await hub.customer_writes("+420600000001")
    queued = [await hub.queue(identity, f"m{i}") for i in range(4)]
    worker = hub.outbox(name="w")
    await run_workers_until(worker, lambda: worker.recorded >= 4)
    assert texts(hub.adapters["wa"]) == ["m0", "m1", "m2", "m3"]
    assert [(await hub.outbox_row(m)).attempts for m in queued] == [1, 1, 1, 1]
    assert released  # runs were claimed, and their rest given back


async def test_stopping_gives_back_the_runs_claimed_but_not_started(
    store: Store, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graceful stop does not leave claimed rows to wait out their lease: another process sends them at once."""
    released = record_releases(monkeypatch)
    one_at_a_time = ACCOUNTS.replace("workers = 2", "workers = 1\nbatch = 1")
    hub = await make_hub(store, lambda toml: make_settings(toml.replace(ACCOUNTS, one_at_a_time)))
    queued = [await hub.queue(await hub.customer_writes(f"+42060000000{i}"), f"m{i}") for i in range(2)]
    adapter = hub.adapters["wa"]
    send = adapter.send
    sending, go_on = asyncio.Event(), asyncio.Event()

    async def held(message: OutboundMessage) -> SendReceipt:
        sending.set()
        await go_on.wait()
        return await send(message)

    adapter.send = held  # type: ignore[method-assign]
    worker = hub.outbox(name="w")
    await worker.start()
    worker.wake()
    await asyncio.wait_for(sending.wait(), 10)  # one run in flight, the other claimed and waiting its turn
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.05)
    go_on.set()
    await stopping

    rows = [await hub.outbox_row(message_id) for message_id in queued]
    assert sorted((r.state, r.attempts, r.locked_by) for r in rows) == [
        (OutboxState.DONE, 1, "w"),
        (OutboxState.PENDING, 0, None),  # given back, not waiting for its lease
    ]
    assert len(released) == 1
    assert await hub.outbox(name="next").drain() == 1  # at the same clock: no lease to wait out
    assert sorted(texts(adapter)) == ["m0", "m1"]


async def test_a_worker_given_fewer_runs_than_it_asked_claims_again_only_with_acceptances(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a claim that came back short, the next claim rides in the transaction that stores the worker's
    acceptances: no transaction of its own that stores nothing and finds nothing while sends are in flight."""
    import hub.outbox as outbox_module

    conversations = [await hub.customer_writes(f"+4206000003{i:02d}") for i in range(3)]
    for identity in conversations:
        for n in range(2):
            await hub.queue(identity, f"{identity}:{n}")
    transactions: list[tuple[int, int]] = []  # (acceptances stored, rows claimed)
    real = outbox_module.record_and_claim

    async def recording(store: Store, items: Any, limit: int, **kwargs: Any) -> Any:
        events, jobs = await real(store, items, limit, **kwargs)
        transactions.append((len(items), len(jobs)))
        return events, jobs

    monkeypatch.setattr(outbox_module, "record_and_claim", recording)
    adapter = hub.adapters["wa"]
    send = adapter.send

    async def slow_send(message: Any) -> Any:  # sends still in flight when the first claim comes back
        await asyncio.sleep(0.05)
        return await send(message)

    adapter.send = slow_send  # type: ignore[method-assign]
    worker = hub.outbox(name="w")
    await run_workers_until(worker, lambda: worker.recorded >= 6)

    assert transactions[0] == (0, 6)  # the first claim: three runs of two
    # the next transaction is the writer storing the first acceptance (a send takes 50 ms), not a claim of
    # the worker's own at once that could only find nothing
    assert transactions[1][0] > 0
    assert sum(stored for stored, _ in transactions) == 6
    assert len(adapter.sent) == 6


async def test_on_postgresql_acceptances_are_stored_apart_from_the_claims_that_wait_with_them(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: acceptances go alone (one statement that commits on its own) and the claim waiting with
    them goes next; SQLite: one transaction carries both (ADR 0019). Either way the claim sees the acceptance,
    so the next message of its conversation is due."""
    import hub.outbox as outbox_module

    identity = await hub.customer_writes("+420600000001")
    first, second = await hub.queue(identity, "first"), await hub.queue(identity, "second")
    calls: list[tuple[int, int]] = []  # (acceptances, runs asked for)
    real = outbox_module.record_and_claim

    async def recording(store: Store, items: Any, limit: int, **kwargs: Any) -> Any:
        calls.append((len(items), limit))
        return await real(store, items, limit, **kwargs)

    _, (job,) = await record_and_claim(hub.store, [], 1, worker="w", now=hub.clock(), lease=timedelta(seconds=30))
    monkeypatch.setattr(outbox_module, "record_and_claim", recording)
    worker = hub.outbox(name="w")
    # an acceptance and a claim both waiting when the writer starts (as when a run ends while others send)
    claimed = asyncio.create_task(worker._claim("w", 5))
    stored = worker._accepted_by_provider(job, "SM-first", hub.clock())
    await stored
    runs = await claimed

    assert [[j.message_id for j in run] for run in runs] == [[second]]
    assert (await hub.message(first)).provider_message_id == "SM-first"
    assert calls == ([(1, 0), (0, 5)] if hub.store.dialect == "postgresql" else [(1, 5)])


async def test_a_failure_to_publish_does_not_stop_the_writer(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the writer stored is stored: the workers go on, and every message is sent once."""
    ids = [await hub.customer_writes(f"+4206000003{i:02d}") for i in range(3)]
    queued = [await hub.queue(identity, f"{identity}:{n}") for n in range(2) for identity in ids]

    def broken(events: list[BusEvent]) -> None:
        raise RuntimeError("a subscriber broke")

    monkeypatch.setattr(hub.bus, "publish_all", broken)
    worker = hub.outbox(name="w")
    await run_workers_until(worker, lambda: worker.recorded >= len(queued))
    assert len(hub.adapters["wa"].sent) == len(queued)
    assert await outbox_counts(hub.store) == {OutboxState.DONE: len(queued)}
