"""End to end over real HTTP: the hub and the Graph emulator, Messenger and WhatsApp Cloud.

A customer writes (the emulator redelivers) -> stored once; a reply goes out through the
adapter to the emulator -> the emulator's signed receipts come back and move the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.emulators import graph
from adapters.emulators.core import EmulatorState, build_emulator_app
from adapters.messenger import MessengerAdapter
from adapters.whatsapp_cloud import WhatsAppCloudAdapter
from hub.api.server import create_app
from hub.errors import ProviderRejected, ProviderUnavailable
from hub.model import OutboundMessage, TemplateBinding
from hub.settings import Settings
from hub.store import Store
from hub.store.tables import conversations, identities, messages
from webhooks._common import BACKGROUND

PSID = "7209912345678901"
WA_ID = "420777123456"


def accounts_toml(emulator: str) -> str:
    return f"""
[[accounts]]
id = "fb-main"
channel = "messenger"
queue = "support"
api_base = "{emulator}/graph/v21.0"
page_id = "104729435879226"
app_secret = "fb-app-secret"
verify_token = "fb-verify"
page_access_token = "fb-page-token"

[[accounts]]
id = "wa-cloud"
channel = "whatsapp"
provider = "cloud"
queue = "sales"
api_base = "{emulator}/graph/v21.0"
phone_number_id = "106540352242922"
app_secret = "wa-app-secret"
verify_token = "wa-verify"
access_token = "wa-token"
"""


@dataclass
class Rig:
    settings: Settings
    state: EmulatorState
    hub: TestServer
    store: Store
    session: aiohttp.ClientSession
    now: list[datetime]
    held: list[Coroutine[Any, Any, Any]]

    async def release_callbacks(self) -> None:
        """Run the receipts the emulator would send after its response (held so the test can
        record the outbound row first, as the outbox does before receipts can matter)."""
        while self.held:
            await self.held.pop(0)

    async def settle_hub(self) -> None:
        tasks = list(self.hub.app[BACKGROUND])
        if tasks:
            await asyncio.gather(*tasks)


@pytest.fixture
async def rig(
    make_settings: Callable[..., Settings],
    database_url: str,
    store: Store,
    aiohttp_server: Callable[..., Any],
    unused_tcp_port_factory: Callable[[], int],
) -> AsyncIterator[Rig]:
    hub_port, emulator_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    settings = make_settings(extra_toml=accounts_toml(f"http://127.0.0.1:{emulator_port}"), database_url=database_url)
    now = [datetime.now(UTC)]
    state = EmulatorState(settings, f"http://127.0.0.1:{hub_port}", clock=lambda: now[0])
    held: list[Coroutine[Any, Any, Any]] = []

    def hold(coro: Coroutine[Any, Any, Any], *, delay: float | None = None) -> Any:
        held.append(coro)

    state.schedule = hold  # type: ignore[method-assign]
    emulator: TestServer = await aiohttp_server(build_emulator_app(state), port=emulator_port)
    hub: TestServer = await aiohttp_server(create_app(settings, store=store), port=hub_port)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield Rig(settings, state, hub, store, session, now, held)
        for coro in held:
            coro.close()
    await hub.close()
    await emulator.close()


async def inbound(store: Store, account_id: str) -> list[Any]:
    async with store.read() as connection:
        query = select(messages).where(messages.c.account_id == account_id, messages.c.direction == "in")
        return list((await connection.execute(query)).all())


async def record_outbound(store: Store, account_id: str, provider_message_id: str, at: datetime) -> None:
    """What the outbox leaves after a successful send: the provider id and state ``sent``."""
    async with store.write() as connection:
        conversation = (
            await connection.execute(select(conversations).where(conversations.c.account_id == account_id))
        ).one()
        await connection.execute(
            messages.insert().values(
                conversation_id=conversation.id,
                identity_id=conversation.identity_id,
                account_id=account_id,
                direction="out",
                author="agent",
                kind="text",
                text="reply",
                provider_message_id=provider_message_id,
                sent_at=at,
                created_at=at,
                delivery_state="sent",
            )
        )


async def state_of(store: Store, provider_message_id: str) -> str:
    async with store.read() as connection:
        query = select(messages.c.delivery_state).where(messages.c.provider_message_id == provider_message_id)
        return str((await connection.execute(query)).scalar_one())


async def test_messenger_customer_writes_once_and_a_reply_is_delivered_and_read(rig: Rig) -> None:
    account = rig.settings.account("fb-main")
    said = await graph.say(rig.state, account, PSID, "Hello, where is my parcel?", name="Jana Novak", repeat=3)
    assert said["status"] == 200
    (row,) = await inbound(rig.store, "fb-main")
    assert (row.text, row.provider_message_id) == ("Hello, where is my parcel?", said["provider_message_id"])
    await rig.settle_hub()  # the profile was fetched from the emulator after the 200
    async with rig.store.read() as connection:
        identity = (await connection.execute(select(identities))).one()
    assert identity.display_name == "Jana Novak"

    adapter = MessengerAdapter(account, rig.session)
    sent_at = datetime.now(UTC)
    receipt = await adapter.send(OutboundMessage(account_id="fb-main", recipient_id=PSID, text="It leaves today."))
    await record_outbound(rig.store, "fb-main", receipt.provider_message_id, sent_at)
    assert rig.state.sent[-1].body["message"] == {"text": "It leaves today."}
    rig.now[0] = datetime.now(UTC)  # the watermark is the emulator's clock at the receipt
    await rig.release_callbacks()
    assert await state_of(rig.store, receipt.provider_message_id) == "read"


async def test_messenger_window_and_tags_are_enforced_with_metas_codes(rig: Rig) -> None:
    account = rig.settings.account("fb-main")
    await graph.say(rig.state, account, PSID, "Hi")
    adapter = MessengerAdapter(account, rig.session)
    rig.now[0] += timedelta(hours=30)
    with pytest.raises(ProviderRejected) as closed:
        await adapter.send(OutboundMessage(account_id="fb-main", recipient_id=PSID, text="Still there?"))
    assert closed.value.provider_code == "10/2018278"
    tagged = OutboundMessage(
        account_id="fb-main", recipient_id=PSID, text="Your refund is approved.", tag="HUMAN_AGENT"
    )
    assert (await adapter.send(tagged)).provider_message_id.startswith("m_")
    retired = OutboundMessage(account_id="fb-main", recipient_id=PSID, text="x", tag="ISSUE_RESOLUTION")
    with pytest.raises(ProviderRejected):
        await adapter.send(retired)
    with pytest.raises(ProviderRejected) as stranger:
        await adapter.send(OutboundMessage(account_id="fb-main", recipient_id="1", text="cold message"))
    assert stranger.value.provider_code == "100/2018001"


async def test_injected_faults_are_classified(rig: Rig) -> None:
    account = rig.settings.account("fb-main")
    await graph.say(rig.state, account, PSID, "Hi")
    adapter = MessengerAdapter(account, rig.session)
    rig.state.add_fault("fb-main", {"kind": "rate_limit", "retry_after": 2})
    rig.state.add_fault("fb-main", {"kind": "provider_error", "code": "551"})
    rig.state.add_fault("fb-main", {"kind": "http", "status": 503})
    message = OutboundMessage(account_id="fb-main", recipient_id=PSID, text="Hi")
    with pytest.raises(ProviderUnavailable) as limited:
        await adapter.send(message)
    assert limited.value.retry_after == 2.0
    with pytest.raises(ProviderRejected) as blocked:
        await adapter.send(message)
    assert blocked.value.provider_code == "551"
    with pytest.raises(ProviderUnavailable):
        await adapter.send(message)
    assert "Emulated" in await adapter.check()


async def test_whatsapp_customer_writes_once_and_a_reply_is_delivered_and_read(rig: Rig) -> None:
    account = rig.settings.account("wa-cloud")
    said = await graph.say(rig.state, account, f"+{WA_ID}", "Dobrý den, mám dotaz", name="Petr", repeat=2)
    assert said["status"] == 200
    (row,) = await inbound(rig.store, "wa-cloud")
    assert row.text == "Dobrý den, mám dotaz"
    async with rig.store.read() as connection:
        identity = (await connection.execute(select(identities))).one()
    assert (identity.external_id, identity.phone, identity.display_name) == (WA_ID, f"+{WA_ID}", "Petr")

    adapter = WhatsAppCloudAdapter(account, rig.session)
    sent_at = datetime.now(UTC)
    receipt = await adapter.send(OutboundMessage(account_id="wa-cloud", recipient_id=f"+{WA_ID}", text="Dobrý den!"))
    await record_outbound(rig.store, "wa-cloud", receipt.provider_message_id, sent_at)
    await rig.release_callbacks()
    assert await state_of(rig.store, receipt.provider_message_id) == "read"


async def test_whatsapp_window_closed_needs_a_template(rig: Rig) -> None:
    account = rig.settings.account("wa-cloud")
    await graph.say(rig.state, account, WA_ID, "Hi")
    adapter = WhatsAppCloudAdapter(account, rig.session)
    rig.now[0] += timedelta(hours=25)
    with pytest.raises(ProviderRejected) as closed:
        await adapter.send(OutboundMessage(account_id="wa-cloud", recipient_id=WA_ID, text="Hello again"))
    assert closed.value.provider_code == "131047"
    template = TemplateBinding(name="order_update", language="cs", parameters=("Petr", "#123"))
    receipt = await adapter.send(OutboundMessage(account_id="wa-cloud", recipient_id=WA_ID, template=template))
    assert rig.state.find_sent(receipt.provider_message_id) is not None
