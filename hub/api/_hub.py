"""How a handler reaches the hub for a use case: the running ``Hub`` is what use cases take."""

from __future__ import annotations

from aiohttp import web

from hub.api.auth import authenticated
from hub.api.keys import HUB
from hub.app import Hub
from hub.model import Agent
from hub.usecases import Principal

__all__ = ["actor", "hub_of", "parts_of", "principal"]


def hub_of(request: web.Request) -> Hub:
    """The hub serving ``request``."""
    return request.app[HUB]


def parts_of(app: web.Application) -> Hub:
    """The hub that ``app`` serves."""
    return app[HUB]


async def actor(request: web.Request) -> Principal:
    """The logged-in agent as the acting principal (401 when nobody is logged in)."""
    return principal(request, await authenticated(request))


def principal(request: web.Request, agent: Agent) -> Principal:
    """``agent`` acting through ``request``: the principal, with the client's address for the audit log."""
    return Principal.of_agent(agent, address=request.remote)
