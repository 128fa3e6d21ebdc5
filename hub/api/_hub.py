"""How a handler reaches the hub for a use case: the running ``Hub`` is what use cases take."""

from __future__ import annotations

from aiohttp import web

from hub.api._bot_auth import bot_principal
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
    """The logged-in agent as the acting principal, or a bot by its token (401 when nobody is logged in)."""
    bot = bot_principal(request)
    if bot is not None:
        return bot
    return principal(request, await authenticated(request))


def principal(request: web.Request, agent: Agent) -> Principal:
    """``agent`` acting through ``request``: the principal, with the client's address for the audit log."""
    return Principal.of_agent(agent, address=request.remote)
