"""Who is calling: login, logout, sessions, bearer tokens, presence.

Two credentials come out of one login: a bearer token for API clients and an
HttpOnly, SameSite=Strict session cookie for the console. A cookie is sent by
the browser on its own, so unsafe methods on a cookie session also need the
session's CSRF token in ``X-CSRF-Token``; a bearer token is never sent
implicitly and needs none.

Other API modules call ``authenticated(request)`` and ``require_role(agent, ...)`` (the use cases' rule,
hub/usecases/permissions.py, handed on: a 403 ``forbidden`` either way).
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from aiohttp import web

from hub.api._body import json_body, optional_str, required_str
from hub.api._bot_auth import bot_principal
from hub.api.errors import ApiError, error_response
from hub.api.keys import HUB, SETTINGS
from hub.api.openapi import documented, schema
from hub.login_limits import LoginLimiter, LoginLimits, TooManyAttempts
from hub.model import Agent, Presence, Role
from hub.usecases.permissions import require_role
from hub.usecases.presence import set_my_presence
from hub.usecases.principal import Principal
from hub.usecases.sessions import BEARER, SESSION, InvalidCredentials, TokenSession, log_in, log_out, session_of
from hub.views import agent_json

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "agent_json",
    "authenticated",
    "require_role",
    "session_for_token",
    "setup",
]

SESSION_COOKIE = "channelhub_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

AUTH = web.RequestKey("auth", TokenSession)
AUTH_TOKEN = web.RequestKey("auth_token", str)
LOGIN_LIMITER = web.AppKey("login_limiter", LoginLimiter)

routes = web.RouteTableDef()


def _unauthenticated(message: str = "log in first") -> ApiError:
    return ApiError(401, "unauthenticated", message)


async def session_for_token(request: web.Request, token: str, kind: str) -> TokenSession | None:
    """The live token of that kind, or None (used by the WebSocket's ``?token=``)."""
    return await session_of(request.app[HUB], token, kind)


async def authenticated(request: web.Request) -> Agent:
    """The calling agent, from ``Authorization: Bearer`` or the session cookie; else 401.

    The answer is remembered on the request, so calling it twice costs one lookup."""
    if AUTH in request:
        return request[AUTH].agent
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated("Authorization must be 'Bearer <token>'")
        session = await session_for_token(request, token.strip(), BEARER)
        if session is None and bot_principal(request) is not None:  # a bot's token on an agent's route
            raise ApiError(403, "agents_only", "a bot replies, hands off or closes; this action is for agents")
        if session is None:
            raise _unauthenticated("the token is unknown, expired or revoked")
    else:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise _unauthenticated()
        session = await session_for_token(request, token, SESSION)
        if session is None:
            raise _unauthenticated("the session has ended; log in again")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            expected = session.csrf_token or ""
            if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
                raise _unauthenticated(f"a session needs the {CSRF_HEADER} header for changes")
    request[AUTH] = session
    request[AUTH_TOKEN] = token.strip()
    return session.agent


# ------------------------------------------------------------------- routes


AGENT = schema(
    "Agent",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "login": {"type": "string"},
            "display_name": {"type": "string"},
            "role": {"enum": [r.value for r in Role]},
            "capacity": {"type": "integer"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "presence": {
                "type": "object",
                "properties": {
                    "state": {"enum": [p.value for p in Presence]},
                    "reason": {"type": ["string", "null"]},
                    "paid": {"type": ["boolean", "null"]},
                    "since": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        },
    },
)


@routes.post("/api/v1/auth/login")
@documented(
    "Log in with login and password",
    description="Returns a bearer token and sets the console session cookie (HttpOnly, SameSite=Strict); "
    "unsafe requests on the cookie session need the returned csrf_token in X-CSRF-Token.",
    body={
        "type": "object",
        "required": ["login", "password"],
        "properties": {"login": {"type": "string"}, "password": {"type": "string"}},
    },
    ok=(
        200,
        {
            "type": "object",
            "properties": {
                "token": {"type": "string"},
                "csrf_token": {"type": "string"},
                "agent": {"$ref": "#/components/schemas/Agent"},
            },
        },
    ),
    errors=(400, 401, 422, 429),
    tag="auth",
    auth=False,
)
async def login(request: web.Request) -> web.Response:
    """Password login: a bearer token in the body and the console session as a cookie."""
    body = await json_body(request)
    # a malformed request is 422 naming the field, not a wrong guess (and not counted as one)
    login_name, password = required_str(body, "login"), required_str(body, "password")
    try:
        done = await log_in(request.app[HUB], request.app[LOGIN_LIMITER], login_name, password, address=request.remote)
    except TooManyAttempts as exc:
        refused = error_response(429, "too_many_attempts", str(exc), retry_after=exc.retry_after)
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    except InvalidCredentials:
        raise ApiError(401, "invalid_credentials", "wrong login or password") from None
    response = web.json_response(
        {"token": done.bearer.token, "agent": agent_json(done.agent), "csrf_token": done.session.csrf_token}
    )
    response.set_cookie(
        SESSION_COOKIE,
        done.session.token,
        max_age=int(done.ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].auth.cookie_secure,
    )
    return response


@routes.post("/api/v1/auth/logout")
@documented(
    "Log out: end this session or revoke this bearer token",
    description="The agent goes offline, as with PUT /api/v1/me/presence: their open offers go to the next agent.",
    ok=(204, None),
    errors=(401,),
    tag="auth",
)
async def logout(request: web.Request) -> web.Response:
    """Ends the session, or revokes the bearer token, that made this request; the agent goes offline."""
    agent = await authenticated(request)
    await log_out(request.app[HUB], Principal.of_agent(agent, address=request.remote), request[AUTH_TOKEN])
    response = web.Response(status=204)
    if request[AUTH].kind == SESSION:
        response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/v1/me")
@documented("Who am I", ok=(200, AGENT), errors=(401,), tag="auth")
async def me(request: web.Request) -> web.Response:
    agent = await authenticated(request)
    return web.json_response(agent_json(agent))


@routes.put("/api/v1/me/presence")
@documented(
    "Set my presence",
    description="ready | paused (reason; paid unless paid=false) | offline. Logging in does not make an agent ready.",
    body={
        "type": "object",
        "required": ["state"],
        "properties": {
            "state": {"enum": [p.value for p in Presence]},
            "reason": {"type": "string"},
            "paid": {"type": "boolean"},
        },
    },
    ok=(200, AGENT),
    errors=(400, 401, 422),
    tag="auth",
)
async def put_presence(request: web.Request) -> web.Response:
    """ready | paused (with a reason; paid unless ``"paid": false``) | offline."""
    agent = await authenticated(request)
    body = await json_body(request)
    state = required_str(body, "state")
    try:
        presence = Presence(state)
    except ValueError:
        raise ApiError(422, "invalid_presence", "state must be ready, paused or offline", field="state") from None
    reason = optional_str(body, "reason")
    paid = body.get("paid")
    if paid is not None and not isinstance(paid, bool):
        raise ApiError(422, "invalid_field", "'paid' must be true or false", field="paid")
    updated = await set_my_presence(
        request.app[HUB], Principal.of_agent(agent, address=request.remote), presence, reason=reason, paid=paid
    )
    if updated is None:
        raise _unauthenticated()
    return web.json_response(agent_json(updated))


def setup(app: web.Application) -> None:
    auth = app[SETTINGS].auth
    app[LOGIN_LIMITER] = LoginLimiter(
        LoginLimits(
            attempts=auth.login_attempts,
            address_attempts=auth.login_address_attempts,
            window=timedelta(seconds=auth.login_window_seconds),
            lockout=timedelta(seconds=auth.login_lockout_seconds),
            max_lockout=timedelta(seconds=auth.login_max_lockout_seconds),
            concurrent_checks=auth.password_checks,
        )
    )
    app.router.add_routes(routes)
