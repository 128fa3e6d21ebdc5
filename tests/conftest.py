"""Shared fixtures: real databases (a SQLite file; a PostgreSQL server when
available), settings factories, and a running hub on loopback.

PostgreSQL: ``CHANNELHUB_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``). The tests skip when it is
unreachable, unless ``CHANNELHUB_REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.event_loop import new_event_loop
from hub.settings import ServerSettings, Settings, load_settings
from hub.store import Store

PG_ADMIN_URL = os.environ.get("CHANNELHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("CHANNELHUB_REQUIRE_POSTGRES") == "1"
ENGINES = ["sqlite", "postgres"]
#: the event loop the tests run on: serve's default unless CHANNELHUB_TEST_EVENT_LOOP names the other one
TEST_EVENT_LOOP = os.environ.get("CHANNELHUB_TEST_EVENT_LOOP") or ServerSettings().event_loop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Every async test and fixture runs on the loop ``channelhub serve`` runs on (hub/event_loop.py)."""
    return {TEST_EVENT_LOOP: functools.partial(new_event_loop, TEST_EVENT_LOOP)}


@functools.cache
def _pg_available() -> bool:
    """A TCP probe (safe inside a running event loop), cached for the session."""
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=3):
            return True
    except OSError:
        return False


_PG_STATE: dict[str, Any] = {}


def _pg_template() -> str:
    """A migrated template database, made once per test session."""
    if "template" in _PG_STATE:
        return str(_PG_STATE["template"])
    if not _pg_available():
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (CHANNELHUB_REQUIRE_POSTGRES=1) but {PG_ADMIN_URL} is unreachable")
        pytest.skip("PostgreSQL not reachable; set CHANNELHUB_TEST_POSTGRES_URL")
    import asyncpg

    name = f"chtest_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def make() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        store = Store(_pg_url(name))
        await store.migrate()
        await store.close()

    asyncio.run(make())
    _PG_STATE["template"] = name
    return name


@functools.cache
def _sqlite_template() -> Path:
    """A migrated SQLite file, made once per test process: each test gets a copy, as each PostgreSQL test gets a
    database made from a template, instead of running every migration again (a few tenths of a second each)."""
    folder = Path(tempfile.mkdtemp(prefix="chtest-sqlite-"))
    path = folder / "template.db"

    async def make() -> None:
        store = Store(f"sqlite:///{path}")
        await store.migrate()
        await store.close()

    asyncio.run(make())
    return path


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def make_database_url(engine: str, tmp_path: Path) -> Iterator[str]:
    if engine == "sqlite":
        copy = tmp_path / "channelhub.db"
        shutil.copyfile(_sqlite_template(), copy)
        yield f"sqlite:///{copy}"
        return
    template = _pg_template()
    import asyncpg

    name = f"chtest_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(create())
    try:
        yield _pg_url(name)
    finally:
        asyncio.run(drop())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _sqlite_template.cache_info().currsize:
        shutil.rmtree(_sqlite_template().parent, ignore_errors=True)
    template = _PG_STATE.get("template")
    if not template:
        return
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        await conn.close()

    asyncio.run(drop())


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on each engine, already migrated (a copy of a migrated template on both)."""
    yield from make_database_url(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'channelhub.db'}"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store(database_url)
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[Store]:
    store = Store(sqlite_url)
    await store.migrate()
    yield store
    await store.close()


BASE_CONFIG = """
[server]
public_url = "http://127.0.0.1:8080"

[[statuses]]
id = "resolved"
name = "Resolved"

[[statuses]]
id = "spam"
name = "Spam"

[[queues]]
id = "support"
name = "Support"
number = 100
offer_timeout = 30
statuses = ["resolved", "spam"]

[[queues]]
id = "sales"
name = "Sales"
number = 200
offer_timeout = 20
"""


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """``make_settings(extra_toml="...", env={...}, database_url=...)`` -> validated Settings."""

    def make(extra_toml: str = "", env: dict[str, str] | None = None, database_url: str | None = None) -> Settings:
        path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.toml"
        path.write_text(BASE_CONFIG + extra_toml, encoding="utf-8")
        environ = dict(env or {})
        if database_url:
            environ["CHANNELHUB_DATABASE_URL"] = database_url
        media = extra_toml.partition("[media]")[2].partition("\n[")[0]
        names_store = re.search(r"^\s*(path|url)\s*=", media, re.MULTILINE)
        on_test_postgres = bool(database_url and "/chtest_" in database_url)
        if on_test_postgres and not names_store and not any(k.startswith("CHANNELHUB_MEDIA_") for k in environ):
            # a hub on a test's PostgreSQL database keeps its media in the test's folder (on SQLite the default,
            # beside the database file, is in it already)
            environ["CHANNELHUB_MEDIA_PATH"] = str(tmp_path / "media")
        return load_settings(path, environ)

    return make
