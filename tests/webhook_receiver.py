"""A loopback receiver of outgoing webhooks for the tests and the benchmark: real HTTP, real signatures.

Every request is verified with the ``standardwebhooks`` package (a bad signature is answered 401 and
counted); ``answer`` decides the status code; ``hold`` makes it wait before answering. What it accepted
(2xx) is kept in arrival order, with the ``webhook-id`` receivers deduplicate on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from tests.ports import free_port

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True, slots=True)
class Received:
    webhook_id: str
    type: str
    data: dict[str, Any]


@dataclass
class Receiver:
    secret: str
    port: int = field(default_factory=free_port)
    answer: int = 200
    hold: asyncio.Event | None = None
    accepted: list[Received] = field(default_factory=list)
    requests: int = 0
    bad_signatures: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        self.arrived.set()
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.hold is not None:
            await self.hold.wait()
        if 200 <= self.answer < 300:
            payload = json.loads(body)
            self.accepted.append(Received(request.headers["webhook-id"], payload["type"], payload["data"]))
        return web.Response(status=self.answer)

    def unique(self) -> list[Received]:
        """What a deduplicating receiver keeps: the first of each ``webhook-id``."""
        seen: set[str] = set()
        kept = []
        for item in self.accepted:
            if item.webhook_id not in seen:
                seen.add(item.webhook_id)
                kept.append(item)
        return kept
