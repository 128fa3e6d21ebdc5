"""The ingest and the outbox follow the behaviour an adapter declares (``ProviderFacts``), not its channel:
a hand-installed WhatsApp provider (``tests.fakes.RelayAdapter``) that subscribes on message and echoes our
sends is treated as Viber and Messenger are, on both engines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from hub.model import Channel, Echo, IgnoredEvent, InboundMessage, Role
from hub.registry import adapters_installed
from hub.settings import Settings
from hub.store import Store, store_group
from hub.store.agents import create_agent
from hub.store.tables import identities, messages
from tests.fakes import RecordingAdapter, RelayAdapter
from tests.integration.test_outbox import ACCOUNTS, Clock, Hub

RELAY = """
[[accounts]]
id = "relay"
channel = "whatsapp"
provider = "relay"
queue = "support"
relay_key = "rk"
relay_secret = "rs"
line = "+15550002222"
"""


async def make_hub(store: Store, make_settings: Callable[..., Settings]) -> Hub:
    with adapters_installed(RelayAdapter):
        settings = make_settings(ACCOUNTS + RELAY)
    clock = Clock()
    agent = await create_agent(store, login="ana", password="pw-ana-12345", role=Role.AGENT, now=clock())
    adapters: dict[str, RecordingAdapter] = {a.id: RecordingAdapter(a) for a in settings.accounts}
    adapters["relay"] = RelayAdapter(settings.account("relay"))
    return Hub(store=store, settings=settings, clock=clock, agent_id=agent.id, adapters=adapters)


async def _subscriptions(store: Store, account_id: str) -> list[str | None]:
    async with store.read() as connection:
        found = await connection.execute(
            select(identities.c.subscription)
            .where(identities.c.account_id == account_id)
            .order_by(identities.c.external_id)
        )
        return list(found.scalars())


async def test_a_customer_who_writes_is_subscribed_where_the_provider_says_so(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    hub = await make_hub(store, make_settings)
    await hub.customer_writes("+420600000001", account="relay")  # the set-based path
    await hub.customer_writes("+420600000001", account="wa")
    # a delivery that is not only customer messages takes the per-row path
    mixed = [
        IgnoredEvent(channel=Channel.WHATSAPP, account_id="relay", kind="reaction"),
        InboundMessage(
            channel=Channel.WHATSAPP,
            account_id="relay",
            sender_id="+420600000002",
            provider_message_id="relay-in-2",
            sent_at=hub.clock() - timedelta(seconds=5),
            text="hello",
        ),
    ]
    accounts = {a.id: a for a in hub.settings.accounts}
    (outcome,) = await store_group(store, [mixed], accounts, hub.clock())
    assert not isinstance(outcome, BaseException)
    assert outcome.stored == 1
    assert await _subscriptions(store, "relay") == ["subscribed", "subscribed"]
    assert await _subscriptions(store, "wa") == [None]


async def test_an_echo_stored_before_its_acceptance_gives_way_to_our_message_where_the_provider_echoes(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    hub = await make_hub(store, make_settings)
    identity = await hub.customer_writes("+420600000001", account="relay", ago=60)
    message_id = await hub.queue(identity, "our reply")
    adapter = hub.adapters["relay"]
    assert isinstance(adapter, RelayAdapter)
    adapter.accept_as = "relay-m1"
    # the provider's echo of the send arrives before its acceptance is stored: kept as sent outside the hub
    echo = Echo(
        channel=Channel.WHATSAPP,
        account_id="relay",
        recipient_id="+420600000001",
        provider_message_id="relay-m1",
        sent_at=hub.clock() + timedelta(seconds=1),
        text="our reply",
    )
    accounts = {a.id: a for a in hub.settings.accounts}
    (outcome,) = await store_group(store, [[echo]], accounts, hub.clock())
    assert not isinstance(outcome, BaseException)
    assert outcome.stored == 1

    await hub.outbox().drain()

    async with store.read() as connection:
        found = await connection.execute(
            select(messages.c.id, messages.c.author).where(messages.c.provider_message_id == "relay-m1")
        )
        rows = found.all()
    assert [row.id for row in rows] == [message_id]
    assert rows[0].author != "system"
