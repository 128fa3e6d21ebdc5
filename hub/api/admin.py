"""Admin API: queues (with members and live figures), statuses, agents, channel accounts.

Who may do what: every agent lists queues and statuses; supervisors and admins
list agents and accounts and set queue members; only admins create, change or
delete queues, statuses and agents. Nobody changes their own role or
deactivates themselves. Channel accounts come from the configuration file and
are read-only here; their secrets never leave the hub.

One module per concept (hub/api/queues.py, statuses.py, agents.py,
accounts.py); ``setup`` mounts them in this order.
"""

from __future__ import annotations

from aiohttp import web

from hub.api import accounts, agents, queues, statuses

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    for part in (queues, statuses, agents, accounts):
        part.setup(app)
