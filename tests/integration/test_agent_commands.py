"""``channelhub agents create``: the password comes from standard input, never the command line;
``--queue`` takes a queue from the configuration file or the database. ``agents list`` shows the
accounts, active ones unless asked otherwise; ``deactivate``, ``reactivate`` and ``password`` change
them as the admin API does (tests/api/test_agent_deactivation.py runs ``deactivate`` beside a running
hub)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.model import Presence, Queue, Role
from hub.passwords import verify_password
from hub.settings import Settings
from hub.store import Store
from hub.store.admin import create_queue, update_agent
from hub.store.agents import (
    BEARER,
    SESSION,
    IssuedToken,
    create_agent,
    create_token,
    find_agent_by_login,
    lookup_token,
    set_presence,
)
from hub.store.tables import audit_log
from tests.conftest import BASE_CONFIG


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The hub's configuration file (the test's database comes in through the environment)."""
    path = tmp_path / "hub.toml"
    path.write_text(BASE_CONFIG, encoding="utf-8")
    return path


async def logged_in(store: Store, agent_id: int, now: datetime) -> tuple[IssuedToken, IssuedToken]:
    """A console session and an API bearer token for the agent, as a login and a token request leave them."""
    session = await create_token(store, agent_id, SESSION, now=now, ttl=timedelta(hours=8))
    bearer = await create_token(store, agent_id, BEARER, now=now, ttl=timedelta(days=30))
    return session, bearer


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[Store]:
    """The database the commands use, migrated, for a test to set up or to look at; closed afterwards."""
    store = Store(database_url)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


def run_cli(config: Path, database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``channelhub agents ARGS --config CONFIG`` in its own process, as an operator runs it."""
    env = {**os.environ, "CHANNELHUB_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "agents", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


async def test_agents_create_reads_the_password_from_stdin(
    config: Path, database_url: str, make_settings: Callable[..., Settings]
) -> None:
    done = run_cli(
        config,
        database_url,
        "create",
        "root",
        "--role",
        "admin",
        "--queue",
        "support",
        "--name",
        "Root",
        stdin="s3cret-pass\n",
    )
    assert done.returncode == 0, done.stderr
    assert "created admin root" in done.stdout
    assert "s3cret-pass" not in done.stdout + done.stderr
    async with opened(database_url) as store:
        found = await find_agent_by_login(store, "root")
    assert found is not None
    agent, password_hash = found
    assert agent.role is Role.ADMIN
    assert agent.queues == ("support",)
    assert agent.display_name == "Root"
    assert await verify_password(password_hash, "s3cret-pass")
    again = run_cli(config, database_url, "create", "root", "--role", "agent", stdin="another-pass\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr


async def test_agents_create_is_recorded_in_the_audit_log_as_the_command_line(config: Path, database_url: str) -> None:
    done = run_cli(config, database_url, "create", "root", "--role", "admin", stdin="s3cret-pass\n")
    assert done.returncode == 0, done.stderr
    async with opened(database_url) as store, store.read() as connection:
        rows = (await connection.execute(select(audit_log).where(audit_log.c.action == "agent.created"))).all()
    assert [(r.actor, r.actor_kind, r.target) for r in rows] == [(None, "cli", "agent:root")]
    assert rows[0].after == {"role": "admin", "capacity": 2, "queues": []}


def test_agents_create_refuses_a_short_password_or_an_unknown_queue(config: Path, sqlite_url: str) -> None:
    short = run_cli(config, sqlite_url, "create", "bob", "--role", "agent", stdin="short\n")
    assert short.returncode == 2
    assert "at least 8" in short.stderr
    unknown = run_cli(
        config, sqlite_url, "create", "bob", "--role", "agent", "--queue", "nowhere", stdin="long enough\n"
    )
    assert unknown.returncode == 2
    assert "unknown queue nowhere" in unknown.stderr


async def test_agents_create_accepts_a_queue_created_through_the_api(config: Path, database_url: str) -> None:
    async with opened(database_url) as store:
        await create_queue(store, Queue(id="vip", name="VIP", number=300, offer_timeout=30))
    done = run_cli(
        config,
        database_url,
        "create",
        "vera",
        "--role",
        "agent",
        "--queue",
        "vip",
        "--queue",
        "support",
        stdin="long enough\n",
    )
    assert done.returncode == 0, done.stderr
    assert "created agent vera" in done.stdout
    async with opened(database_url) as store:
        found = await find_agent_by_login(store, "vera")
    assert found is not None
    assert found[0].queues == ("support", "vip")
    unknown = run_cli(
        config, database_url, "create", "otto", "--role", "agent", "--queue", "nowhere", stdin="long enough\n"
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == ["channelhub: unknown queue nowhere (known: sales, support, vip)"]
    assert "long enough" not in unknown.stdout + unknown.stderr


async def test_agents_list_shows_active_agents_by_login_and_deactivated_ones_only_when_asked(
    config: Path, database_url: str
) -> None:
    now = datetime.now(UTC)
    async with opened(database_url) as store:
        zoe = await create_agent(
            store, login="zoe", password="long enough", role=Role.AGENT, now=now, queues=["support", "sales"]
        )
        await create_agent(store, login="anna", password="long enough", role=Role.ADMIN, now=now)
        bert = await create_agent(
            store, login="Bert", password="long enough", role=Role.SUPERVISOR, now=now, queues=["sales"]
        )
        max_ = await create_agent(
            store, login="max", password="long enough", role=Role.AGENT, now=now, queues=["sales"]
        )
        async with store.write() as connection:
            await set_presence(connection, zoe.id, Presence.READY, now=now)
            await set_presence(connection, bert.id, Presence.PAUSED, now=now, reason="lunch")
        await update_agent(store, max_.id, {"active": False}, now=now)
    listed = run_cli(config, database_url, "list")
    assert listed.returncode == 0, listed.stderr
    # by login as code points (upper case first) on both engines; the last column is not padded
    assert listed.stdout.splitlines() == [
        "Bert  supervisor  active  sales          paused (lunch)",
        "anna  admin       active  -              offline",
        "zoe   agent       active  sales,support  ready",
    ]
    everyone = run_cli(config, database_url, "list", "--inactive")
    assert everyone.returncode == 0, everyone.stderr
    assert everyone.stdout.splitlines() == [
        "Bert  supervisor  active    sales          paused (lunch)",
        "anna  admin       active    -              offline",
        "max   agent       inactive  sales          offline",
        "zoe   agent       active    sales,support  ready",
    ]


async def test_agents_deactivate_revokes_every_token_and_repeating_it_changes_nothing(
    config: Path, database_url: str
) -> None:
    now = datetime.now(UTC)
    async with opened(database_url) as store:
        anna = await create_agent(store, login="anna", password="long enough", role=Role.AGENT, now=now)
        session, bearer = await logged_in(store, anna.id, now)
        assert await lookup_token(store, bearer.token, now=now) is not None

    done = run_cli(config, database_url, "deactivate", "anna")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"deactivated agent anna (id {anna.id}; sessions and tokens revoked: 2)",
        "no conversations to give back",
    ]
    again = run_cli(config, database_url, "deactivate", "anna")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["agent anna was already inactive; nothing changed"]
    async with opened(database_url) as store:
        later = datetime.now(UTC)
        assert await lookup_token(store, session.token, now=later) is None
        assert await lookup_token(store, bearer.token, now=later) is None
        assert await find_agent_by_login(store, "anna") is None  # the login check finds no active agent

    back = run_cli(config, database_url, "reactivate", "anna")
    assert back.returncode == 0, back.stderr
    assert back.stdout.splitlines() == [f"reactivated agent anna (id {anna.id}); they log in again and start offline"]
    assert run_cli(config, database_url, "reactivate", "anna").stdout.splitlines() == [
        "agent anna is already active; nothing changed"
    ]
    async with opened(database_url) as store:
        found = await find_agent_by_login(store, "anna")
        assert found is not None
        assert await verify_password(found[1], "long enough")
        assert found[0].presence is Presence.OFFLINE
        assert await lookup_token(store, bearer.token, now=datetime.now(UTC)) is None  # revoked stays revoked


def test_agents_deactivate_reactivate_and_password_refuse_an_unknown_login(config: Path, sqlite_url: str) -> None:
    for action in ("deactivate", "reactivate", "password"):
        done = run_cli(config, sqlite_url, action, "ghost", stdin="long enough\n")
        assert done.returncode == 2, action
        assert done.stderr.splitlines() == ["channelhub: no agent with login 'ghost'"]
        assert done.stdout == ""


async def test_agents_password_sets_the_new_password_and_revokes_the_agents_tokens(
    config: Path, database_url: str
) -> None:
    now = datetime.now(UTC)
    async with opened(database_url) as store:
        anna = await create_agent(store, login="anna", password="old password", role=Role.SUPERVISOR, now=now)
        bob = await create_agent(store, login="bob", password="bobs password", role=Role.AGENT, now=now)
        session, bearer = await logged_in(store, anna.id, now)
        bobs = await create_token(store, bob.id, BEARER, now=now, ttl=timedelta(days=30))

    done = run_cli(config, database_url, "password", "anna", stdin="new password\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"changed the password of supervisor anna (id {anna.id}; sessions and tokens revoked: 2)"
    ]
    assert "new password" not in done.stdout + done.stderr
    async with opened(database_url) as store:
        found = await find_agent_by_login(store, "anna")
        assert found is not None
        assert await verify_password(found[1], "new password")
        assert not await verify_password(found[1], "old password")
        later = datetime.now(UTC)
        assert await lookup_token(store, session.token, now=later) is None
        assert await lookup_token(store, bearer.token, now=later) is None
        assert await lookup_token(store, bobs.token, now=later) is not None  # only anna's
        fresh = await create_token(store, anna.id, BEARER, now=later, ttl=timedelta(days=30))

    # create's rule and message; a refused password changes nothing and revokes nothing
    for typed in ("short\n", "\n"):
        refused = run_cli(config, database_url, "password", "anna", stdin=typed)
        assert refused.returncode == 2
        assert refused.stderr.splitlines() == ["channelhub: the password needs at least 8 characters"]
    async with opened(database_url) as store:
        found = await find_agent_by_login(store, "anna")
        assert found is not None
        assert await verify_password(found[1], "new password")
        assert await lookup_token(store, fresh.token, now=datetime.now(UTC)) is not None
