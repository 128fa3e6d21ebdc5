"""Browser tests: Debian's Chromium driven by Playwright against a real hub.

The hub runs as ``channelhub serve`` in a subprocess (its own event loop, as in
production) on a free loopback port, with a SQLite file. The provider emulators
(``build_emulator_app`` over an ``EmulatorState``) run on another free port in
the test's own loop, beside Playwright's async API; nothing is shared with the hub.

Chromium: ``/usr/bin/chromium`` (``apt-get install chromium``; never a browser
downloaded by Playwright). The tests skip when it is missing, unless
``CHANNELHUB_REQUIRE_BROWSER=1`` (CI), where they fail.

Screenshots: every run takes them (so a screen that fails to render still
fails the test), into a temporary directory; ``CHANNELHUB_UPDATE_SCREENSHOTS=1``
writes them into docs/screenshots instead, for a commit that refreshes the
pictures the README shows. A plain ``make test`` leaves the working tree clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest

from tests.ports import free_port

CHROMIUM = os.environ.get("CHANNELHUB_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("CHANNELHUB_REQUIRE_BROWSER") == "1"
UPDATE_SCREENSHOTS = os.environ.get("CHANNELHUB_UPDATE_SCREENSHOTS") == "1"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

#: a customer who last wrote three days ago: outside every free-text window
OLD_CUSTOMER = ("+420600999888", "Petr Stary")

PASSWORDS = {"admin": "admin-pass-1", "alice": "alice-pass-1", "bob": "bob-pass-1"}


@pytest.fixture(autouse=True)
def _chromium_present() -> None:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return
    if REQUIRE_BROWSER:
        pytest.fail(f"Chromium is required (CHANNELHUB_REQUIRE_BROWSER=1) but {CHROMIUM} is missing")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (or set CHANNELHUB_CHROMIUM)")


def _config(hub_port: int, emulator_port: int, database: Path) -> str:
    agents = ", ".join(
        f'{{login = "{login}", password = "{password}", role = "agent"}}'
        for login, password in PASSWORDS.items()
        if login != "admin"
    )
    return f"""
log_level = "WARNING"

[server]
host = "127.0.0.1"
port = {hub_port}
public_url = "http://127.0.0.1:{hub_port}"

[database]
url = "sqlite:///{database}"

[routing]
tick_seconds = 0.5

[demo]
emulators = false  # the test runs them (tests/browser/conftest.py: hub fixture)
admin_login = "admin"
admin_password = "{PASSWORDS["admin"]}"
agents = [{agents}]

[[statuses]]
id = "resolved"
name = "Resolved"

[[statuses]]
id = "spam"
name = "Spam"

[[queues]]
id = "support"
name = "Support"
number = 100
offer_timeout = 120
statuses = ["resolved", "spam"]
url_template = "https://crm.example/customers?phone={{external_id}}"
sla_accept_seconds = 60
sla_accept_share = 0.8
sla_first_response_seconds = 300

[[queues]]
id = "sales"
name = "Sales"
number = 200
offer_timeout = 120

[[queues]]
id = "callback"
name = "Call-backs"
number = 300
offer_timeout = 3

[[accounts]]
id = "wa-callback"
channel = "whatsapp"
provider = "twilio"
queue = "callback"
account_sid = "AC00000000000000000000000000000002"
auth_token = "twilio-test-auth-token-2"
from_number = "+15550002222"
api_base = "http://127.0.0.1:{emulator_port}/twilio"

[[accounts]]
id = "wa-main"
channel = "whatsapp"
provider = "twilio"
queue = "support"
account_sid = "AC00000000000000000000000000000001"
auth_token = "twilio-test-auth-token"
from_number = "+15550001111"
api_base = "http://127.0.0.1:{emulator_port}/twilio"
"""


@dataclass
class RunningHub:
    url: str
    emulator_url: str
    config: Path
    log: Path
    process: subprocess.Popen[bytes]
    console_errors: list[str] = field(default_factory=list)

    async def say(self, customer: str, text: str, *, name: str | None = None, account: str = "wa-main") -> Any:
        """A customer writes, through the emulator: the provider's real signed webhook reaches the hub."""
        body = {"account": account, "from": customer, "text": text, "name": name}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(f"{self.emulator_url}/_emulator/say", json=body) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def sent(self, account: str = "wa-main") -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.emulator_url}/_emulator/sent", params={"account": account}) as response,
        ):
            assert response.status == 200
            data = await response.json()
            return list(data["sent"])


def _channelhub(*args: str, log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _seed_old_customer(config: Path) -> None:
    """A customer who wrote three days ago (by the provider's clock), stored as the webhook would."""
    from hub.bus import EventBus
    from hub.ingest import Ingestor
    from hub.model import Channel, InboundMessage
    from hub.settings import load_settings
    from hub.store import Store

    settings = load_settings(config, {})
    store = Store(settings.database_url)
    await store.migrate()
    ingestor = Ingestor(store, EventBus(), settings.accounts)
    await ingestor.start()
    try:
        number, name = OLD_CUSTOMER
        await ingestor.submit(
            [
                InboundMessage(
                    channel=Channel.WHATSAPP,
                    account_id="wa-main",
                    sender_id=number,
                    provider_message_id="SM-seed-old-customer",
                    sent_at=datetime.now(UTC) - timedelta(days=3),
                    text="Thanks, that is all.",
                    sender_name=name,
                )
            ]
        )
    finally:
        await ingestor.stop()
    # that old conversation was closed long ago
    from sqlalchemy import update

    from hub.store.tables import conversations

    async with store.write() as connection:
        await connection.execute(
            update(conversations).values(state="closed", status_id="resolved", closed_at=datetime.now(UTC))
        )
    await store.close()


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-4000:]


async def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for _ in range(150):
            if process.poll() is not None:
                raise RuntimeError(f"the hub exited ({process.returncode}):\n{await asyncio.to_thread(_tail, log)}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the hub did not come up at {url}:\n{await asyncio.to_thread(_tail, log)}")


#: a real provider calls back after a while, not at once; this keeps receipts behind the send's commit
CALLBACK_DELAY = 0.5


@pytest.fixture
def hub_config_edit() -> Callable[[str, str], str]:
    """How a test module changes the hub's configuration text before the hub starts (override it): called with
    the text and the provider emulators' base URL, which an account the module adds points its ``api_base`` at."""
    return lambda text, emulator_url: text


@pytest.fixture
async def hub(tmp_path: Path, hub_config_edit: Callable[[str, str], str]) -> AsyncIterator[RunningHub]:
    """A real hub process, and the provider emulators in this test's loop, on free loopback ports."""
    from adapters.emulators.core import EmulatorState, run_emulator
    from hub.settings import load_settings

    hub_port, emulator_port = free_port(), free_port()
    config = tmp_path / "hub.toml"
    text = _config(hub_port, emulator_port, tmp_path / "hub.db")
    config.write_text(hub_config_edit(text, f"http://127.0.0.1:{emulator_port}"), encoding="utf-8")
    log = tmp_path / "hub.log"
    await _seed_old_customer(config)
    settings = load_settings(config, {})
    emulators = EmulatorState(settings, f"http://127.0.0.1:{hub_port}", callback_delay=CALLBACK_DELAY)
    emulator_runner = await run_emulator(emulators, "127.0.0.1", emulator_port)
    log_file = log.open("ab")
    process = _channelhub("serve", "--config", str(config), log=log_file)
    running = RunningHub(
        url=f"http://127.0.0.1:{hub_port}",
        emulator_url=f"http://127.0.0.1:{emulator_port}",
        config=config,
        log=log,
        process=process,
    )
    try:
        await _wait_until_up(f"{running.url}/readyz", process, log)
        await _wait_until_up(f"{running.emulator_url}/_emulator/customers", process, log)
        yield running
    finally:
        # let the receipts already scheduled reach the hub before it stops
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(emulators.drain(), timeout=5)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()
        await emulator_runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the tests save their screenshots: docs/screenshots only when asked."""
    target = SCREENSHOTS if UPDATE_SCREENSHOTS else tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target
