"""Typed application state of the HTTP server.

``HUB`` is the running hub (hub/app.py); handlers reach its parts as ``request.app[HUB].store`` and so on.
The other keys are views of the same parts, set from the hub when the app is built, for the handlers and
tests that still use them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeAlias

import aiohttp
from aiohttp import web

from hub.app import Hub
from hub.bus import EventBus
from hub.ingest import Ingestor
from hub.notifier import Notifier
from hub.outbox import Outbox
from hub.ports import ChannelAdapter
from hub.router import Router
from hub.settings import Settings
from hub.store import Store

__all__ = ["ADAPTERS", "BUS", "CLOCK", "HTTP", "HUB", "INGESTOR", "NOTIFIER", "OUTBOX", "ROUTER", "SETTINGS", "STORE"]

HUB = web.AppKey("hub", Hub)
SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", EventBus)
INGESTOR = web.AppKey("ingestor", Ingestor)
ROUTER = web.AppKey("router", Router)
NOTIFIER = web.AppKey("notifier", Notifier)
OUTBOX = web.AppKey("outbox", Outbox)
HTTP = web.AppKey("http", aiohttp.ClientSession)
ADAPTERS = web.AppKey("adapters", Mapping[str, ChannelAdapter])
Clock: TypeAlias = Callable[[], datetime]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
