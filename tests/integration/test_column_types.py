"""The storage types: a timestamp comes back as the same UTC instant on both engines (SQLite keeps text in
SQLAlchemy's own format, which earlier rows were written in too), and empty JSON columns are SQL NULL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import StatementError

from hub.model import Attachment, Channel, ChannelAccount, InboundMessage, MessageKind
from hub.store import Store, store_group
from hub.store.tables import account_health, messages

PRAGUE_WINTER = timezone(timedelta(hours=1))


async def test_timestamps_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    written = {
        "utc": datetime(2026, 11, 30, 2, 8, 50, 369090, tzinfo=UTC),
        "offset": datetime(2026, 11, 30, 3, 8, 50, tzinfo=PRAGUE_WINTER),
        "old": datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    }
    async with store.write() as connection:
        await connection.execute(
            insert(account_health), [{"account_id": key, "last_webhook_at": value} for key, value in written.items()]
        )
    async with store.read() as connection:
        rows = dict(
            (await connection.execute(select(account_health.c.account_id, account_health.c.last_webhook_at))).all()
        )
    assert rows == written
    assert all(value.tzinfo is UTC for value in rows.values())


async def test_sqlite_keeps_sqlalchemys_text_and_reads_rows_written_before(sqlite_store: Store) -> None:
    async with sqlite_store.write() as connection:
        await connection.execute(
            insert(account_health).values(
                account_id="new", last_webhook_at=datetime(2026, 11, 30, 3, 0, tzinfo=PRAGUE_WINTER)
            )
        )
        # as SQLAlchemy's own processor wrote them, as SQL's CURRENT_TIMESTAMP would (no fraction), and with an
        # offset (the hub never writes one; read as the instant it names)
        await connection.execute(
            text(
                "INSERT INTO account_health (account_id, last_webhook_at, last_send_at, last_send_error_at) "
                "VALUES ('old', '2026-11-30 01:00:00.000000', '2026-11-30 01:00:00', '2026-11-30 02:00:00+01:00')"
            )
        )
    async with sqlite_store.read() as connection:
        stored = (
            await connection.execute(text("SELECT last_webhook_at FROM account_health WHERE account_id = 'new'"))
        ).scalar_one()
        old = (
            await connection.execute(
                select(
                    account_health.c.last_webhook_at,
                    account_health.c.last_send_at,
                    account_health.c.last_send_error_at,
                ).where(account_health.c.account_id == "old")
            )
        ).one()
        # text comparison in SQL (what every window and lease query relies on) sees the same order
        later = (
            await connection.execute(
                select(account_health.c.account_id).where(
                    account_health.c.last_webhook_at > datetime(2026, 11, 30, 1, 59, 59, 999999, tzinfo=UTC)
                )
            )
        ).scalars()
    assert stored == "2026-11-30 02:00:00.000000"
    assert tuple(old) == (datetime(2026, 11, 30, 1, 0, tzinfo=UTC),) * 3
    assert list(later) == ["new"]


async def test_a_naive_timestamp_is_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with store.write() as connection:
            await connection.execute(
                insert(account_health).values(account_id="naive", last_webhook_at=datetime(2026, 11, 30))
            )


async def test_empty_json_columns_are_sql_null(store: Store) -> None:
    account = ChannelAccount(id="fb", channel=Channel.MESSENGER, provider="graph", queue="support", api_base="")
    now = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    picture = Attachment(kind=MessageKind.IMAGE, url="https://example.com/a.png")
    deliveries = [
        [InboundMessage(channel=Channel.MESSENGER, account_id="fb", sender_id="u1", provider_message_id="m1",
                        sent_at=now, text="plain")],
        [InboundMessage(channel=Channel.MESSENGER, account_id="fb", sender_id="u1", provider_message_id="m2",
                        sent_at=now, attachments=(picture,))],
    ]  # fmt: skip
    await store_group(store, deliveries, {"fb": account}, now)
    async with store.read() as connection:
        nulls = (
            await connection.execute(
                text(
                    "SELECT provider_message_id, attachments IS NULL, location IS NULL, extra IS NULL "
                    "FROM messages ORDER BY provider_message_id"
                )
            )
        ).all()
        read_back = (
            await connection.execute(select(messages.c.attachments).order_by(messages.c.provider_message_id))
        ).scalars()
    assert [tuple(row) for row in nulls] == [("m1", True, True, True), ("m2", False, True, True)]
    assert list(read_back) == [None, [picture.to_json()]]
