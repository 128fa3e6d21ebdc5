"""The emulator core: shared state, the control API and the hub's cleanup context.

One aiohttp server on one port plays every provider, each under its own prefix
(``/graph/v21.0``, ``/twilio``, ``/viber/pa``), so an account's ``api_base``
points at it. The provider modules (``graph``, ``twilio``, ``viber``) add their
routes and their ``say`` (a customer writes in). This module knows no
provider's payloads; it keeps customers, windows, sent messages and injected
faults, and calls the hub back.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import aiohttp
from aiohttp import web

from adapters.emulators.media import SAMPLE_KINDS, fetch_sent_media, media_urls, shelf_of
from adapters.emulators.media import setup as media_routes
from hub.model import ChannelAccount
from hub.settings import Settings

__all__ = [
    "EMULATOR_STATE",
    "MAX_REPEAT",
    "PROVIDER_MODULES",
    "Customer",
    "EmulatorState",
    "SentRecord",
    "build_emulator_app",
    "demo_context",
    "provider_module",
    "run_emulator",
]

logger = logging.getLogger(__name__)

#: which emulator module plays which adapter (``ChannelAccount.adapter_name``)
PROVIDER_MODULES: dict[str, str] = {
    "messenger": "graph",
    "whatsapp.cloud": "graph",
    "whatsapp.twilio": "twilio",
    "viber": "viber",
}
_CALLBACK_DELAY = 0.05  # seconds between a send's response and its first status callback


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Customer:
    """A person on the provider's side, as the emulator remembers them."""

    account_id: str
    external_id: str
    name: str | None = None
    last_inbound_at: datetime | None = None
    subscribed: bool = False  # Viber: may receive messages

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "id": self.external_id,
            "name": self.name,
            "last_inbound_at": self.last_inbound_at.isoformat() if self.last_inbound_at else None,
            "subscribed": self.subscribed,
        }


@dataclass(slots=True)
class SentRecord:
    """One message the hub sent through an emulated provider, as accepted."""

    account_id: str
    recipient: str
    kind: str
    body: dict[str, Any]
    provider_message_id: str
    at: datetime
    status: str = "accepted"

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "recipient": self.recipient,
            "kind": self.kind,
            "body": self.body,
            "provider_message_id": self.provider_message_id,
            "at": self.at.isoformat(),
            "status": self.status,
        }


class EmulatorState:
    """Everything the emulated providers remember, shared by all provider modules."""

    def __init__(
        self,
        settings: Settings,
        hub_url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        session: aiohttp.ClientSession | None = None,
        callback_delay: float = _CALLBACK_DELAY,
    ) -> None:
        self.settings = settings
        self.hub_url = hub_url.rstrip("/")
        self.clock: Callable[[], datetime] = clock or _utc_now
        self.accounts: dict[str, ChannelAccount] = {a.id: a for a in settings.accounts}
        self.customers: dict[tuple[str, str], Customer] = {}
        self.sent: list[SentRecord] = []
        self.faults: dict[str, deque[dict[str, Any]]] = {}
        self.callback_delay = callback_delay
        self._session = session
        self._owns_session = session is None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._callbacks_open = asyncio.Event()
        self._callbacks_open.set()

    # ---------------------------------------------------------------- customers

    def customer(self, account_id: str, external_id: str) -> Customer:
        """The customer, remembered from now on if new."""
        key = (account_id, external_id)
        found = self.customers.get(key)
        if found is None:
            found = self.customers[key] = Customer(account_id=account_id, external_id=external_id)
        return found

    def record_inbound(self, account_id: str, external_id: str, at: datetime, name: str | None = None) -> Customer:
        """A customer wrote: the service window (re)opens and, on Viber, they are subscribed."""
        found = self.customer(account_id, external_id)
        found.last_inbound_at = at
        found.subscribed = True
        if name:
            found.name = name
        return found

    def window_open(self, account_id: str, external_id: str, hours: float = 24) -> bool:
        found = self.customers.get((account_id, external_id))
        if found is None or found.last_inbound_at is None:
            return False
        return self.clock() - found.last_inbound_at < timedelta(hours=hours)

    # ------------------------------------------------------------------- faults

    def add_fault(self, account_id: str, fault: dict[str, Any]) -> None:
        if fault.get("kind") not in ("http", "rate_limit", "provider_error", "drop_connection"):
            raise ValueError(f"unknown fault kind {fault.get('kind')!r}")
        self.faults.setdefault(account_id, deque()).append(dict(fault))

    def next_fault(self, account_id: str) -> dict[str, Any] | None:
        """The next injected fault for this account, consumed by the send asking."""
        queue = self.faults.get(account_id)
        return queue.popleft() if queue else None

    # ----------------------------------------------------------------- helpers

    def new_message_id(self, prefix: str) -> str:
        """``prefix`` + 32 hex-ish characters (Twilio's SM.../MM... shape), unique in this run."""
        return f"{prefix}{next(self._ids):08x}{secrets.token_hex(12)}"

    def record_sent(
        self, account_id: str, recipient: str, kind: str, body: dict[str, Any], provider_message_id: str
    ) -> SentRecord:
        record = SentRecord(
            account_id=account_id,
            recipient=recipient,
            kind=kind,
            body=body,
            provider_message_id=provider_message_id,
            at=self.clock(),
        )
        self.sent.append(record)
        urls = media_urls(body)
        if urls:  # the provider downloads what the hub sends by link
            self.schedule(self._fetch_media(record, urls))
        return record

    async def _fetch_media(self, record: SentRecord, urls: list[str]) -> None:
        record.body["media_fetched"] = await fetch_sent_media(self.session, urls)

    def find_sent(self, provider_message_id: str) -> SentRecord | None:
        for record in reversed(self.sent):
            if record.provider_message_id == provider_message_id:
                return record
        return None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10, connect=3))
        return self._session

    async def post_to_hub(self, path: str, body: bytes, headers: dict[str, str], *, repeat: int = 1) -> int:
        """POST ``body`` to the hub ``repeat`` times (providers redeliver); the last status."""
        status = 0
        for _ in range(max(1, repeat)):
            status = await self.post(self.hub_url + path, body, headers)
        return status

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """One POST to a full URL (a status callback URL the hub gave us); the HTTP status."""
        async with self.session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    def schedule(self, coro: Coroutine[Any, Any, Any], *, delay: float | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` shortly after the current response (status callbacks, receipts)."""

        async def later() -> None:
            await asyncio.sleep(self.callback_delay if delay is None else delay)
            await self._callbacks_open.wait()
            try:
                await coro
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                logger.warning("emulator callback to the hub failed: %s", exc)

        task = asyncio.create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def hold_callbacks(self) -> None:
        """Keep scheduled callbacks back until ``release_callbacks`` (tests that must record a send first)."""
        self._callbacks_open.clear()

    def release_callbacks(self) -> None:
        self._callbacks_open.set()

    async def drain(self) -> None:
        """Wait for every scheduled callback (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._tasks.clear()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None


EMULATOR_STATE = web.AppKey("emulator_state", EmulatorState)


# ---------------------------------------------------------------- provider modules


def provider_module(name: str) -> ModuleType | None:
    """``adapters.emulators.<name>``, or None while that module does not exist yet."""
    qualified = f"{__package__}.{name}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name == qualified:
            return None
        raise


def _module_for(account: ChannelAccount) -> ModuleType:
    name = PROVIDER_MODULES.get(account.adapter_name)
    module = provider_module(name) if name else None
    if module is None:
        raise web.HTTPNotFound(reason=f"no emulator for {account.adapter_name}")
    return module


# ---------------------------------------------------------------- control API


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _pick_account(state: EmulatorState, data: dict[str, Any]) -> ChannelAccount | web.Response:
    account_id = data.get("account")
    if account_id:
        account = state.accounts.get(str(account_id))
        if account is None:
            return _error(404, "unknown_account", f"no account {account_id!r} is configured")
        return account
    channel = data.get("channel")
    provider = data.get("provider")
    for account in state.accounts.values():
        if channel and account.channel.value == channel and (not provider or account.provider == provider):
            return account
    return _error(400, "missing_account", "give 'account' (or a 'channel' with a configured account)")


async def _json(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        data = await request.json()
    except ValueError:
        return _error(400, "invalid_json", "the body is not JSON")
    if not isinstance(data, dict):
        return _error(400, "invalid_json", "the body must be a JSON object")
    return data


_SAY_KEYS = {"account", "channel", "provider", "from", "text", "kind", "media_url", "name", "repeat"}
MAX_REPEAT = 100  # a provider redelivers a few times; a slip of the keyboard must not post millions of webhooks


async def _say(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    data = await _json(request)
    if isinstance(data, web.Response):
        return data
    account = _pick_account(state, data)
    if isinstance(account, web.Response):
        return account
    customer = data.get("from")
    if not customer:
        return _error(400, "missing_field", "'from' (the customer's id or number) is required")
    repeat = 1 if data.get("repeat") is None else data["repeat"]
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        return _error(400, "invalid_field", f"'repeat' must be a whole number from 1 to {MAX_REPEAT}")
    shelf = shelf_of(state)
    shelf.base = shelf.base or str(request.url.origin())
    kind = str(data.get("kind") or "text")
    if kind in SAMPLE_KINDS and not data.get("media_url"):  # the provider holds the customer's file
        data["media_url"], mime = shelf.sample_url(SAMPLE_KINDS[kind])
        data.setdefault("content_type", mime)
    module = _module_for(account)
    extra = {k: v for k, v in data.items() if k not in _SAY_KEYS}
    try:
        result = await module.say(
            state,
            account,
            str(customer),
            data.get("text"),
            kind=str(data.get("kind") or "text"),
            media_url=data.get("media_url"),
            name=data.get("name"),
            repeat=repeat,
            **extra,
        )
    except (aiohttp.ClientError, OSError) as exc:
        return _error(502, "hub_unreachable", f"could not reach the hub at {state.hub_url}: {exc}")
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))
    return web.json_response({"account": account.id, **result})


async def _sent(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    account = request.query.get("account")
    records = [r.to_json() for r in state.sent if account is None or r.account_id == account]
    return web.json_response({"sent": records})


async def _fault(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    data = await _json(request)
    if isinstance(data, web.Response):
        return data
    account = _pick_account(state, data)
    if isinstance(account, web.Response):
        return account
    fault = {k: v for k, v in data.items() if k not in ("account", "channel", "provider")}
    try:
        state.add_fault(account.id, fault)
    except ValueError as exc:
        return _error(400, "unknown_fault", str(exc))
    return web.json_response({"account": account.id, "queued": len(state.faults[account.id])})


async def _customers(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    return web.json_response({"customers": [c.to_json() for c in state.customers.values()]})


def build_emulator_app(state: EmulatorState) -> web.Application:
    """Every provider module that exists, plus the control API under ``/_emulator``."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[EMULATOR_STATE] = state
    for name in sorted(set(PROVIDER_MODULES.values())):
        module = provider_module(name)
        if module is None:
            logger.warning("emulator for %s is not available", name)
            continue
        module.setup(app, state)
    media_routes(app, shelf_of(state))
    app.router.add_post("/_emulator/say", _say)
    app.router.add_get("/_emulator/sent", _sent)
    app.router.add_post("/_emulator/fault", _fault)
    app.router.add_get("/_emulator/customers", _customers)

    async def close_state(_app: web.Application) -> None:
        await state.close()

    app.on_cleanup.append(close_state)
    return app


# ---------------------------------------------------------------- running it


async def run_emulator(state: EmulatorState, host: str, port: int) -> web.AppRunner:
    """Start the emulator server; the caller ``await runner.cleanup()`` to stop it."""
    runner = web.AppRunner(build_emulator_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


async def demo_context(settings: Settings) -> AsyncIterator[None]:
    """The emulators beside the hub, for as long as it serves (``channelhub.emulators`` / ``all``): the server
    runs this around its hub, with the hub's settings."""
    state = EmulatorState(settings, settings.server.public_url)
    runner = await run_emulator(state, settings.demo.emulator_host, settings.demo.emulator_port)
    logger.info(
        "provider emulators listening",
        extra={"host": settings.demo.emulator_host, "port": settings.demo.emulator_port},
    )
    try:
        yield
    finally:
        await runner.cleanup()
