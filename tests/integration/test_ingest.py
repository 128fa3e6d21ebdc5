"""Storage and ingest on SQLite and PostgreSQL: idempotent, atomic, one open
conversation per identity under concurrency, windows on the provider's clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from hub.bus import EventBus
from hub.ingest import MAX_IGNORED_KINDS, Ingestor
from hub.model import (
    Channel,
    ChannelAccount,
    ConversationState,
    DeliveryReceipt,
    DeliveryState,
    Echo,
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    MessageKind,
    Subscription,
    SubscriptionChanged,
)
from hub.store import Store, store_group
from hub.store import ingest as store_ingest
from hub.store.tables import conversations, identities, messages, timeline_events

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WA = ChannelAccount(id="wa", channel=Channel.WHATSAPP, provider="cloud", queue="support", api_base="http://x")
VB = ChannelAccount(
    id="vb", channel=Channel.VIBER, provider="viber", queue="sales", api_base="http://x", subscribes_on_message=True
)
WA_REOPEN = ChannelAccount(
    id="wa2", channel=Channel.WHATSAPP, provider="cloud", queue="support", api_base="http://x", reopen_after_close=True
)
ACCOUNTS = {a.id: a for a in (WA, VB, WA_REOPEN)}


def make_message(n: int = 1, **overrides: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "channel": Channel.WHATSAPP,
        "account_id": "wa",
        "sender_id": "420600000001",
        "provider_message_id": f"wamid.{n}",
        "sent_at": T0 + timedelta(seconds=n),
        "text": f"hello {n}",
        "sender_name": "Jana",
    }
    values.update(overrides)
    return InboundMessage(**values)


def make_ingestor(store: Store, bus: EventBus | None = None, clock: Callable[[], datetime] | None = None) -> Ingestor:
    return Ingestor(store, bus or EventBus(), list(ACCOUNTS.values()), clock=clock or (lambda: T0 + timedelta(hours=1)))


async def count(store: Store, table: Any, *where: Any) -> int:
    async with store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def rows(store: Store, query: Any) -> list[Any]:
    async with store.read() as connection:
        return list((await connection.execute(query)).all())


async def test_a_message_creates_identity_waiting_conversation_and_message(store: Store) -> None:
    bus = EventBus()
    ingestor = make_ingestor(store, bus)
    async with bus.subscribe() as events:
        result = await ingestor.submit([make_message(1, kind=MessageKind.TEXT)])
        published = [events.get_nowait().kind for _ in range(events.qsize())]
    await ingestor.stop()
    assert (result.stored, result.duplicates) == (1, 0)
    [identity] = await rows(store, select(identities))
    assert identity.external_id == "420600000001"
    assert identity.display_name == "Jana"
    assert identity.last_inbound_at == T0 + timedelta(seconds=1)
    assert identity.last_received_at == T0 + timedelta(hours=1)  # our clock, kept beside the provider's
    [conversation] = await rows(store, select(conversations))
    assert conversation.state == ConversationState.WAITING
    assert conversation.queue_id == "support"
    assert conversation.waiting_since == T0 + timedelta(hours=1)
    assert await count(store, messages) == 1
    assert await count(store, timeline_events, timeline_events.c.kind == "opened") == 1
    assert published == ["conversation.waiting", "message.created"]


async def test_a_redelivered_message_changes_nothing_and_is_reported_duplicate(store: Store) -> None:
    ingestor = make_ingestor(store)
    first = await ingestor.submit([make_message(1)])
    again = await ingestor.submit([make_message(1, text="tampered", sent_at=T0 + timedelta(days=1))])
    await ingestor.stop()
    assert first.stored == 1
    assert again.duplicate_only
    [message] = await rows(store, select(messages))
    assert message.text == "hello 1"
    [identity] = await rows(store, select(identities))
    assert identity.last_inbound_at == T0 + timedelta(seconds=1)


async def test_the_window_clock_is_the_latest_provider_timestamp_even_out_of_order(store: Store) -> None:
    ingestor = make_ingestor(store)
    await ingestor.submit([make_message(50)])
    await ingestor.submit([make_message(10)])  # older, delivered late
    await ingestor.stop()
    [identity] = await rows(store, select(identities))
    assert identity.last_inbound_at == T0 + timedelta(seconds=50)
    assert identity.first_inbound_at == T0 + timedelta(seconds=10)


async def test_concurrent_ingest_keeps_one_open_conversation_per_identity(store: Store) -> None:
    ingestor = make_ingestor(store)
    results = await asyncio.gather(*(ingestor.submit([make_message(n)]) for n in range(60)))
    await ingestor.stop()
    assert sum(r.stored for r in results) == 60
    assert await count(store, conversations) == 1
    assert await count(store, messages) == 60


async def test_two_writers_like_two_processes_open_one_conversation(database_url: str) -> None:
    """Two Stores (two connection pools, as two hub processes) race on one identity."""
    first, second = Store(database_url), Store(database_url)
    await first.migrate()
    try:
        now = T0 + timedelta(hours=1)
        batches = [
            store_group(store, [[make_message(n)]], ACCOUNTS, now)
            for n in range(20)
            for store in ((first, second)[n % 2],)
        ]
        results = await asyncio.gather(*batches)
        assert all(not isinstance(r, BaseException) for group in results for r in group)
        assert await count(first, conversations, conversations.c.state != "closed") == 1
        assert await count(first, messages) == 20
    finally:
        await first.close()
        await second.close()


async def test_the_same_message_from_two_writers_is_stored_once(database_url: str) -> None:
    first, second = Store(database_url), Store(database_url)
    await first.migrate()
    try:
        now = T0 + timedelta(hours=1)
        results = await asyncio.gather(
            *(store_group(s, [[make_message(7)]], ACCOUNTS, now) for s in (first, second, first, second))
        )
        outcomes = [group[0] for group in results]
        assert all(not isinstance(o, BaseException) for o in outcomes)
        assert sum(o.stored for o in outcomes if not isinstance(o, BaseException)) == 1
        assert await count(first, messages) == 1
    finally:
        await first.close()
        await second.close()


async def test_a_failing_event_rolls_back_its_whole_delivery_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store_ingest, "_store_receipt", broken)
    receipt = DeliveryReceipt(
        channel=Channel.WHATSAPP,
        account_id="wa",
        recipient_id="420600000001",
        state=DeliveryState.DELIVERED,
        occurred_at=T0,
        provider_message_ids=("wamid.out",),
    )
    other = make_message(99, sender_id="420600000002")
    results = await store_group(store, [[make_message(1), make_message(2), receipt], [other]], ACCOUNTS, T0)
    assert isinstance(results[0], RuntimeError)
    assert not isinstance(results[1], BaseException)
    # nothing of the failed delivery, all of the other one
    assert await count(store, identities) == 1
    assert await count(store, messages) == 1
    assert await count(store, conversations) == 1
    [kept] = await rows(store, select(messages.c.provider_message_id))
    assert kept.provider_message_id == "wamid.99"


async def test_an_accounts_last_webhook_is_stamped_at_most_once_a_second(store: Store) -> None:
    from hub.ingest import HEALTH_STAMP_EVERY
    from hub.store.tables import account_health

    clock = [T0]
    ingestor = make_ingestor(store, clock=lambda: clock[0])

    async def stamps() -> dict[str, datetime]:
        return {r.account_id: r.last_webhook_at for r in await rows(store, select(account_health))}

    await ingestor.submit([make_message(1)])
    assert await stamps() == {"wa": T0}
    clock[0] = T0 + HEALTH_STAMP_EVERY / 2
    await ingestor.submit([make_message(2)])
    await ingestor.submit([make_message(3, account_id="vb", channel=Channel.VIBER)])  # another account: at once
    assert await stamps() == {"wa": T0, "vb": clock[0]}
    clock[0] = T0 + HEALTH_STAMP_EVERY
    await ingestor.submit([make_message(4)])
    assert (await stamps())["wa"] == clock[0]
    clock[0] = T0  # a clock set back: stamped again rather than left ahead
    await ingestor.submit([make_message(5)])
    await ingestor.stop()
    assert (await stamps())["wa"] == T0
    assert await count(store, messages) == 5


async def test_a_group_of_customer_messages_needs_no_savepoint_of_its_own(store: Store) -> None:
    statements: list[str] = []

    def heard(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(store.writer.sync_engine, "before_cursor_execute", heard)
    try:
        results = await store_group(store, [[make_message(1)], [make_message(2, sender_id="2")]], ACCOUNTS, T0)
    finally:
        event.remove(store.writer.sync_engine, "before_cursor_execute", heard)
    assert [r.stored for r in results if not isinstance(r, BaseException)] == [1, 1]
    assert "INSERT" in statements
    assert "SAVEPOINT" not in statements  # the fast path's failure is retried in a new transaction instead


async def test_a_fast_path_failing_after_its_writes_leaves_each_message_stored_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = store_ingest.store_messages_bulk
    calls = 0

    async def write_then_fail(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        await original(*args, **kwargs)  # every row written, then the failure: none of them may stay
        raise RuntimeError("bulk boom")

    monkeypatch.setattr(store_ingest, "store_messages_bulk", write_then_fail)
    other = make_message(3, sender_id="420600000002")
    results = await store_group(store, [[make_message(1), make_message(2)], [other]], ACCOUNTS, T0)
    assert calls == 1  # the retry goes one delivery at a time
    stored = [r for r in results if not isinstance(r, BaseException)]
    assert [(r.stored, r.duplicates) for r in stored] == [(2, 0), (1, 0)]
    assert [type(e).__name__ for e in stored[0].events] == ["ConversationWaiting", "MessageCreated", "MessageCreated"]
    assert await count(store, messages) == 3
    assert await count(store, identities) == 2
    assert await count(store, conversations) == 2
    monkeypatch.setattr(store_ingest, "store_messages_bulk", original)
    again = await store_group(store, [[make_message(1)], [other]], ACCOUNTS, T0)
    assert [(r.stored, r.duplicates) for r in again if not isinstance(r, BaseException)] == [(0, 1), (0, 1)]


async def test_a_submit_of_a_failing_delivery_raises_and_stores_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = store_ingest._store_message
    calls = 0

    async def fail_second(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("boom")
        await original(*args, **kwargs)

    async def fail_bulk(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bulk boom")

    monkeypatch.setattr(store_ingest, "store_messages_bulk", fail_bulk)  # so it falls back to one by one
    monkeypatch.setattr(store_ingest, "_store_message", fail_second)
    ingestor = make_ingestor(store)
    with pytest.raises(RuntimeError, match=r"^boom$"):
        await ingestor.submit([make_message(1), make_message(2)])
    await ingestor.stop()
    assert await count(store, messages) == 0
    assert await count(store, identities) == 0


async def test_receipts_move_messages_forward_never_backward(store: Store) -> None:
    ingestor = make_ingestor(store)
    await ingestor.submit([make_message(1)])
    async with store.write() as connection:
        [row] = (await connection.execute(select(messages.c.conversation_id, messages.c.identity_id))).all()
        await connection.execute(
            messages.insert().values(
                conversation_id=row.conversation_id,
                identity_id=row.identity_id,
                account_id="wa",
                direction="out",
                author="agent",
                kind="text",
                text="hi",
                provider_message_id="wamid.out",
                sent_at=T0 + timedelta(minutes=1),
                created_at=T0 + timedelta(minutes=1),
                delivery_state="sent",
            )
        )

    def receipt(state: DeliveryState) -> DeliveryReceipt:
        return DeliveryReceipt(
            channel=Channel.WHATSAPP,
            account_id="wa",
            recipient_id="420600000001",
            state=state,
            occurred_at=T0 + timedelta(minutes=2),
            provider_message_ids=("wamid.out",),
        )

    async def state() -> str:
        [value] = await rows(store, select(messages.c.delivery_state).where(messages.c.direction == "out"))
        return str(value.delivery_state)

    await ingestor.submit([receipt(DeliveryState.READ)])
    assert await state() == "read"
    await ingestor.submit([receipt(DeliveryState.DELIVERED)])  # late, out of order
    assert await state() == "read"
    await ingestor.stop()


async def test_a_watermark_receipt_marks_everything_sent_before_it(store: Store) -> None:
    ingestor = make_ingestor(store)
    await ingestor.submit([make_message(1)])
    async with store.write() as connection:
        [row] = (await connection.execute(select(messages.c.conversation_id, messages.c.identity_id))).all()
        for n, minutes in enumerate((1, 2, 10)):
            await connection.execute(
                messages.insert().values(
                    conversation_id=row.conversation_id,
                    identity_id=row.identity_id,
                    account_id="wa",
                    direction="out",
                    author="agent",
                    kind="text",
                    provider_message_id=f"m_{n}",
                    sent_at=T0 + timedelta(minutes=minutes),
                    created_at=T0,
                    delivery_state="sent",
                )
            )
    read = DeliveryReceipt(
        channel=Channel.WHATSAPP,
        account_id="wa",
        recipient_id="420600000001",
        state=DeliveryState.READ,
        occurred_at=T0 + timedelta(minutes=5),
        watermark=T0 + timedelta(minutes=5),
    )
    result = await ingestor.submit([read])
    await ingestor.stop()
    assert result.updated == 2
    query = select(messages.c.provider_message_id, messages.c.delivery_state).where(messages.c.direction == "out")
    states = {r.provider_message_id: r.delivery_state for r in await rows(store, query)}
    assert states == {"m_0": "read", "m_1": "read", "m_2": "sent"}


async def close_all(store: Store) -> None:
    async with store.write() as connection:
        await connection.execute(update(conversations).values(state="closed", status_id="resolved", closed_at=T0))


async def test_after_close_a_new_message_opens_a_new_conversation_by_default(store: Store) -> None:
    ingestor = make_ingestor(store)
    await ingestor.submit([make_message(1)])
    await close_all(store)
    await ingestor.submit([make_message(2)])
    await ingestor.stop()
    states = sorted(r.state for r in await rows(store, select(conversations.c.state)))
    assert states == ["closed", "waiting"]


async def test_an_account_set_to_reopen_puts_the_last_conversation_back_in_its_queue(store: Store) -> None:
    ingestor = make_ingestor(store)
    await ingestor.submit([make_message(1, account_id="wa2")])
    await close_all(store)
    await ingestor.submit([make_message(2, account_id="wa2")])
    await ingestor.stop()
    [conversation] = await rows(store, select(conversations))
    assert conversation.state == "waiting"
    assert conversation.status_id is None
    assert await count(store, timeline_events, timeline_events.c.kind == "reopened") == 1


async def test_viber_subscription_states_follow_the_provider_clock(store: Store) -> None:
    ingestor = make_ingestor(store)

    def change(state: Subscription, minutes: int) -> SubscriptionChanged:
        return SubscriptionChanged(
            channel=Channel.VIBER,
            account_id="vb",
            user_id="01234567890A=",
            state=state,
            occurred_at=T0 + timedelta(minutes=minutes),
            display_name="John",
        )

    async def subscription() -> str:
        [row] = await rows(store, select(identities.c.subscription))
        return str(row.subscription)

    await ingestor.submit([change(Subscription.OPENED, 1)])
    assert await subscription() == "opened"
    await ingestor.submit([change(Subscription.SUBSCRIBED, 2)])
    assert await subscription() == "subscribed"
    await ingestor.submit([change(Subscription.OPENED, 3)])  # opening the chat again is no downgrade
    assert await subscription() == "subscribed"
    await ingestor.submit([change(Subscription.UNSUBSCRIBED, 5)])
    await ingestor.submit([change(Subscription.SUBSCRIBED, 4)])  # late and stale
    assert await subscription() == "unsubscribed"
    viber_message = make_message(
        1, channel=Channel.VIBER, account_id="vb", sender_id="01234567890A=", sent_at=T0 + timedelta(minutes=6)
    )
    await ingestor.submit([viber_message])  # writing subscribes again
    await ingestor.stop()
    assert await subscription() == "subscribed"
    # a subscription event alone opens no conversation; the message does
    assert await count(store, conversations) == 1
    [identity] = await rows(store, select(identities))
    assert identity.first_inbound_at == T0 + timedelta(minutes=6)


async def test_echoes_of_our_own_sends_are_not_stored_twice(store: Store) -> None:
    ingestor = make_ingestor(store)
    await ingestor.submit([make_message(1)])
    echo = Echo(
        channel=Channel.WHATSAPP,
        account_id="wa",
        recipient_id="420600000001",
        provider_message_id="m_echo",
        sent_at=T0 + timedelta(minutes=1),
        text="sent from the provider's inbox",
    )
    first = await ingestor.submit([echo])
    again = await ingestor.submit([echo])
    await ingestor.stop()
    assert first.stored == 1
    assert again.duplicate_only
    [row] = await rows(store, select(messages).where(messages.c.direction == "out"))
    assert row.author == "system"
    [identity] = await rows(store, select(identities))
    assert identity.last_inbound_at == T0 + timedelta(seconds=1)  # an echo is not the customer writing


async def test_ignored_kinds_are_acknowledged_and_counted(store: Store) -> None:
    ingestor = make_ingestor(store)
    events: list[InboundEvent] = [IgnoredEvent(channel=Channel.MESSENGER, account_id="wa", kind="standby")] * 2
    result = await ingestor.submit(events)
    await ingestor.stop()
    assert result.ignored == ("messenger:standby", "messenger:standby")
    assert ingestor.ignored_counts["messenger:standby"] == 2


async def test_ignored_kinds_past_the_limit_are_counted_as_other_so_the_metrics_labels_stay_few(store: Store) -> None:
    # some kinds carry a name from the provider's payload (WhatsApp's "message:<type>"); each would be a label
    ingestor = make_ingestor(store)
    kinds = [f"message:type{n}" for n in range(MAX_IGNORED_KINDS + 5)]
    await ingestor.submit([IgnoredEvent(channel=Channel.WHATSAPP, account_id="wa", kind=kind) for kind in kinds])
    await ingestor.submit([IgnoredEvent(channel=Channel.WHATSAPP, account_id="wa", kind="message:type0")])
    await ingestor.stop()
    assert len(ingestor.ignored_counts) == MAX_IGNORED_KINDS + 1
    assert ingestor.ignored_counts["whatsapp:other"] == 5
    assert ingestor.ignored_counts["whatsapp:message:type0"] == 2  # a kind counted already goes on by name


async def test_an_event_for_an_unconfigured_account_is_refused_before_storage(store: Store) -> None:
    ingestor = make_ingestor(store)
    with pytest.raises(KeyError):
        await ingestor.submit([make_message(1, account_id="elsewhere")])
    await ingestor.stop()
    assert await count(store, messages) == 0


async def test_many_deliveries_share_few_transactions(store: Store) -> None:
    ingestor = make_ingestor(store)
    await asyncio.gather(*(ingestor.submit([make_message(n, sender_id=f"c{n}")]) for n in range(100)))
    await ingestor.stop()
    assert ingestor.deliveries == 100
    assert ingestor.groups < 100  # group commit: concurrent deliveries shared commits
    assert await count(store, conversations) == 100


async def test_a_group_of_message_deliveries_is_stored_as_one_by_one_would(store: Store) -> None:
    """The set-based fast path: duplicates inside the group, two customers, order kept."""
    viber = {"channel": Channel.VIBER, "account_id": "vb", "sender_id": "v1"}
    deliveries = [
        [make_message(1), make_message(2)],
        [make_message(1)],  # a provider retry arriving in the same group
        [make_message(3, sender_id="420600000002"), make_message(4, **viber)],
    ]
    results = await store_group(store, deliveries, ACCOUNTS, T0 + timedelta(hours=1))
    counts = [(r.stored, r.duplicates) for r in results if not isinstance(r, BaseException)]
    assert counts == [(2, 0), (0, 1), (2, 0)]
    assert await count(store, conversations) == 3
    ordered = await rows(store, select(messages.c.provider_message_id).order_by(messages.c.id))
    assert [r.provider_message_id for r in ordered] == ["wamid.1", "wamid.2", "wamid.3", "wamid.4"]
    [viber_identity] = await rows(store, select(identities).where(identities.c.account_id == "vb"))
    assert viber_identity.subscription == "subscribed"
    first = results[0]
    assert not isinstance(first, BaseException)
    assert [e.kind for e in first.events] == ["conversation.waiting", "message.created", "message.created"]


async def test_when_the_fast_path_fails_each_delivery_is_stored_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.store import _bulk_ingest

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bulk path broken")

    monkeypatch.setattr(_bulk_ingest, "_insert_messages", broken)
    results = await store_group(
        store, [[make_message(1)], [make_message(2, sender_id="other")]], ACCOUNTS, T0 + timedelta(hours=1)
    )
    assert [r.stored for r in results if not isinstance(r, BaseException)] == [1, 1]
    assert await count(store, messages) == 2
    assert await count(store, identities) == 2


async def test_a_journal_records_a_groups_events_in_delivery_order(store: Store) -> None:
    """The fast path stores its deliveries first; the journal still numbers events as the deliveries came."""
    from sqlalchemy.ext.asyncio import AsyncConnection

    from hub.bus import BusEvent

    seen: list[BusEvent] = []

    async def journal(connection: AsyncConnection, events: list[BusEvent]) -> list[BusEvent]:
        seen.extend(events)
        return events

    ignored = IgnoredEvent(channel=Channel.WHATSAPP, account_id="wa", kind="standby")
    deliveries: list[list[InboundEvent]] = [
        [make_message(1, sender_id="first"), ignored],  # not all messages: stored one by one, after the others
        [make_message(2, sender_id="second")],
        [make_message(3, sender_id="third")],
    ]
    results = await store_group(store, deliveries, ACCOUNTS, T0 + timedelta(hours=1), journal=journal)
    in_order = [e for r in results if not isinstance(r, BaseException) for e in r.events]
    assert len(in_order) == 6  # three new customers: a waiting conversation and a message each
    assert seen == in_order


@pytest.mark.parametrize("failure", ["raises", "miscounts"])
async def test_a_journal_failing_after_its_writes_leaves_the_group_stored_and_its_events_unrecorded(
    store: Store, failure: str
) -> None:
    """The journal has no savepoint (ADR 0052): the group is stored again without it, its writes are gone."""
    from sqlalchemy.ext.asyncio import AsyncConnection

    from hub.bus import BusEvent
    from hub.store.events import insert_events
    from hub.store.tables import bus_log

    calls = 0

    async def journal(connection: AsyncConnection, events: list[BusEvent]) -> list[BusEvent]:
        nonlocal calls
        calls += 1
        await insert_events(connection, store.dialect, [{"kind": "message.created"}], now=T0)
        if failure == "raises":
            raise RuntimeError("journal on fire")
        return events[:-1]

    deliveries: list[list[InboundEvent]] = [[make_message(1)], [make_message(2, sender_id="second")]]
    results = await store_group(store, deliveries, ACCOUNTS, T0 + timedelta(hours=1), journal=journal)
    assert calls == 1
    outcomes = [r for r in results if not isinstance(r, BaseException)]
    assert [r.stored for r in outcomes] == [1, 1]
    assert [type(e).__name__ for r in outcomes for e in r.events] == ["ConversationWaiting", "MessageCreated"] * 2
    assert await count(store, messages) == 2
    assert await count(store, bus_log) == 0  # the journal's row went with the first transaction


async def test_a_delivery_stored_is_acknowledged_even_if_publishing_its_events_fails(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus()
    ingestor = make_ingestor(store, bus)

    def broken(events: list[Any]) -> None:
        raise RuntimeError("a subscriber broke")

    monkeypatch.setattr(bus, "publish_all", broken)
    result = await ingestor.submit([make_message(1)])
    assert result.stored == 1  # durable, so acknowledged: the provider must not send it again
    monkeypatch.undo()
    assert (await ingestor.submit([make_message(2)])).stored == 1
    await ingestor.stop()
    assert await count(store, messages) == 2


async def test_an_unexpected_failure_fails_its_group_and_the_ingest_keeps_serving(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, such a failure ended the group-commit task: every later delivery waited for ever, and so did
    the server's shutdown."""
    ingestor = make_ingestor(store)
    real_commit = ingestor._commit
    failures = [RuntimeError("a bug")]

    async def commit_once_broken(group: Any) -> None:
        if failures:
            raise failures.pop()
        await real_commit(group)

    monkeypatch.setattr(ingestor, "_commit", commit_once_broken)
    # bounds on a hang, not measures of speed
    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(ingestor.submit([make_message(1)]), timeout=10)
    assert (await asyncio.wait_for(ingestor.submit([make_message(2)]), timeout=10)).stored == 1
    await asyncio.wait_for(ingestor.stop(), timeout=10)
    assert await count(store, messages) == 1
