"""The outbox against the Twilio emulator over real HTTP, with the real adapter and injected faults."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from adapters.emulators.core import EmulatorState, build_emulator_app
from adapters.twilio_whatsapp import TwilioWhatsAppAdapter
from hub.model import DeliveryState
from hub.outbox import Outbox
from hub.settings import Settings
from hub.store import Store
from hub.store.outbox import OutboxState
from hub.store.tables import messages, outbox
from tests.integration.test_outbox import Hub, make_hub

NUMBER = "+420600000001"


@dataclass
class Emulated:
    hub: Hub
    state: EmulatorState
    outbox: Outbox

    async def row(self, message_id: int) -> Any:
        async with self.hub.store.read() as connection:
            return (await connection.execute(select(outbox).where(outbox.c.message_id == message_id))).one()

    async def message(self, message_id: int) -> Any:
        async with self.hub.store.read() as connection:
            return (await connection.execute(select(messages).where(messages.c.id == message_id))).one()

    def sent_texts(self) -> list[str]:
        return [r.body.get("Body", "") for r in self.state.sent]


@pytest.fixture
async def emulated(
    store: Store, make_settings: Callable[..., Settings], aiohttp_server: Any
) -> AsyncIterator[Emulated]:
    hub = await make_hub(store, make_settings)
    state = EmulatorState(hub.settings, "http://127.0.0.1:9", clock=hub.clock)
    server = await aiohttp_server(build_emulator_app(state))
    account = replace(hub.settings.account("wa"), api_base=str(server.make_url("/twilio")).rstrip("/"))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        hub.adapters["wa"] = TwilioWhatsAppAdapter(account, session)  # type: ignore[assignment]
        yield Emulated(hub=hub, state=state, outbox=hub.outbox())
    await state.close()


async def customer(emulated: Emulated, number: str = NUMBER) -> int:
    identity = await emulated.hub.customer_writes(number)
    emulated.state.record_inbound("wa", number, emulated.hub.clock() - timedelta(hours=1))
    return identity


async def test_provider_down_then_back_sends_each_message_exactly_once(emulated: Emulated) -> None:
    numbers = [f"+42060000000{i}" for i in range(3)]
    ids = [await customer(emulated, n) for n in numbers]
    queued = [await emulated.hub.queue(identity, f"reply {i}") for i, identity in enumerate(ids)]
    emulated.state.add_fault("wa", {"kind": "http", "status": 503})
    emulated.state.add_fault("wa", {"kind": "drop_connection"})

    await emulated.outbox.run_once()
    assert len(emulated.state.sent) == 1  # two attempts met the outage
    emulated.hub.clock.advance(60)
    await emulated.outbox.drain()

    assert sorted(emulated.sent_texts()) == ["reply 0", "reply 1", "reply 2"]
    for message_id in queued:
        message = await emulated.message(message_id)
        assert message.delivery_state == DeliveryState.SENT.value
        assert emulated.state.find_sent(message.provider_message_id) is not None
    emulated.hub.clock.advance(3600)
    assert await emulated.outbox.drain() == 0
    assert len(emulated.state.sent) == 3


async def test_429_with_retry_after_is_honoured(emulated: Emulated) -> None:
    identity = await customer(emulated)
    message_id = await emulated.hub.queue(identity, "hello")
    emulated.state.add_fault("wa", {"kind": "rate_limit", "retry_after": 7})

    await emulated.outbox.run_once()
    row = await emulated.row(message_id)
    assert row.state == OutboxState.PENDING
    assert row.next_attempt_at >= emulated.hub.clock() + timedelta(seconds=7)
    emulated.hub.clock.advance(6)
    assert await emulated.outbox.run_once() == 0
    emulated.hub.clock.advance(2 + emulated.hub.settings.outbox.base_backoff)
    assert await emulated.outbox.run_once() == 1
    assert emulated.sent_texts() == ["hello"]


async def test_permanent_refusal_is_failed_with_the_providers_code_and_not_retried(emulated: Emulated) -> None:
    identity = await customer(emulated)
    message_id = await emulated.hub.queue(identity, "hello")
    emulated.state.add_fault("wa", {"kind": "provider_error", "code": 63024, "status": 400})

    await emulated.outbox.run_once()
    message = await emulated.message(message_id)
    assert (message.delivery_state, message.error_code) == (DeliveryState.FAILED.value, "63024")
    assert message.error_reason
    emulated.hub.clock.advance(3600)
    assert await emulated.outbox.drain() == 0
    assert emulated.state.sent == []


async def test_emulator_window_refusal_is_reported_as_63016(emulated: Emulated) -> None:
    """The hub thinks the window is open but the provider does not (clocks disagree): the
    provider's own code reaches the message, and nothing is retried."""
    identity = await emulated.hub.customer_writes(NUMBER)  # the emulator never saw this customer
    message_id = await emulated.hub.queue(identity, "hello")
    await emulated.outbox.run_once()
    message = await emulated.message(message_id)
    assert (message.delivery_state, message.error_code) == (DeliveryState.FAILED.value, "63016")
