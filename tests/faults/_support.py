"""What the fault tests share: a real ``channelhub serve`` process on loopback, its config, signed
webhooks, and a Twilio emulator whose every send attempt is counted.

Everything here runs on 127.0.0.1 and is bounded in time: a process that does not come up within
``READY_TIMEOUT`` seconds fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.ports import free_port

READY_TIMEOUT = 60.0
PAGE_ID = "100200300"
MESSENGER_SECRET = "faults-messenger-secret"
TWILIO_SID = "AC" + "f" * 32
TWILIO_TOKEN = "faults-twilio-token"
TWILIO_FROM = "+14155238886"

BASE = """
log_level = "WARNING"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
shutdown_timeout = 2.0
[database]
url = "{database_url}"
[[statuses]]
id = "resolved"
[[queues]]
id = "support"
[[accounts]]
id = "fb"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9/graph"
page_id = "{page_id}"
app_secret = "{messenger_secret}"
verify_token = "v"
page_access_token = "t"
[[accounts]]
id = "wa"
channel = "whatsapp"
provider = "twilio"
queue = "support"
api_base = "{twilio_base}"
account_sid = "{twilio_sid}"
auth_token = "{twilio_token}"
from_number = "{twilio_from}"
"""


def hub_config(port: int, database_url: str, *, twilio_base: str = "http://127.0.0.1:9/twilio", extra: str = "") -> str:
    """A complete config: a Messenger account (page ``PAGE_ID``) and a WhatsApp account ``wa`` on Twilio."""
    return (
        BASE.format(
            port=port,
            database_url=database_url,
            page_id=PAGE_ID,
            messenger_secret=MESSENGER_SECRET,
            twilio_base=twilio_base,
            twilio_sid=TWILIO_SID,
            twilio_token=TWILIO_TOKEN,
            twilio_from=TWILIO_FROM,
        )
        + extra
    )


@dataclass
class HubProcess:
    """``channelhub serve`` in its own process, started, killed and restarted by the test."""

    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELHUB_")}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until ``/readyz`` answers 200; fails with the log's tail if the process dies or is slow."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the hub exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:  # noqa: S310 (loopback)
                    if response.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the hub was not ready within {timeout} s:\n{self.log_tail()}")

    async def started(self) -> None:
        self.start()
        await asyncio.to_thread(self.wait_ready)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine or the OOM killer stops it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 30 s); nothing when not running."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def make_hub(
    folder: Path, database_url: str, *, twilio_base: str = "http://127.0.0.1:9/twilio", extra: str = ""
) -> HubProcess:
    port = free_port()
    config = folder / "hub.toml"
    config.write_text(hub_config(port, database_url, twilio_base=twilio_base, extra=extra), encoding="utf-8")
    return HubProcess(config=config, port=port, log=folder / "hub.log")


def messenger_delivery(mid: str, customer: int, text: str) -> tuple[bytes, dict[str, str]]:
    """A Messenger message webhook, signed as Meta signs it (``X-Hub-Signature-256``)."""
    now = int(time.time() * 1000)
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": f"psid{customer}"},
                            "recipient": {"id": PAGE_ID},
                            "timestamp": now,
                            "message": {"mid": mid, "text": text},
                        }
                    ],
                }
            ],
        }
    ).encode()
    signature = "sha256=" + hmac.new(MESSENGER_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


# ------------------------------------------------------------------ counting the provider's side


@dataclass
class Attempt:
    """One request to the emulated Twilio Messages resource, whatever became of it."""

    text: str
    to: str
    at: float  # time.monotonic()
    status: int


@dataclass
class SendLog:
    """Every send attempt the emulator saw, and a switch that makes it answer 503."""

    attempts: list[Attempt] = field(default_factory=list)
    unavailable: bool = False

    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status in (200, 201)]


def counting_middleware(log: SendLog) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An emulator middleware: records each send (its ``Body`` and ``To``) and answers 503 while
    ``log.unavailable``, before the emulator sees it."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method != "POST" or not request.path.endswith("/Messages.json"):
            return await handler(request)
        form = await request.post()
        text, to = str(form.get("Body", "")), str(form.get("To", ""))
        if log.unavailable:
            log.attempts.append(Attempt(text, to, time.monotonic(), 503))
            return web.json_response({"code": 20503, "message": "Service Unavailable", "status": 503}, status=503)
        response = await handler(request)
        log.attempts.append(Attempt(text, to, time.monotonic(), response.status))
        return response

    return middleware


def utc_now() -> datetime:
    return datetime.now(UTC)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Awaitable[None]:
    """Poll ``predicate`` every 50 ms; AssertionError naming ``what`` after ``timeout`` seconds."""

    async def poll() -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.05)

    return poll()
