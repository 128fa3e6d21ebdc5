"""Typed application state shared by the server, the API and the webhook routes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeAlias

import aiohttp
from aiohttp import web

from hub.bus import EventBus
from hub.ingest import Ingestor
from hub.ports import ChannelAdapter
from hub.settings import Settings
from hub.store import Store

__all__ = ["ADAPTERS", "BUS", "CLOCK", "HTTP", "INGESTOR", "SETTINGS", "STORE"]

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", EventBus)
INGESTOR = web.AppKey("ingestor", Ingestor)
HTTP = web.AppKey("http", aiohttp.ClientSession)
ADAPTERS = web.AppKey("adapters", dict[str, ChannelAdapter])
Clock: TypeAlias = Callable[[], datetime]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
