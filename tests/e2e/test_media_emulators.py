"""Media end to end with the provider emulators over real HTTP on loopback, on SQLite and PostgreSQL: a
customer's photo on each provider is fetched the provider's way and kept once; an agent's upload goes out by
the hub's public link and the emulated provider downloads it, or, on WhatsApp Cloud, by media upload."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.emulators.core import EmulatorState, build_emulator_app
from adapters.emulators.media import shelf_of
from hub.api.server import create_app
from hub.model import Role
from hub.settings import Settings
from hub.store import Store
from hub.store.agents import create_agent
from hub.store.tables import attachments
from tests.e2e.test_twilio_viber_emulator import accounts_toml as twilio_and_viber_accounts

PDF = b"%PDF-1.4\n% an invoice\n%%EOF\n"


def accounts_toml(emulator: str) -> str:
    """The Twilio and Viber accounts of the emulator tests, and one Messenger and one Cloud API account, all
    answering the support queue."""
    return (
        twilio_and_viber_accounts(emulator)
        + f"""
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
queue = "support"
api_base = "{emulator}/graph/v21.0"
phone_number_id = "106540352242922"
app_secret = "wa-app-secret"
verify_token = "wa-verify"
access_token = "wa-token"
"""
    )


CUSTOMERS = {
    "wa-twilio": "+420601234567",
    "viber-main": "3SQNc4FPUQmysaM/AQEhXg==",
    "fb-main": "6543210987654321",
    "wa-cloud": "+420602345678",
}


@dataclass
class World:
    hub: TestServer
    emulator: TestServer
    state: EmulatorState
    store: Store

    async def say(self, account: str, **body: Any) -> None:
        async with aiohttp.ClientSession() as session:
            url = f"{self.emulator.make_url('/_emulator/say')}"
            async with session.post(url, json={"account": account, "from": CUSTOMERS[account], **body}) as response:
                assert response.status == 200, await response.text()

    async def attachment_rows(self) -> list[Any]:
        async with self.store.read() as connection:
            return list(await connection.execute(select(attachments).order_by(attachments.c.id)))

    async def settled(self, count: int) -> list[Any]:
        for _ in range(500):  # the fetcher works in the background: bounded wait
            rows = await self.attachment_rows()
            if len(rows) >= count and all(row.state != "pending" for row in rows):
                return rows
            await asyncio.sleep(0.02)
        raise AssertionError(f"attachments still pending: {await self.attachment_rows()}")


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
    settings = make_settings(
        extra_toml=accounts_toml(f"http://127.0.0.1:{emulator_port}"),
        database_url=database_url,
        env={"CHANNELHUB_SERVER_PUBLIC_URL": hub_url},
    )
    state = EmulatorState(settings, hub_url, callback_delay=0)
    emulator: TestServer = await aiohttp_server(build_emulator_app(state), port=emulator_port)
    hub: TestServer = await aiohttp_server(create_app(settings, store=store), port=hub_port)
    yield World(hub=hub, emulator=emulator, state=state, store=store)
    await state.drain()


async def test_a_customers_photo_arrives_on_every_provider(world: World) -> None:
    for account in CUSTOMERS:
        await world.say(account, kind="picture" if account == "viber-main" else "image", text="the parcel")
    rows = await world.settled(4)
    assert [row.state for row in rows] == ["stored"] * 4
    assert {row.mime for row in rows} == {"image/png"}
    assert {(row.width, row.height) for row in rows} == {(320, 200)}
    assert len({row.blob_key for row in rows}) == 1  # the same picture four times: kept once


async def agent_replies_with_an_upload(
    world: World, account: str, fault: dict[str, Any] | None = None, text: str | None = "here it is"
) -> str:
    """A customer writes on ``account``; an agent takes the conversation, uploads the invoice through
    ``POST /api/v1/uploads`` and replies with it, captioned with ``text`` (the provider's next call failing with
    ``fault`` if given). The hub's base URL."""
    await world.say(account, text="please send the invoice")
    if fault is not None:
        world.state.add_fault(account, fault)
    await create_agent(
        world.store,
        login="ana",
        password="pw-ana-12345",
        role=Role.SUPERVISOR,
        now=datetime.now(UTC),
        queues=["support"],
    )
    base = str(world.hub.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        # every response read to its end inside `async with`: a connection left to the garbage collector warns
        # (an error under this suite's filters) in whichever later test happens to collect it
        async with session.post(
            f"{base}/api/v1/auth/login", json={"login": "ana", "password": "pw-ana-12345"}
        ) as login:
            token = (await login.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{base}/api/v1/conversations?state=waiting", headers=auth) as listed:
            [conversation] = (await listed.json())["items"]
        async with session.post(f"{base}/api/v1/conversations/{conversation['id']}/take", headers=auth) as taken:
            assert taken.status == 200, await taken.text()
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(PDF), filename="invoice.pdf", content_type="application/pdf")
        async with session.post(f"{base}/api/v1/uploads", data=form, headers=auth) as uploaded:
            upload = await uploaded.json()
        async with session.post(
            f"{base}/api/v1/conversations/{conversation['id']}/messages",
            json={"attachments": [{"upload": upload["id"]}], **({"text": text} if text else {})},
            headers=auth,
        ) as sent:
            assert sent.status == 201, await sent.text()
    return base


async def media_fetched(world: World) -> list[Any]:
    """What the emulated provider got of the files the hub sent (by link or by upload), once it has."""
    for _ in range(500):  # the provider downloads in the background: bounded wait
        fetched = [r.body.get("media_fetched") for r in world.state.sent if r.body.get("media_fetched")]
        if fetched:
            return fetched
        await asyncio.sleep(0.02)
    raise AssertionError(f"no media reached the provider: {[r.body for r in world.state.sent]}")


async def test_an_agents_upload_is_downloaded_by_the_provider_from_the_hub(world: World) -> None:
    base = await agent_replies_with_an_upload(world, "wa-twilio", text=None)  # Twilio captions no document
    [[result]] = await media_fetched(world)
    assert (result["status"], result["bytes"], result["type"]) == (200, len(PDF), "application/pdf")
    assert result["url"].startswith(base + "/media/")


async def test_an_agents_upload_reaches_whatsapp_cloud_by_media_upload(world: World) -> None:
    await agent_replies_with_an_upload(world, "wa-cloud")
    [[result]] = await media_fetched(world)
    assert result["via"] == "upload"  # the bytes, not the hub's link
    assert (result["status"], result["bytes"], result["type"]) == (200, len(PDF), "application/pdf")
    assert result["file_name"] == "invoice.pdf"
    [record] = [r for r in world.state.sent if r.body.get("media_fetched")]
    assert record.body["document"] == {"id": result["id"], "caption": "here it is", "filename": "invoice.pdf"}
    shelf = shelf_of(world.state)
    assert shelf.files[shelf.ids[result["id"]].rsplit("/", 1)[-1]] == (PDF, "application/pdf")  # byte for byte


async def test_a_failed_whatsapp_cloud_upload_is_retried_by_the_outbox(world: World) -> None:
    await agent_replies_with_an_upload(world, "wa-cloud", fault={"kind": "http", "status": 503})
    [[result]] = await media_fetched(world)
    assert (result["via"], result["bytes"]) == ("upload", len(PDF))
    assert list(shelf_of(world.state).uploads) == [result["id"]]  # the refused upload kept nothing
    assert not world.state.faults["wa-cloud"]  # the 503 was met (by the first upload, the first call made)
    assert len([r for r in world.state.sent if r.account_id == "wa-cloud"]) == 1  # then one message went out
