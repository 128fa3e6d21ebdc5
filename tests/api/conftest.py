"""Fixtures for API tests: a running hub on loopback, agents that log in over HTTP.

Use them in your own tests (they run on SQLite and PostgreSQL through the
parametrised ``database_url`` fixture):

``api`` -- ``await make_api()``; ``make_api(extra_toml="", *, fake_adapter=False, clock=None, env=None) -> Api``
    builds ``create_app`` with ``make_settings(API_CONFIG + extra_toml)`` on the test
    database and a controllable clock, and serves it with ``aiohttp_client``.
    ``API_CONFIG`` adds the WhatsApp (Twilio) account ``wa-test`` (queue ``support``,
    provider URL pointing nowhere) to the base config (queues support/sales, statuses
    resolved/spam). When no adapter is installed for it, or ``fake_adapter=True``,
    the account uses ``tests.fakes.RecordingAdapter`` (``api.adapter.sent``).

``Api``
    ``.client`` (aiohttp TestClient), ``.app``, ``.store``, ``.settings``,
    ``.clock`` (``.clock()`` is now; ``.clock.advance(seconds)``),
    ``.adapter`` (the ``wa-test`` adapter),
    ``await .agent(login, role="agent", queues=("support",), capacity=2, ready=False) -> AgentHandle``
    (creates the agent in the store and logs in over HTTP; ``ready=True`` also sets presence),
    ``await .customer_writes(account_id="wa-test", sender="+420600000001", text="hello") -> int``
    (ingests an InboundMessage like a webhook would; returns the conversation id),
    ``await .sweep()`` (one routing pass at the clock's now; returns what it did).

``AgentHandle``
    ``.id``, ``.login``, ``.token``, ``.headers`` (bearer), ``.csrf_token``, and
    ``await .get/.post/.put/.delete(path, json=None, headers=None)`` -> aiohttp response
    (bearer auth), ``await .json(method, path, json=None, status=200)`` -> decoded body,
    asserting the status.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from hub.api.keys import ADAPTERS, CLOCK, INGESTOR, OUTBOX, SETTINGS, STORE
from hub.api.server import create_app
from hub.model import Channel, ConversationState, InboundMessage, Role
from hub.registry import adapter_factories
from hub.settings import Settings
from hub.store import Store
from hub.store.agents import create_agent
from hub.store.tables import outbox
from tests.fakes import recording_factory

API_CONFIG = """
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

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class AgentHandle:
    id: int
    login: str
    token: str
    csrf_token: str
    client: TestClient[Any, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> ClientResponse:
        return await self.client.request(method, path, json=json, headers={**self.headers, **(headers or {})})

    async def get(self, path: str, headers: dict[str, str] | None = None) -> ClientResponse:
        return await self.request("GET", path, headers=headers)

    async def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> ClientResponse:
        return await self.request("POST", path, json=json, headers=headers)

    async def put(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> ClientResponse:
        return await self.request("PUT", path, json=json, headers=headers)

    async def delete(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> ClientResponse:
        return await self.request("DELETE", path, json=json, headers=headers)

    async def json(self, method: str, path: str, json: Any = None, status: int = 200) -> Any:
        response = await self.request(method, path, json=json)
        body = await response.json() if response.status != 204 else None
        assert response.status == status, (response.status, body)
        return body


@dataclass
class Api:
    client: TestClient[Any, Any]
    app: web.Application
    clock: Clock
    _messages: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def store(self) -> Store:
        return self.app[STORE]

    @property
    def settings(self) -> Settings:
        return self.app[SETTINGS]

    @property
    def adapter(self) -> Any:
        return self.app[ADAPTERS]["wa-test"]

    async def agent(
        self,
        login: str,
        role: str = "agent",
        queues: tuple[str, ...] = ("support",),
        capacity: int = 2,
        ready: bool = False,
        password: str = "correct horse battery",
    ) -> AgentHandle:
        created = await create_agent(
            self.store,
            login=login,
            password=password,
            role=Role(role),
            now=self.clock(),
            capacity=capacity,
            queues=queues,
        )
        response = await self.client.post("/api/v1/auth/login", json={"login": login, "password": password})
        assert response.status == 200, await response.text()
        body = await response.json()
        handle = AgentHandle(
            id=created.id, login=login, token=body["token"], csrf_token=body["csrf_token"], client=self.client
        )
        if ready:
            await handle.json("PUT", "/api/v1/me/presence", {"state": "ready"})
        return handle

    async def customer_writes(
        self, account_id: str = "wa-test", sender: str = "+420600000001", text: str = "hello"
    ) -> int:
        account = self.settings.account(account_id)
        event = InboundMessage(
            channel=account.channel,
            account_id=account_id,
            sender_id=sender,
            provider_message_id=f"test-{next(self._messages)}-{sender}",
            sent_at=self.clock(),
            text=text,
            sender_name=f"Customer {sender}",
        )
        await self.app[INGESTOR].submit([event])
        return await self.open_conversation(account_id, sender)

    async def open_conversation(self, account_id: str, sender: str) -> int:
        from sqlalchemy import select

        from hub.store.tables import conversations, identities

        async with self.store.read() as connection:
            found = (
                await connection.execute(
                    select(conversations.c.id)
                    .join(identities, identities.c.id == conversations.c.identity_id)
                    .where(
                        identities.c.account_id == account_id,
                        identities.c.external_id == sender,
                        conversations.c.state != ConversationState.CLOSED.value,
                    )
                )
            ).scalar_one()
        return int(found)

    async def sweep(self) -> Any:
        from hub.api.routing import sweep_app

        return await sweep_app(self.app, now=self.clock())


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(
    aiohttp_client: Any,
    make_settings: Callable[..., Settings],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> MakeApi:
    async def make(
        extra_toml: str = "",
        *,
        fake_adapter: bool = False,
        clock: Clock | None = None,
        env: dict[str, str] | None = None,
    ) -> Api:
        settings = make_settings(API_CONFIG + extra_toml, env=env, database_url=database_url)
        factories = adapter_factories()
        for account in settings.accounts:
            if fake_adapter or account.adapter_name not in factories:
                monkeypatch.setitem(factories, account.adapter_name, recording_factory)
        clock = clock or Clock()
        app = create_app(settings, clock=clock)
        client = await aiohttp_client(app)
        assert app[CLOCK] is clock
        return Api(client=client, app=app, clock=clock)

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


__all__ = ["API_CONFIG", "START", "AgentHandle", "Api", "Channel", "Clock", "MakeApi", "delivered", "eventually"]


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for an outcome of the hub's background work (the bot runner, the out-of-hours answer, the outbox's
    workers); fail naming ``what`` if it never comes."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def delivered(api: Api) -> None:
    """Let the outbox finish every row: the hub's background workers may hold some of them, so draining alone
    is not enough (a row a worker claimed is not due for ``drain``)."""
    for _ in range(500):
        await api.app[OUTBOX].drain()
        async with api.store.read() as connection:
            unfinished = (
                await connection.execute(select(func.count()).where(outbox.c.state.in_(("pending", "sending"))))
            ).scalar_one()
        if not unfinished:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the outbox did not finish")
