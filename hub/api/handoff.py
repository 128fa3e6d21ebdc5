"""The agent-facing API: accounts and access, routing, conversations, the WebSocket.

``setup(app)`` is listed in hub/api/extensions.py. What runs behind these routes
(the router, the notifier, the seeding of queues, statuses and demo agents) is
the hub's (hub/app.py), started before any route is served.
"""

from __future__ import annotations

from aiohttp import web

from hub.api import auth, conversations, ws
from hub.api.idempotency import idempotency_middleware

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    app.middlewares.append(idempotency_middleware)
    ws.setup(app)
    auth.setup(app)
    conversations.setup(app)
