"""How a handler reaches the hub's parts for a use case: the one place to swap for the hub's own root."""

from __future__ import annotations

from aiohttp import web

from hub.api.auth import authenticated
from hub.api.keys import BUS, CLOCK, SETTINGS, STORE
from hub.api.routing import ROUTER
from hub.outbox import Outbox
from hub.usecases import HubParts, Parts, Principal

__all__ = ["OUTBOX", "actor", "hub_of", "parts_of"]

OUTBOX = web.AppKey("outbox", Outbox)


def hub_of(request: web.Request) -> HubParts:
    """The parts of the hub serving ``request``, as use cases take them."""
    return parts_of(request.app)


def parts_of(app: web.Application) -> HubParts:
    """The parts of the hub that ``app`` serves (the router and the outbox once they have started)."""
    return Parts(
        settings=app[SETTINGS],
        store=app[STORE],
        bus=app[BUS],
        clock=app[CLOCK],
        router=app.get(ROUTER),
        outbox=app.get(OUTBOX),
    )


async def actor(request: web.Request) -> Principal:
    """The logged-in agent as the acting principal (401 when nobody is logged in)."""
    return Principal.of_agent(await authenticated(request))
