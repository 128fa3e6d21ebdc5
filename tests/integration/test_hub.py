"""The composition root: ``build_hub`` wires the parts, the hub starts and stops them in one order.

Real parts on both engines: the store, the ingest, the notifier's journal, the router and the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from hub.bootstrap import build_hub
from hub.errors import ConfigError
from hub.events import ConversationWaiting, HubEvent, MessageCreated, Recorded, unwrapped
from hub.model import Channel, InboundMessage
from hub.ports import ChannelAdapter
from hub.registry import adapter_factories
from hub.settings import Settings
from hub.store import Store
from hub.store.catalogue import load_queues
from hub.store.tables import bus_log, messages
from tests.fakes import RecordingAdapter, recording_factory

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
"""


def message(n: int) -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        account_id="wa-test",
        sender_id=f"+4206000000{n:02d}",
        provider_message_id=f"hub-{n}",
        sent_at=T0 + timedelta(seconds=n),
        text=f"hello {n}",
    )


async def count(store: Store, table: object) -> int:
    async with store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setitem(adapter_factories(), "whatsapp.twilio", recording_factory)
    return make_settings(ACCOUNT, database_url=database_url)


async def test_a_started_hub_has_seeded_its_catalogue_and_records_ingest_events_with_the_messages(
    settings: Settings, store: Store
) -> None:
    async with build_hub(settings, store=store, clock=lambda: T0 + timedelta(minutes=1)) as hub:
        assert {"support", "sales"} <= set(await _queues(hub.store))
        async with hub.bus.subscribe() as events:
            result = await hub.ingestor.submit([message(1)])
            assert result.stored == 1
            published: list[HubEvent] = [events.get_nowait() for _ in range(events.qsize())]
        # the ingest was given the notifier's journal: its events come numbered, written in its transaction
        assert all(isinstance(e, Recorded) for e in published)
        assert [type(unwrapped(e)) for e in published] == [ConversationWaiting, MessageCreated]
        assert await count(store, bus_log) >= 2
    assert not hub.started


async def test_configured_adapters_are_built_when_the_hub_starts_and_configured_before_the_workers_send(
    settings: Settings, store: Store
) -> None:
    hub = build_hub(settings, store=store)
    seen: list[tuple[list[str], bool]] = []

    def configure(adapters: Mapping[str, ChannelAdapter]) -> None:
        seen.append((sorted(adapters), hub.started))

    hub.configure_adapters(configure)
    assert dict(hub.adapters) == {}  # no event loop is needed to build a hub; its HTTP session opens at start
    async with hub:
        assert isinstance(hub.adapters["wa-test"], RecordingAdapter)
        assert hub.outbox._adapters is hub.adapters  # the outbox sends through the adapters the hub built
    assert seen == [(["wa-test"], False)]


async def test_stopping_drains_the_ingest_before_the_database_is_released(settings: Settings, store: Store) -> None:
    hub = build_hub(settings, store=store)
    await hub.start()
    submitted = [asyncio.create_task(hub.ingestor.submit([message(n)])) for n in range(20)]
    await asyncio.sleep(0)  # every delivery is in the ingest's queue
    await hub.stop()
    assert [task.result().stored for task in submitted] == [1] * 20
    assert await count(store, messages) == 20


async def test_a_hub_that_cannot_start_stops_what_it_started(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(adapter_factories(), "whatsapp.twilio")  # the account's adapter is not installed
    hub = build_hub(settings, store=store)
    with pytest.raises(ConfigError, match="no adapter is installed"):
        await hub.start()
    assert hub.http is None  # the session it opened is closed again
    assert not hub.started


async def _queues(store: Store) -> list[str]:
    async with store.read() as connection:
        return list(await load_queues(connection))
