"""Round trips PostgreSQL is spared (ADR 0052): a brief read sends its statements and nothing else, a read that
is not brief is still one transaction, and the pooled connection a brief read used is an ordinary one again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from hub.store import Store
from tests.conftest import make_database_url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    yield from make_database_url("postgres", tmp_path)


@pytest.fixture
async def postgres_store(postgres_url: str) -> AsyncIterator[Store]:
    store = Store(postgres_url, pool_size=1)  # one connection: every read below uses the same one
    yield store
    await store.close()


class Sent:
    """What asyncpg sent the server as plain queries (its query logger): transaction control is, the statements
    SQLAlchemy prepares are not."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, record: Any) -> None:
        self.queries.append(" ".join(record.query.split()).upper())


async def listen(connection: Any, sent: Sent) -> Any:
    driver = (await connection.get_raw_connection()).driver_connection
    driver.add_query_logger(sent)
    return driver


async def test_a_brief_read_sends_its_statements_and_no_transaction(postgres_store: Store) -> None:
    sent = Sent()
    async with postgres_store.read(brief=True) as connection:
        driver = await listen(connection, sent)
        assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
        assert (await connection.execute(text("SELECT 2"))).scalar_one() == 2
    driver.remove_query_logger(sent)
    assert sent.queries == []  # no BEGIN, no ROLLBACK; the same logger hears both for a read that is not brief


async def test_a_read_that_is_not_brief_is_still_one_transaction(postgres_store: Store) -> None:
    async with postgres_store.read(brief=True) as connection:  # the pool's one connection, used briefly first
        await connection.execute(text("SELECT 1"))
    sent = Sent()
    async with postgres_store.read() as connection:
        driver = await listen(connection, sent)
        # transaction-local settings (as a report sets them) hold for the rest of the transaction
        await connection.execute(text("SELECT set_config('jit', 'off', true)"))
        assert (await connection.execute(text("SHOW jit"))).scalar_one() == "off"
        first = (await connection.execute(text("SELECT now()"))).scalar_one()
        later = (await connection.execute(text("SELECT now() FROM pg_sleep(0.01)"))).scalar_one()
        assert later == first  # one transaction's clock
    driver.remove_query_logger(sent)
    assert sent.queries[0].startswith("BEGIN")
    assert sent.queries[-1].startswith("ROLLBACK")


async def test_a_write_after_a_brief_read_still_rolls_back_as_a_whole(postgres_store: Store) -> None:
    async with postgres_store.write() as connection:
        await connection.execute(text("CREATE TABLE scratch (id integer PRIMARY KEY)"))
    async with postgres_store.read(brief=True) as connection:
        await connection.execute(text("SELECT 1"))

    async def insert_then_fail() -> None:
        async with postgres_store.write() as connection:
            await connection.execute(text("INSERT INTO scratch VALUES (1)"))
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        await insert_then_fail()
    async with postgres_store.read(brief=True) as connection:
        assert (await connection.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 0
