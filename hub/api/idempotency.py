"""``Idempotency-Key`` for every state-changing request under /api/v1.

Installed once as a middleware (hub.api.handoff), so every route gets it
without doing anything: a request carrying the header runs once per agent (or
bot, by its token) and key; a retry gets the first answer again (with ``Idempotency-Replayed: true``),
a retry while the first still runs gets 409 ``idempotency_in_progress``, and
the same key on another route gets 422 ``idempotency_key_reused``. Answers of
500 and above are not kept, so the retry runs for real.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hub.api._bot_auth import bot_principal
from hub.api.auth import authenticated
from hub.api.errors import ApiError, error_response, refusal_response
from hub.api.keys import CLOCK, STORE
from hub.errors import Refusal
from hub.store.idempotency import Owner, claim_key, complete_key, release_key

__all__ = ["HEADER", "idempotency_middleware"]

HEADER = "Idempotency-Key"
REPLAYED = "Idempotency-Replayed"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _body_of(response: web.StreamResponse) -> Any:
    if isinstance(response, web.Response) and response.body is not None and response.content_type == "application/json":
        raw = response.body
        if isinstance(raw, bytes | bytearray):
            try:
                return json.loads(raw)
            except ValueError:
                return None
    return None


async def _owner(request: web.Request) -> Owner | None:
    """Whose key it is: the bot whose token the request bears (by its id), else the logged-in agent; None when
    nobody is."""
    bot = bot_principal(request)
    if bot is not None:
        return bot.bot_id
    try:
        return (await authenticated(request)).id
    except ApiError:
        return None


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get(HEADER)
    if key is None or request.method not in _UNSAFE or not request.path.startswith("/api/v1/"):
        return await handler(request)
    if not key.strip() or len(key) > 200:
        raise ApiError(400, "invalid_idempotency_key", f"{HEADER} must be 1 to 200 characters")
    owner = await _owner(request)
    if owner is None:
        return await handler(request)  # not logged in: the route answers (login needs no key)
    store = request.app[STORE]
    path = request.path_qs
    earlier = await claim_key(store, owner, key, request.method, path, now=request.app[CLOCK]())
    if earlier is not None:
        if earlier.method != request.method or earlier.path != path:
            raise ApiError(422, "idempotency_key_reused", f"this {HEADER} was used for another request")
        if earlier.status is None:
            raise ApiError(409, "idempotency_in_progress", "the first request with this key is still running")
        if earlier.response is None:
            return web.Response(status=earlier.status, headers={REPLAYED: "true"})
        return web.json_response(earlier.response, status=earlier.status, headers={REPLAYED: "true"})
    try:
        response = await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            await release_key(store, owner, key)
        else:
            answer = error_response(exc.status, exc.code, exc.message, **exc.extra)
            await complete_key(store, owner, key, exc.status, _body_of(answer))
        raise
    except Refusal as exc:
        answer = refusal_response(exc)
        await complete_key(store, owner, key, answer.status, _body_of(answer))
        raise
    except BaseException:
        await release_key(store, owner, key)
        raise
    if response.status >= 500:
        await release_key(store, owner, key)
    else:
        await complete_key(store, owner, key, response.status, _body_of(response))
    return response
