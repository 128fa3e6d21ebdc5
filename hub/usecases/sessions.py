"""Logging in and out: the password check under the login limits, the tokens, the audit log.

One login gives two credentials (a bearer token for API clients and a console session with its CSRF token),
each living ``[auth] session_hours``. A refused login is recorded as ``auth.login_failed`` with the login that
was tried (it may name nobody) and why; a successful one as ``auth.login``; a logout as ``auth.logout``. How the
credentials travel (a body, a cookie) is the HTTP server's (hub/api/auth.py).

Logging out also takes the agent off the desk. An agent who logged out sees no offers, so one made to them
would only run out and pause them (unpaid, "missed offer") while the customer waited the queue's whole offer
time: they go offline, as choosing *Offline* does (hub/usecases/presence.py), and their open offers move on at
once. The conversations they own stay theirs, as they do for an agent who goes offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hub.audit import entry_values, record
from hub.login_limits import LoginLimiter, TooManyAttempts
from hub.model import Agent, Presence
from hub.passwords import verify_password
from hub.store.agents import (
    BEARER,
    SESSION,
    IssuedToken,
    TokenSession,
    create_token,
    find_agent_by_login,
    lookup_token,
    revoke_token,
)
from hub.usecases._parts import HubParts
from hub.usecases.presence import set_my_presence
from hub.usecases.principal import Principal

__all__ = ["BEARER", "SESSION", "InvalidCredentials", "LoggedIn", "TokenSession", "log_in", "log_out", "session_of"]


async def session_of(hub: HubParts, token: str, kind: str) -> TokenSession | None:
    """The live token of that kind (``BEARER`` or ``SESSION``) and its agent, or None: unknown, expired, revoked,
    or of the other kind."""
    session = await lookup_token(hub.store, token, now=hub.clock())
    if session is None or session.kind != kind:
        return None
    return session


class InvalidCredentials(Exception):
    """No active agent has the login, or the password is not theirs (which of the two is not said)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedIn:
    """The agent, their new bearer token and console session, and how long both live."""

    agent: Agent
    bearer: IssuedToken
    session: IssuedToken
    ttl: timedelta


async def log_in(hub: HubParts, limiter: LoginLimiter, login: str, password: str, *, address: str | None) -> LoggedIn:
    """Check the password of ``login`` from ``address`` under the limits and issue both credentials.

    Raises TooManyAttempts (the limits refuse to check: not counted as a guess) or InvalidCredentials; each
    refusal is recorded first."""
    try:
        await limiter.admit(hub.store, login, address, now=hub.clock())
    except TooManyAttempts:
        await _failed(hub, login, address, "too_many_attempts")
        raise
    found = await find_agent_by_login(hub.store, login)
    async with limiter.checking():
        ok = await verify_password(found[1] if found else None, password)
    if found is None or not ok:
        await _failed(hub, login, address, "invalid_credentials")
        raise InvalidCredentials(login)
    await limiter.succeeded(hub.store, login, address)
    agent = found[0]
    now = hub.clock()
    await record(hub.store, "auth.login", actor=Principal.of_agent(agent, address=address), at=now)
    ttl = timedelta(hours=hub.settings.auth.session_hours)
    bearer = await create_token(hub.store, agent.id, BEARER, now=now, ttl=ttl)
    session = await create_token(hub.store, agent.id, SESSION, now=now, ttl=ttl)
    return LoggedIn(agent=agent, bearer=bearer, session=session, ttl=ttl)


async def _failed(hub: HubParts, login: str, address: str | None, reason: str) -> None:
    """``auth.login_failed``: the login that was tried (it may name nobody) and why it failed."""
    await record(
        hub.store,
        "auth.login_failed",
        actor=None,
        login=login,
        address=address,
        at=hub.clock(),
        after={"reason": reason},
    )


async def log_out(hub: HubParts, actor: Principal, token: str) -> None:
    """End the session, or revoke the bearer token, ``token`` (the one the actor logged out with), and set the
    agent offline unless they are already.

    The token is revoked and ``auth.logout`` recorded in one transaction: the log never shows a logout that did
    not happen, nor misses one that did. A token already revoked (a second logout racing the first) records
    nothing more."""
    now = hub.clock()
    await revoke_token(hub.store, token, now=now, audit=entry_values("auth.logout", actor=actor, at=now))
    if actor.agent is not None and actor.agent.presence is not Presence.OFFLINE:
        await set_my_presence(hub, actor, Presence.OFFLINE)
