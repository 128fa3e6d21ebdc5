"""Agents and their credentials: accounts, presence, session and bearer tokens.

Passwords are argon2id hashes (hub.passwords); tokens are stored only as their
SHA-256, so the table alone never authenticates anyone. Presence changes that
routing cares about (ready, pauses) are written here; the decisions are in
hub.routing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Agent, Presence, Role
from hub.passwords import hash_password, new_token, token_digest
from hub.store._db import Store
from hub.store.audit import append_entry
from hub.store.tables import agent_queues, agents, auth_tokens

__all__ = [
    "AgentExists",
    "IssuedToken",
    "TokenSession",
    "agent_from_row",
    "count_agents",
    "create_agent",
    "create_token",
    "find_agent_by_login",
    "get_agent",
    "load_agent",
    "lookup_token",
    "revoke_agent_tokens",
    "revoke_token",
    "set_presence",
]

SESSION = "session"
BEARER = "bearer"


class AgentExists(Exception):
    """The login is taken."""

    def __init__(self, login: str) -> None:
        super().__init__(f"an agent with login {login!r} already exists")
        self.login = login


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The only moment the secret exists outside the client: hand it over and forget it."""

    token: str
    kind: str  # session | bearer
    csrf_token: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenSession:
    token_id: int
    agent: Agent
    kind: str
    csrf_token: str | None
    expires_at: datetime


def agent_from_row(row: Any, queues: Iterable[str]) -> Agent:
    """An agent from a row of ``agents`` and the ids of their queues."""
    return Agent(
        id=int(row.id),
        login=row.login,
        display_name=row.display_name,
        role=Role(row.role),
        capacity=int(row.capacity),
        presence=Presence(row.presence),
        queues=tuple(sorted(queues)),
        pause_reason=row.pause_reason,
        pause_paid=row.pause_paid,
        presence_since=row.presence_since,
    )


async def load_agent(connection: AsyncConnection, agent_id: int) -> Agent | None:
    """One agent with their queues, inside a caller's transaction."""
    row = (await connection.execute(select(agents).where(agents.c.id == agent_id))).first()
    if row is None:
        return None
    queues = (
        await connection.execute(select(agent_queues.c.queue_id).where(agent_queues.c.agent_id == agent_id))
    ).scalars()
    return agent_from_row(row, queues)


async def get_agent(store: Store, agent_id: int) -> Agent | None:
    async with store.read() as connection:
        return await load_agent(connection, agent_id)


async def find_agent_by_login(store: Store, login: str) -> tuple[Agent, str] | None:
    """The active agent and their password hash, for the login check."""
    async with store.read() as connection:
        row = (await connection.execute(select(agents).where(agents.c.login == login, agents.c.active))).first()
        if row is None:
            return None
        agent = await load_agent(connection, int(row.id))
    assert agent is not None
    return agent, str(row.password_hash)


async def create_agent(
    store: Store,
    *,
    login: str,
    password: str,
    role: Role,
    now: datetime,
    display_name: str | None = None,
    capacity: int = 2,
    queues: Iterable[str] = (),
) -> Agent:
    """A new agent, offline (an agent who logs in is not ready until they say so)."""
    password_hash = await hash_password(password)
    try:
        async with store.write() as connection:
            agent_id = (
                await connection.execute(
                    agents.insert()
                    .values(
                        login=login,
                        display_name=display_name or login,
                        password_hash=password_hash,
                        role=role.value,
                        capacity=capacity,
                        presence=Presence.OFFLINE.value,
                        presence_since=now,
                        idle_since=now,
                        created_at=now,
                    )
                    .returning(agents.c.id)
                )
            ).scalar_one()
            queue_ids = sorted(set(queues))
            if queue_ids:
                await connection.execute(
                    agent_queues.insert(), [{"agent_id": agent_id, "queue_id": q} for q in queue_ids]
                )
            agent = await load_agent(connection, int(agent_id))
    except IntegrityError:
        raise AgentExists(login) from None
    assert agent is not None
    return agent


async def count_agents(store: Store, *, role: Role | None = None) -> int:
    query = select(func.count()).select_from(agents).where(agents.c.active)
    if role is not None:
        query = query.where(agents.c.role == role.value)
    async with store.read() as connection:
        return int((await connection.execute(query)).scalar_one())


async def set_presence(
    connection: AsyncConnection,
    agent_id: int,
    presence: Presence,
    *,
    now: datetime,
    reason: str | None = None,
    paid: bool | None = None,
) -> Agent | None:
    """Change presence inside the caller's transaction. Becoming ready starts the idle clock."""
    values: dict[str, Any] = {
        "presence": presence.value,
        "presence_since": now,
        "pause_reason": reason if presence is Presence.PAUSED else None,
        "pause_paid": (paid if paid is not None else True) if presence is Presence.PAUSED else None,
    }
    current = (await connection.execute(select(agents.c.presence).where(agents.c.id == agent_id))).scalar_one_or_none()
    if current is None:
        return None
    if presence is Presence.READY and current != Presence.READY.value:
        values["idle_since"] = now
    await connection.execute(update(agents).where(agents.c.id == agent_id).values(values))
    return await load_agent(connection, agent_id)


# --------------------------------------------------------------------- tokens


async def create_token(store: Store, agent_id: int, kind: str, *, now: datetime, ttl: timedelta) -> IssuedToken:
    """A new session (with its CSRF token) or bearer token."""
    if kind not in (SESSION, BEARER):
        raise ValueError(f"unknown token kind {kind!r}")
    token = new_token()
    csrf = new_token() if kind == SESSION else None
    expires_at = now + ttl
    async with store.write() as connection:
        await connection.execute(
            auth_tokens.insert().values(
                token_hash=token_digest(token),
                agent_id=agent_id,
                kind=kind,
                csrf_token=csrf,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return IssuedToken(token=token, kind=kind, csrf_token=csrf, expires_at=expires_at)


async def lookup_token(store: Store, token: str, *, now: datetime) -> TokenSession | None:
    """The live (not expired, not revoked) token of an active agent, or None: on every request that logs in by
    token, so a brief read (three statements by key)."""
    async with store.read(brief=True) as connection:
        row = (
            await connection.execute(
                select(auth_tokens)
                .join(agents, agents.c.id == auth_tokens.c.agent_id)
                .where(
                    auth_tokens.c.token_hash == token_digest(token),
                    auth_tokens.c.revoked_at.is_(None),
                    auth_tokens.c.expires_at > now,
                    agents.c.active,
                )
            )
        ).first()
        if row is None:
            return None
        agent = await load_agent(connection, int(row.agent_id))
    if agent is None:
        return None
    return TokenSession(
        token_id=int(row.id), agent=agent, kind=row.kind, csrf_token=row.csrf_token, expires_at=row.expires_at
    )


async def revoke_token(store: Store, token: str, *, now: datetime, audit: Mapping[str, Any] | None = None) -> bool:
    """Revoke one live token; False when it was not live. ``audit`` (an entry, ``hub.audit.entry_values``) is
    appended in the same transaction when the token was revoked: a logout and its entry, both or neither."""
    async with store.write() as connection:
        result = await connection.execute(
            update(auth_tokens)
            .where(auth_tokens.c.token_hash == token_digest(token), auth_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if result.rowcount and audit is not None:
            await append_entry(store, audit, connection=connection)
    return bool(result.rowcount)


async def revoke_agent_tokens(store: Store, agent_id: int, *, now: datetime) -> int:
    """Every live token of one agent (password change, deactivation)."""
    async with store.write() as connection:
        result = await connection.execute(
            update(auth_tokens)
            .where(auth_tokens.c.agent_id == agent_id, auth_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return int(result.rowcount)
