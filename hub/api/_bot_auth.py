"""A bot's bearer token ([[bots]] ``token``) as the acting principal: a ``bot`` principal scoped to its queues."""

from __future__ import annotations

import hmac

from aiohttp import web

from hub.api.keys import SETTINGS
from hub.usecases.principal import Principal

__all__ = ["bot_principal"]


def bot_principal(request: web.Request) -> Principal | None:
    """The bot whose token the request bears, or None (an agent's token, a cookie, nothing)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    found = None
    for bot in request.app[SETTINGS].bots:
        # every configured token is compared, in constant time, whichever matches
        if bot.token is not None and hmac.compare_digest(bot.token.encode(), token.encode()):
            found = bot
    return Principal.of_bot(found.id, found.queues) if found is not None else None
