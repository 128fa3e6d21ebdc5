"""The agent-facing API: accounts and access, routing, conversations, the WebSocket.

``setup(app)`` is listed in hub/api/extensions.py. At start it seeds queues and
statuses from the configuration, creates the demo agents when the
configuration names them, and tells the operator how to create the first admin
when there is none.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from hub.api import auth, conversations, routing, ws
from hub.api.idempotency import idempotency_middleware
from hub.api.keys import CLOCK, SETTINGS, STORE
from hub.model import Role
from hub.store.agents import AgentExists, count_agents, create_agent, find_agent_by_login
from hub.store.catalogue import seed_catalogue

__all__ = ["setup"]

logger = logging.getLogger(__name__)


async def _bootstrap(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = app[STORE]
    await seed_catalogue(store, settings.queues, settings.statuses)
    demo = settings.demo
    wanted: list[tuple[str, str, Role]] = []
    if demo.admin_login and demo.admin_password:
        wanted.append((demo.admin_login, demo.admin_password, Role.ADMIN))
    wanted += [(login, password, Role(role)) for login, password, role in demo.agents]
    all_queues = [q.id for q in settings.queues]
    for login, password, role in wanted:
        if await find_agent_by_login(store, login) is not None:
            continue
        try:
            await create_agent(store, login=login, password=password, role=role, now=app[CLOCK](), queues=all_queues)
            logger.info("created demo agent %s (%s)", login, role.value, extra={"login": login, "role": role.value})
        except AgentExists:
            pass  # another process created it a moment ago
    if await count_agents(store, role=Role.ADMIN) == 0:
        logger.warning(
            "no admin exists yet; create the first one with: "
            "channelhub agents create LOGIN --role admin (the password is read from standard input)"
        )
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_bootstrap)
    app.middlewares.append(idempotency_middleware)
    ws.setup(app)  # the notifier listens before the router publishes anything
    routing.setup(app)
    auth.setup(app)
    conversations.setup(app)
