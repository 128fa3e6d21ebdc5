"""PerRow: a Core statement run once per row with tuples, on both engines, as connection.execute would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select, update

from hub.store import Store
from hub.store._per_row import PerRow
from hub.store.tables import UTCDateTime, account_health

STAMP = PerRow(
    update(account_health)
    .where(account_health.c.account_id == bindparam("row_account"))
    .values(last_send_at=bindparam("row_at", type_=UTCDateTime()), last_send_error="cleared"),
    ("row_at", "row_account"),
)


async def test_each_row_gets_its_values_the_constants_and_the_columns_processing(store: Store) -> None:
    async with store.write() as connection:
        await connection.execute(
            insert(account_health), [{"account_id": a, "last_send_error": "old"} for a in ("a", "b", "c")]
        )
    first = datetime(2026, 11, 30, 2, 0, 0, 123456, tzinfo=UTC)
    elsewhere = datetime(2026, 11, 30, 4, 0, tzinfo=timezone(timedelta(hours=1)))
    async with store.write() as connection:
        await STAMP.run(connection, [(first, "a"), (elsewhere, "c")])
        await STAMP.run(connection, [])  # nothing to do: no statement
    async with store.read() as connection:
        rows = (
            await connection.execute(
                select(
                    account_health.c.account_id, account_health.c.last_send_at, account_health.c.last_send_error
                ).order_by(account_health.c.account_id)
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("a", first, "cleared"),
        ("b", None, "old"),
        ("c", datetime(2026, 11, 30, 3, 0, tzinfo=UTC), "cleared"),
    ]


async def test_a_failed_batch_leaves_nothing_behind(store: Store) -> None:
    async with store.write() as connection:
        await connection.execute(insert(account_health).values(account_id="a", last_send_error="old"))
    with pytest.raises(ValueError, match="naive datetime"):
        async with store.write() as connection:
            await STAMP.run(connection, [(datetime(2026, 11, 30, tzinfo=UTC), "a"), (datetime(2026, 11, 30), "a")])
    async with store.read() as connection:
        error = (await connection.execute(select(account_health.c.last_send_error))).scalar_one()
    assert error == "old"


def test_names_the_statement_does_not_bind_are_refused() -> None:
    from sqlalchemy.dialects import sqlite

    wrong = PerRow(update(account_health).values(last_send_error=bindparam("row_error")), ("row_typo",))
    with pytest.raises(ValueError, match="row_typo"):
        wrong._for(sqlite.dialect())
