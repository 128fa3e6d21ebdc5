"""Who is calling: login, logout, sessions, bearer tokens, presence.

Two credentials come out of one login: a bearer token for API clients and an
HttpOnly, SameSite=Strict session cookie for the console. A cookie is sent by
the browser on its own, so unsafe methods on a cookie session also need the
session's CSRF token in ``X-CSRF-Token``; a bearer token is never sent
implicitly and needs none.

Other API modules call ``authenticated(request)`` and ``require_role(agent, ...)``.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from aiohttp import web

from hub.api._body import json_body, optional_str, required_str
from hub.api._bot_auth import bot_principal
from hub.api.errors import ApiError, error_response
from hub.api.keys import BUS, CLOCK, HUB, ROUTER, SETTINGS, STORE
from hub.api.openapi import documented, schema
from hub.audit import record
from hub.events import AgentPresence
from hub.login_limits import LoginLimiter, LoginLimits, TooManyAttempts
from hub.model import Agent, Presence, Role
from hub.passwords import verify_password
from hub.store.agents import (
    BEARER,
    SESSION,
    TokenSession,
    create_token,
    find_agent_by_login,
    lookup_token,
    set_presence,
)
from hub.store.offers import withdraw_offers
from hub.usecases.principal import Principal
from hub.usecases.sessions import log_out
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
    session = await lookup_token(request.app[STORE], token, now=request.app[CLOCK]())
    if session is None or session.kind != kind:
        return None
    return session


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


def require_role(agent: Agent, *roles: Role) -> None:
    """403 unless the agent has one of ``roles``."""
    if agent.role not in roles:
        raise ApiError(403, "forbidden", f"this needs the role {' or '.join(r.value for r in roles)}")


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
    store = request.app[STORE]
    limiter = request.app[LOGIN_LIMITER]
    try:
        await limiter.admit(store, login_name, request.remote, now=request.app[CLOCK]())
    except TooManyAttempts as exc:
        await _audit_failed_login(request, login_name, "too_many_attempts")
        refused = error_response(429, "too_many_attempts", str(exc), retry_after=exc.retry_after)
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    found = await find_agent_by_login(store, login_name)
    async with limiter.checking():
        ok = await verify_password(found[1] if found else None, password)
    if found is None or not ok:
        await _audit_failed_login(request, login_name, "invalid_credentials")
        raise ApiError(401, "invalid_credentials", "wrong login or password")
    await limiter.succeeded(store, login_name, request.remote)
    agent = found[0]
    now = request.app[CLOCK]()
    await record(store, "auth.login", actor=Principal.of_agent(agent, address=request.remote), at=now)
    ttl = timedelta(hours=request.app[SETTINGS].auth.session_hours)
    bearer = await create_token(store, agent.id, BEARER, now=now, ttl=ttl)
    session = await create_token(store, agent.id, SESSION, now=now, ttl=ttl)
    response = web.json_response({"token": bearer.token, "agent": agent_json(agent), "csrf_token": session.csrf_token})
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=int(ttl.total_seconds()),
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
    if presence is Presence.PAUSED and not reason:
        reason = "pause"
    now = request.app[CLOCK]()
    async with request.app[STORE].write() as connection:
        updated = await set_presence(connection, agent.id, presence, now=now, reason=reason, paid=paid)
        if updated is not None:  # in the same transaction as the change
            await record(
                request.app[STORE],
                "presence.changed",
                actor=Principal.of_agent(agent, address=request.remote),
                at=now,
                target=f"agent:{agent.login}",
                before=_presence_of(agent),
                after=_presence_of(updated),
                connection=connection,
            )
    if updated is None:
        raise _unauthenticated()
    request.app[BUS].publish(AgentPresence(agent_id=agent.id))
    if presence is not Presence.READY:
        request.app[BUS].publish_all(await withdraw_offers(request.app[STORE], agent.id, now=request.app[CLOCK]()))
    if ROUTER in request.app:
        await request.app[ROUTER].sweep()  # an offer may wait for this agent, or move on from them
    return web.json_response(agent_json(updated))


def _presence_of(agent: Agent) -> dict[str, Any]:
    return {"state": agent.presence.value, "reason": agent.pause_reason, "paid": agent.pause_paid}


async def _audit_failed_login(request: web.Request, login_name: str, reason: str) -> None:
    """``auth.login_failed``: the login that was tried (it may name nobody) and why it failed."""
    await record(
        request.app[STORE],
        "auth.login_failed",
        actor=None,
        login=login_name,
        address=request.remote,
        at=request.app[CLOCK](),
        after={"reason": reason},
    )


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
