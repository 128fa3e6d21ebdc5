"""The hub and the Twilio/Viber emulators over real HTTP on loopback, on SQLite and PostgreSQL.

A customer writes (the emulator repeats the delivery), the message is stored once; a reply
goes out through the adapter to the emulator, whose signed status callbacks come back and
move the message forward; the emulators enforce the providers' rules with their codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.emulators import twilio as twilio_emulator
from adapters.emulators import viber as viber_emulator
from adapters.emulators.core import EmulatorState, build_emulator_app
from hub.api.keys import ADAPTERS
from hub.api.server import create_app
from hub.errors import ProviderRejected, ProviderUnavailable
from hub.model import OutboundMessage, TemplateBinding
from hub.ports import ChannelAdapter
from hub.settings import Settings
from hub.store import Store
from hub.store.tables import identities, messages

CUSTOMER = "+420601234567"
VIBER_USER = "3SQNc4FPUQmysaM/AQEhXg=="


def accounts_toml(emulator: str) -> str:
    return f"""
[[accounts]]
id = "wa-twilio"
channel = "whatsapp"
provider = "twilio"
queue = "support"
api_base = "{emulator}/twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "twilio-auth-token"
from_number = "+14155238886"

[[accounts]]
id = "viber-main"
channel = "viber"
queue = "support"
api_base = "{emulator}/viber/pa"
auth_token = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
name = "Acme Support"
"""


@dataclass
class World:
    hub: TestServer
    emulator: TestServer
    state: EmulatorState
    settings: Settings
    store: Store

    def adapter(self, account_id: str) -> ChannelAdapter:
        return self.hub.app[ADAPTERS][account_id]

    def account(self, account_id: str) -> Any:
        return self.settings.account(account_id)


@pytest.fixture
async def world(
    store: Store,
    aiohttp_server: Callable[..., Any],
    make_settings: Callable[..., Settings],
    database_url: str,
    unused_tcp_port_factory: Callable[[], int],
) -> AsyncIterator[World]:
    hub_port, emulator_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    hub_url = f"http://127.0.0.1:{hub_port}"
    env = {"CHANNELHUB_SERVER_PUBLIC_URL": hub_url}
    settings = make_settings(
        extra_toml=accounts_toml(f"http://127.0.0.1:{emulator_port}"), database_url=database_url, env=env
    )
    state = EmulatorState(settings, hub_url, callback_delay=0)
    emulator: TestServer = await aiohttp_server(build_emulator_app(state), port=emulator_port)
    hub: TestServer = await aiohttp_server(create_app(settings, store=store), port=hub_port)
    yield World(hub=hub, emulator=emulator, state=state, settings=settings, store=store)
    await state.drain()


async def rows(store: Store, account_id: str, direction: str = "in") -> list[Any]:
    async with store.read() as connection:
        query = (
            select(messages)
            .where(messages.c.account_id == account_id, messages.c.direction == direction)
            .order_by(messages.c.id)
        )
        return list((await connection.execute(query)).all())


async def record_outbound(store: Store, account_id: str, provider_message_id: str) -> int:
    """What the outbox does after a send: the message row, with the provider's id, 'sent'."""
    (inbound, *_) = await rows(store, account_id)
    now = datetime.now(UTC)
    async with store.write() as connection:
        result = await connection.execute(
            messages.insert()
            .values(
                conversation_id=inbound.conversation_id,
                identity_id=inbound.identity_id,
                account_id=account_id,
                direction="out",
                author="agent",
                kind="text",
                text="reply",
                provider_message_id=provider_message_id,
                sent_at=now,
                created_at=now,
                delivery_state="sent",
            )
            .returning(messages.c.id)
        )
        return int(result.scalar_one())


async def reply_and_follow(world: World, account_id: str, recipient: str) -> Any:
    """Send a reply through the hub's adapter, record it, let the emulator's receipts come back."""
    world.state.hold_callbacks()
    receipt = await world.adapter(account_id).send(
        OutboundMessage(account_id=account_id, recipient_id=recipient, text="Thanks, on its way")
    )
    await record_outbound(world.store, account_id, receipt.provider_message_id)
    world.state.release_callbacks()
    await world.state.drain()
    (row,) = await rows(world.store, account_id, "out")
    assert row.provider_message_id == receipt.provider_message_id
    return row


# ------------------------------------------------------------------- WhatsApp via Twilio


async def test_a_whatsapp_message_delivered_twice_is_stored_once(world: World) -> None:
    result = await twilio_emulator.say(
        world.state, world.account("wa-twilio"), CUSTOMER, "Hello from WhatsApp", name="Jana", repeat=2
    )
    assert result["status"] == 200
    (message,) = await rows(world.store, "wa-twilio")
    assert message.text == "Hello from WhatsApp"
    assert message.provider_message_id == result["provider_message_id"]


async def test_a_whatsapp_reply_reaches_the_emulator_and_its_receipts_come_back(world: World) -> None:
    await twilio_emulator.say(world.state, world.account("wa-twilio"), CUSTOMER, "Where is my parcel?")
    row = await reply_and_follow(world, "wa-twilio", CUSTOMER)
    (sent,) = world.state.sent
    assert (sent.recipient, sent.body["Body"]) == (CUSTOMER, "Thanks, on its way")
    assert sent.status == "read"
    assert row.delivery_state == "read"


async def test_a_whatsapp_failure_reported_after_acceptance_fails_the_message(world: World) -> None:
    await twilio_emulator.say(world.state, world.account("wa-twilio"), CUSTOMER, "Where is my parcel?")
    world.state.add_fault("wa-twilio", {"kind": "provider_error", "code": "63024", "after_accept": True})
    row = await reply_and_follow(world, "wa-twilio", CUSTOMER)
    assert (row.delivery_state, row.error_code) == ("failed", "63024")
    assert row.error_reason == "The customer is not a valid WhatsApp recipient."


async def test_free_text_outside_the_window_is_refused_with_63016(world: World) -> None:
    await twilio_emulator.say(world.state, world.account("wa-twilio"), CUSTOMER, "old message")
    world.state.customer("wa-twilio", CUSTOMER).last_inbound_at = datetime.now(UTC) - timedelta(hours=25)
    with pytest.raises(ProviderRejected) as caught:
        await world.adapter("wa-twilio").send(OutboundMessage(account_id="wa-twilio", recipient_id=CUSTOMER, text="hi"))
    assert caught.value.provider_code == "63016"
    assert world.state.sent == []


async def test_a_template_is_accepted_outside_the_window(world: World) -> None:
    template = TemplateBinding(content_sid="HXb5b62575e6e4ff6129ad7c8efe1f983e", content_variables=(("1", "Jana"),))
    receipt = await world.adapter("wa-twilio").send(
        OutboundMessage(account_id="wa-twilio", recipient_id="+420777888999", template=template)
    )
    (sent,) = world.state.sent
    assert sent.provider_message_id == receipt.provider_message_id
    assert sent.body == {"ContentSid": "HXb5b62575e6e4ff6129ad7c8efe1f983e", "ContentVariables": {"1": "Jana"}}


async def test_injected_twilio_faults_are_classified(world: World) -> None:
    await twilio_emulator.say(world.state, world.account("wa-twilio"), CUSTOMER, "hi")
    world.state.add_fault("wa-twilio", {"kind": "rate_limit", "retry_after": 3})
    world.state.add_fault("wa-twilio", {"kind": "http", "status": 503})
    adapter = world.adapter("wa-twilio")
    outbound = OutboundMessage(account_id="wa-twilio", recipient_id=CUSTOMER, text="x")
    with pytest.raises(ProviderUnavailable) as limited:
        await adapter.send(outbound)
    assert limited.value.retry_after == 3.0
    with pytest.raises(ProviderUnavailable, match="503"):
        await adapter.send(outbound)


async def test_a_dropped_connection_is_transient(world: World) -> None:
    await twilio_emulator.say(world.state, world.account("wa-twilio"), CUSTOMER, "hi")
    world.state.add_fault("wa-twilio", {"kind": "drop_connection"})
    with pytest.raises(ProviderUnavailable, match="could not reach"):
        await world.adapter("wa-twilio").send(OutboundMessage(account_id="wa-twilio", recipient_id=CUSTOMER, text="x"))
    assert world.state.sent == []


# ----------------------------------------------------------------------------- Viber


async def test_a_viber_message_delivered_twice_is_stored_once_with_its_exact_token(world: World) -> None:
    result = await viber_emulator.say(world.state, world.account("viber-main"), VIBER_USER, "Ahoj", repeat=2)
    assert result["status"] == 200
    (message,) = await rows(world.store, "viber-main")
    assert message.provider_message_id == result["provider_message_id"]
    assert int(message.provider_message_id) > 2**53


async def test_a_viber_reply_reaches_the_emulator_and_its_receipts_come_back(world: World) -> None:
    await viber_emulator.say(world.state, world.account("viber-main"), VIBER_USER, "Ahoj", name="Jana")
    row = await reply_and_follow(world, "viber-main", VIBER_USER)
    (sent,) = world.state.sent
    assert sent.body["sender"] == {"name": "Acme Support"}
    assert sent.status == "seen"
    assert row.delivery_state == "read"


async def test_a_viber_failed_callback_fails_the_message_with_its_description(world: World) -> None:
    await viber_emulator.say(world.state, world.account("viber-main"), VIBER_USER, "Ahoj")
    fault = {"kind": "provider_error", "after_accept": True, "message": "keyboard is invalid"}
    world.state.add_fault("viber-main", fault)
    row = await reply_and_follow(world, "viber-main", VIBER_USER)
    assert row.delivery_state == "failed"
    assert "keyboard is invalid" in row.error_reason


async def test_an_unsubscribed_viber_user_cannot_be_messaged(world: World) -> None:
    account = world.account("viber-main")
    await viber_emulator.say(world.state, account, VIBER_USER, "Ahoj")
    assert (await viber_emulator.say(world.state, account, VIBER_USER, None, kind="unsubscribed"))["status"] == 200
    with pytest.raises(ProviderRejected) as caught:
        await world.adapter("viber-main").send(
            OutboundMessage(account_id="viber-main", recipient_id=VIBER_USER, text="come back")
        )
    assert caught.value.provider_code == "6"
    async with world.store.read() as connection:
        subscription = (
            await connection.execute(select(identities.c.subscription).where(identities.c.external_id == VIBER_USER))
        ).scalar_one()
    assert subscription == "unsubscribed"


async def test_injected_viber_faults_are_classified(world: World) -> None:
    account = world.account("viber-main")
    await viber_emulator.say(world.state, account, VIBER_USER, "Ahoj")
    world.state.add_fault("viber-main", {"kind": "rate_limit"})
    world.state.add_fault("viber-main", {"kind": "provider_error", "code": 24})
    outbound = OutboundMessage(account_id="viber-main", recipient_id=VIBER_USER, text="x")
    with pytest.raises(ProviderUnavailable) as limited:
        await world.adapter("viber-main").send(outbound)
    assert limited.value.provider_code == "12"
    with pytest.raises(ProviderRejected) as broke:
        await world.adapter("viber-main").send(outbound)
    assert broke.value.provider_code == "24"


async def test_check_and_set_webhook_work_against_the_emulator(world: World) -> None:
    from adapters.viber import ViberAdapter

    adapter = world.adapter("viber-main")
    assert isinstance(adapter, ViberAdapter)
    await adapter.set_webhook(f"{world.settings.server.public_url}/webhooks/viber/viber-main")
    assert "/webhooks/viber/viber-main" in await adapter.check()
    assert "Twilio account" in await world.adapter("wa-twilio").check()


# ------------------------------------------------------------------------ control API


async def test_the_control_api_makes_customers_write_and_shows_what_was_sent(world: World) -> None:
    base = str(world.emulator.make_url(""))
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/_emulator/say", json={"channel": "whatsapp", "from": CUSTOMER, "text": "via control", "repeat": 2}
        ) as response:
            said = await response.json()
        assert (response.status, said["status"], said["account"]) == (200, 200, "wa-twilio")
        await world.adapter("wa-twilio").send(OutboundMessage(account_id="wa-twilio", recipient_id=CUSTOMER, text="ok"))
        async with session.get(f"{base}/_emulator/sent", params={"account": "wa-twilio"}) as response:
            sent = (await response.json())["sent"]
        async with session.get(f"{base}/_emulator/customers") as response:
            customers = (await response.json())["customers"]
        async with session.post(f"{base}/_emulator/fault", json={"account": "nobody", "kind": "http"}) as response:
            assert response.status == 404
    assert [m["body"]["Body"] for m in sent] == ["ok"]
    assert {(c["account"], c["id"]) for c in customers} == {("wa-twilio", CUSTOMER)}
    assert len(await rows(world.store, "wa-twilio")) == 1


async def test_receipts_for_unknown_messages_change_nothing(world: World) -> None:
    await twilio_emulator.say(world.state, world.account("wa-twilio"), CUSTOMER, "hi")
    await world.adapter("wa-twilio").send(OutboundMessage(account_id="wa-twilio", recipient_id=CUSTOMER, text="x"))
    await world.state.drain()  # the callbacks name a message the hub never recorded: acknowledged, ignored
    (sent,) = world.state.sent
    assert sent.status == "read"
    assert await rows(world.store, "wa-twilio", "out") == []
    assert len(await rows(world.store, "wa-twilio")) == 1


# ------------------------------------------------------------------------- offline demo


async def test_the_demo_runs_the_emulators_beside_the_hub(
    store: Store,
    aiohttp_server: Callable[..., Any],
    make_settings: Callable[..., Settings],
    database_url: str,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    hub_port, emulator_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    env = {
        "CHANNELHUB_SERVER_PUBLIC_URL": f"http://127.0.0.1:{hub_port}",
        "CHANNELHUB_DEMO_EMULATORS": "true",
        "CHANNELHUB_DEMO_EMULATOR_PORT": str(emulator_port),
    }
    emulator = f"http://127.0.0.1:{emulator_port}"
    settings = make_settings(extra_toml=accounts_toml(emulator), database_url=database_url, env=env)
    await aiohttp_server(create_app(settings, store=store), port=hub_port)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{emulator}/_emulator/say", json={"account": "viber-main", "from": VIBER_USER, "text": "demo"}
        ) as response,
    ):
        said = await response.json()
    assert (response.status, said["status"]) == (200, 200)
    (message,) = await rows(store, "viber-main")
    assert message.text == "demo"
