"""Outgoing webhooks end to end on both engines: the hub's ingest and routing record deliveries in their own
transactions, the dispatcher sends them signed to a real loopback receiver that verifies every signature with
the ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from hub.app import Hub
from hub.bootstrap import build_hub
from hub.model import Channel, InboundMessage, Role
from hub.registry import adapter_factories
from hub.settings import Settings
from hub.store import Store
from hub.store.agents import create_agent
from hub.store.bots import hand_off
from hub.store.contacts import create_contact, update_contact
from hub.store.routing import RoutingRefused, close_conversation, take, transfer_to_queue
from hub.store.tables import conversations, webhook_attempts, webhook_deliveries
from hub.store.webhooks_out import get_subscription, list_deliveries, replay_delivery, resume_subscription
from hub.usecases import Principal
from hub.usecases import webhooks_out as webhooks_out_usecases
from hub.usecases.webhooks_out import WebhookDraft
from hub.webhooks_out import WebhookDispatcher
from tests.fakes import recording_factory
from tests.ports import free_port
from tests.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

ACCOUNT = """
[[accounts]]
id = "wa-test"
channel = "whatsapp"
provider = "twilio"
queue = "support"
api_base = "http://127.0.0.1:9"
account_sid = "ACtest"
auth_token = "test-auth-token"
from_number = "+15550001111"

[webhooks_delivery]
first_retry_seconds = 0.05
max_retry_seconds = 0.2
poll_seconds = 0.05
lease_seconds = 30
"""


def hook(hook_id: str, url: str, events: str, *, extra: str = "") -> str:
    return f"""
[[webhooks_out]]
id = "{hook_id}"
url = "{url}"
secret = "env:HOOK_SECRET"
events = [{events}]
{extra}
"""


def message(customer: int, n: int) -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        account_id="wa-test",
        sender_id=f"+42060000{customer:04d}",
        provider_message_id=f"m-{customer}-{n}",
        sent_at=T0 + timedelta(seconds=n),
        text=f"customer {customer} says {n}",
    )


@pytest.fixture(autouse=True)
def _recording_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(adapter_factories(), "whatsapp.twilio", recording_factory)


@pytest.fixture
def settings_for(make_settings: Callable[..., Settings], database_url: str) -> Callable[[str], Settings]:
    def make(hooks: str) -> Settings:
        return make_settings(ACCOUNT + hooks, env={"HOOK_SECRET": SECRET}, database_url=database_url)

    return make


async def until(condition: Callable[[], bool], *, within: float = 30.0) -> None:
    """Wait for ``condition`` (the deadline only keeps a broken test from hanging)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the condition never became true")
        await asyncio.sleep(0.02)


async def statuses(store: Store) -> dict[str, int]:
    async with store.read() as connection:
        rows = await connection.execute(
            select(webhook_deliveries.c.status, func.count()).group_by(webhook_deliveries.c.status)
        )
        return {str(status): int(n) for status, n in rows}


async def ingest(hub: Hub, customers: int, each: int) -> None:
    for n in range(each):
        result = await hub.ingestor.submit([message(c, n) for c in range(customers)])
        assert result.stored == customers


async def test_a_receiver_down_for_a_while_then_back_gets_everything_once_and_in_order_per_conversation(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    receiver = Receiver(SECRET)  # not listening yet: every attempt is refused
    settings = settings_for(hook("crm", receiver.url, '"message.created", "conversation.opened"'))
    async with build_hub(settings, store=store) as hub:
        await ingest(hub, customers=4, each=5)
        await until(lambda: hub.webhooks_out.failed_attempts >= 8)  # retried while it is down
        assert (await statuses(store)) == {"pending": 24}  # 4 opened + 20 messages, nothing lost
        await receiver.start()
        try:
            await until(lambda: len(receiver.accepted) >= 24)
            await until(lambda: hub.webhooks_out.delivered >= 24)
        finally:
            await receiver.stop()
    assert receiver.bad_signatures == 0
    assert len(receiver.accepted) == 24
    assert len(receiver.unique()) == 24  # each delivered once
    assert (await statuses(store)) == {"delivered": 24}
    by_conversation: dict[int, list[tuple[str, str]]] = {}
    for item in receiver.accepted:
        text = item.data["message"]["text"] if item.type == "message.created" else "opened"
        by_conversation.setdefault(item.data["conversation"]["id"], []).append((item.type, text))
    assert len(by_conversation) == 4
    for conversation in by_conversation.values():
        customer = conversation[1][1].split()[1]
        assert conversation == [("conversation.opened", "opened")] + [
            ("message.created", f"customer {customer} says {n}") for n in range(5)
        ]
    page, _ = await list_deliveries(store, "crm", before=None, limit=50)
    assert all(d.history[-1].status_code == 200 for d in page)
    assert any(d.history[0].error and d.history[0].status_code is None for d in page)  # refused at first


async def test_an_endpoint_that_keeps_failing_is_paused_after_its_threshold_then_resumed(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    receiver = Receiver(SECRET, answer=500)
    settings = settings_for(hook("flaky", receiver.url, '"message.created"', extra="pause_after = 3"))
    await receiver.start()
    try:
        async with build_hub(settings, store=store) as hub:
            await ingest(hub, customers=1, each=1)
            await until(lambda: receiver.requests >= 3)
            subscription = await get_subscription(store, "flaky")
            for _ in range(200):  # the third failure's transaction commits after its request
                if subscription is not None and subscription.paused_at is not None:
                    break
                await asyncio.sleep(0.02)
                subscription = await get_subscription(store, "flaky")
            assert subscription is not None
            assert subscription.paused_at is not None
            assert subscription.consecutive_failures == 3
            (delivery,), _ = await list_deliveries(store, "flaky", before=None, limit=10)
            assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 3, 500)
            assert "HTTP 500" in (delivery.last_error or "")
            await asyncio.sleep(0.3)  # paused: not attempted again, however long it waits
            assert receiver.requests == 3
            receiver.answer = 204
            await resume_subscription(store, "flaky", now=datetime.now(UTC))
            hub.webhooks_out.kick()
            await until(lambda: len(receiver.accepted) == 1)
            await until(lambda: hub.webhooks_out.delivered == 1)
    finally:
        await receiver.stop()
    assert (await statuses(store)) == {"delivered": 1}


async def test_a_replayed_delivery_is_sent_again_with_the_same_webhook_id(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    receiver = Receiver(SECRET)
    settings = settings_for(hook("crm", receiver.url, '"message.created"'))
    await receiver.start()
    try:
        async with build_hub(settings, store=store) as hub:
            await ingest(hub, customers=1, each=1)
            await until(lambda: hub.webhooks_out.delivered == 1)
            (delivery,), _ = await list_deliveries(store, "crm", before=None, limit=10)
            replayed = await replay_delivery(store, "crm", delivery.id, now=datetime.now(UTC))
            assert replayed is not None
            assert replayed.status == "pending"
            hub.webhooks_out.kick()
            await until(lambda: hub.webhooks_out.delivered == 2)
            assert await replay_delivery(store, "other", delivery.id, now=datetime.now(UTC)) is None
    finally:
        await receiver.stop()
    assert [r.webhook_id for r in receiver.accepted] == [f"dlv_{delivery.id}"] * 2
    assert len(receiver.unique()) == 1


async def test_a_replay_to_a_paused_integration_waits_for_its_resume(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    receiver = Receiver(SECRET, answer=500)
    settings = settings_for(hook("flaky", receiver.url, '"message.created"', extra="pause_after = 1"))
    await receiver.start()
    try:
        async with build_hub(settings, store=store) as hub:
            await ingest(hub, customers=1, each=1)
            await until(lambda: receiver.requests == 1)
            for _ in range(200):  # the failure's transaction, which pauses it, commits after the request
                subscription = await get_subscription(store, "flaky")
                if subscription is not None and subscription.paused_at is not None:
                    break
                await asyncio.sleep(0.02)
            (delivery,), _ = await list_deliveries(store, "flaky", before=None, limit=10)
            receiver.answer = 204
            replayed = await replay_delivery(store, "flaky", delivery.id, now=datetime.now(UTC))
            assert replayed is not None
            assert replayed.status == "pending"
            hub.webhooks_out.kick()
            await asyncio.sleep(0.3)  # paused: the replay waits with the rest
            assert receiver.requests == 1
            await resume_subscription(store, "flaky", now=datetime.now(UTC))
            hub.webhooks_out.kick()
            await until(lambda: hub.webhooks_out.delivered == 1)
    finally:
        await receiver.stop()
    assert [r.webhook_id for r in receiver.accepted] == [f"dlv_{delivery.id}"]
    assert (await statuses(store)) == {"delivered": 1}


async def test_an_integration_scoped_to_queues_never_hears_of_a_conversation_outside_them(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    everything, sales_only = Receiver(SECRET), Receiver(SECRET)
    events = '"message.created", "conversation.opened", "conversation.assigned", "conversation.transferred", ' + (
        '"conversation.closed", "contact.updated"'
    )
    settings = settings_for(
        hook("all", everything.url, events) + hook("sales", sales_only.url, events, extra='queues = ["sales"]')
    )
    await everything.start()
    await sales_only.start()
    try:
        async with build_hub(settings, store=store) as hub:
            agent = await create_agent(store, login="ann", password="pw-123456789", role=Role.SUPERVISOR, now=T0)
            await ingest(hub, customers=2, each=1)  # both in "support"
            await until(lambda: len(everything.accepted) == 4)
            first, second = sorted({r.data["conversation"]["id"] for r in everything.accepted})
            now = datetime.now(UTC)
            await take(store, first, agent.id, now=now, any_queue=True)
            await transfer_to_queue(store, second, agent.id, "sales", now=now)
            await take(store, second, agent.id, now=now, any_queue=True)
            await close_conversation(store, second, agent.id, "resolved", now=now)
            contact = await create_contact(store, {"name": "Jo"}, now)
            await update_contact(store, contact.id, {"company": "Acme"}, now)
            hub.webhooks_out.kick()
            await until(lambda: len(everything.accepted) == 9)
            await until(lambda: len(sales_only.accepted) == 3)
            await asyncio.sleep(0.2)  # nothing more arrives for the scoped one
    finally:
        await everything.stop()
        await sales_only.stop()
    later = everything.accepted[4:]  # in order per conversation; conversations and contacts side by side
    assert [r.type for r in later if "conversation" in r.data and r.data["conversation"]["id"] == first] == [
        "conversation.assigned"
    ]
    assert [r.type for r in later if "conversation" in r.data and r.data["conversation"]["id"] == second] == [
        "conversation.transferred",
        "conversation.assigned",
        "conversation.closed",
    ]
    (closed,) = [r for r in later if r.type == "conversation.closed"]
    assert (closed.data["by"], closed.data["status"], closed.data["bot"]) == (agent.id, "resolved", None)
    (changed,) = [r for r in later if r.type == "contact.updated"]
    assert changed.data["contact"]["company"] == "Acme"
    # the scoped one heard only of the conversation once it was in "sales", and of no contact
    assert [(r.type, r.data["conversation"]["queue"]) for r in sales_only.accepted] == [
        ("conversation.transferred", "sales"),
        ("conversation.assigned", "sales"),
        ("conversation.closed", "sales"),
    ]
    assert {r.data["conversation"]["id"] for r in sales_only.accepted} == {second}


async def test_a_dispatcher_stopped_mid_delivery_loses_nothing(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    receiver = Receiver(SECRET, hold=asyncio.Event())
    settings = settings_for(hook("crm", receiver.url, '"message.created"'))
    await receiver.start()
    try:
        async with build_hub(settings, store=store) as hub:
            await ingest(hub, customers=1, each=3)
            await receiver.arrived.wait()  # the first delivery is on the wire, unanswered
            await hub.webhooks_out.stop()  # the process goes away mid-delivery
            assert (await statuses(store)) == {"pending": 3}
            assert hub.webhooks_out.delivered == 0
            receiver.hold.set()  # type: ignore[union-attr]
            again = WebhookDispatcher(store, hub.bus, settings, clock=hub.clock)  # the next process
            await again.start()
            try:
                await until(lambda: again.delivered == 3)
            finally:
                await again.stop()
            hub.webhooks_out = again  # what the hub stops on its way out
    finally:
        receiver.hold.set()  # type: ignore[union-attr]
        await receiver.stop()
    assert (await statuses(store)) == {"delivered": 3}
    assert [r.data["message"]["text"] for r in receiver.unique()] == [f"customer 0 says {n}" for n in range(3)]


async def test_two_dispatchers_on_one_database_never_send_a_delivery_twice(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    receiver = Receiver(SECRET)
    settings = settings_for(hook("crm", receiver.url, '"message.created"'))
    await receiver.start()
    try:
        async with build_hub(settings, store=store) as hub:
            other = WebhookDispatcher(store, hub.bus, settings, clock=hub.clock)
            await other.start()
            try:
                await ingest(hub, customers=10, each=4)
                await until(lambda: hub.webhooks_out.delivered + other.delivered == 40)
            finally:
                await other.stop()
    finally:
        await receiver.stop()
    assert len(receiver.accepted) == 40 == len(receiver.unique())


async def test_delivered_deliveries_are_swept_keep_days_after_delivery_with_their_attempts(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    receiver = Receiver(SECRET)
    settings = settings_for(hook("crm", receiver.url, '"message.created"'))
    settings = replace(settings, webhooks_delivery=replace(settings.webhooks_delivery, keep_days=7))
    await receiver.start()
    try:
        async with build_hub(settings, store=store) as hub:
            await ingest(hub, customers=2, each=2)
            await until(lambda: hub.webhooks_out.delivered == 4)
            delivered_at = hub.clock()

            def sweeper(days: float) -> WebhookDispatcher:
                return WebhookDispatcher(store, hub.bus, settings, clock=lambda: delivered_at + timedelta(days=days))

            assert await sweeper(6).prune() == 0  # within the retention
            assert await statuses(store) == {"delivered": 4}
            assert await sweeper(8).prune() == 4
    finally:
        await receiver.stop()
    assert await statuses(store) == {}
    async with store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(webhook_attempts))).scalar_one() == 0


def test_the_free_port_helper_gives_a_port() -> None:
    assert 0 < free_port() < 65536


async def test_a_change_that_is_refused_leaves_no_delivery_and_one_that_commits_leaves_one(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    settings = settings_for(hook("crm", f"http://127.0.0.1:{free_port()}/hook", '"conversation.closed"'))
    async with build_hub(settings, store=store) as hub:
        await hub.webhooks_out.stop()  # nothing is sent: only what is recorded counts here
        agent = await create_agent(store, login="ann", password="pw-123456789", role=Role.SUPERVISOR, now=T0)
        await ingest(hub, customers=1, each=1)
        async with store.read() as connection:
            conversation_id = (await connection.execute(select(conversations.c.id))).scalar_one()
        now = datetime.now(UTC)
        await take(store, conversation_id, agent.id, now=now, any_queue=True)
        with pytest.raises(RoutingRefused):  # not a status the queue allows: rolled back
            await close_conversation(store, conversation_id, agent.id, "no-such-status", now=now)
        assert await statuses(store) == {}
        await close_conversation(store, conversation_id, agent.id, "resolved", now=now)
        assert await statuses(store) == {"pending": 1}


async def test_a_bot_conversation_opened_and_handed_off_reaches_the_integration(
    settings_for: Callable[[str], Settings], store: Store
) -> None:
    receiver = Receiver(SECRET)
    bot = f"""
[[bots]]
id = "faq"
kind = "webhook"
queues = ["support"]
url = "http://127.0.0.1:{free_port()}/bot"
secret = "{SECRET}"
token = "bot-token-0123456789"
"""
    settings = settings_for(hook("crm", receiver.url, '"conversation.opened", "conversation.handed_off"') + bot)
    await receiver.start()
    try:
        async with build_hub(settings, store=store) as hub:
            await ingest(hub, customers=1, each=1)
            async with store.read() as connection:
                conversation_id = (await connection.execute(select(conversations.c.id))).scalar_one()
            with contextlib.suppress(RoutingRefused):  # the bot runner may have handed it off already
                await hand_off(store, conversation_id, reason="bot_asked", bot_id="faq", now=datetime.now(UTC))
            await until(lambda: len(receiver.accepted) == 2)
    finally:
        await receiver.stop()
    opened, handed_off = receiver.accepted
    assert (opened.type, handed_off.type) == ("conversation.opened", "conversation.handed_off")
    assert opened.data["conversation"]["state"] == "bot"
    assert handed_off.data["queue"] == "support"
    assert handed_off.data["reason"] in ("bot_asked", "bot_failed")
    assert handed_off.data["conversation"]["state"] == "waiting"


async def test_a_subscription_and_a_replay_made_through_the_use_cases_are_delivered_without_waiting_for_a_poll(
    make_settings: Callable[..., Settings], database_url: str, store: Store
) -> None:
    """The dispatcher polls only every ``poll_seconds`` (here far longer than the test may wait): an admin's new
    subscription, and a replay, wake it themselves."""
    receiver = Receiver(SECRET)
    slow_poll = ACCOUNT.replace("poll_seconds = 0.05", "poll_seconds = 600")
    settings = make_settings(slow_poll, database_url=database_url)
    admin = Principal.operator()
    await receiver.start()
    try:
        async with build_hub(settings, store=store) as hub:
            await asyncio.sleep(0.1)  # the dispatcher has looked, found no subscription, and will not look for 600 s
            draft = WebhookDraft(id="crm", url=receiver.url, secret=SECRET, events=["message.created"])
            await webhooks_out_usecases.create(hub, admin, draft)
            await ingest(hub, customers=1, each=1)
            await until(lambda: hub.webhooks_out.delivered == 1, within=10)
            (delivery,), _ = await list_deliveries(store, "crm", before=None, limit=10)
            await webhooks_out_usecases.replay(hub, admin, "crm", delivery.id)
            await until(lambda: hub.webhooks_out.delivered == 2, within=10)
    finally:
        await receiver.stop()
    assert [r.webhook_id for r in receiver.accepted] == [f"dlv_{delivery.id}"] * 2
