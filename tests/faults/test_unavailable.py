"""Which store failures a webhook answers 503 (the database is away or full: a retry cures it) and which 500."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, PendingRollbackError

from hub.store import database_unavailable


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        OperationalError("INSERT", {}, Exception("database or disk is full")),
        OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")),
        OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
        InterfaceError("SELECT", {}, Exception("connection is closed")),
        PendingRollbackError("Can't reconnect until invalid transaction is rolled back"),
    ],
    ids=[
        "refused",
        "timeout",
        "disk-full",
        "sqlite-disk-full",
        "sqlite-locked",
        "connection-closed",
        "lost-mid-transaction",
    ],
)
def test_the_database_being_away_or_full_is_unavailable(exc: BaseException) -> None:
    assert database_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        IntegrityError("INSERT", {}, Exception("constraint violated")),
        OperationalError("INSERT", {}, sqlite3.OperationalError("no such table: rejected_webhooks")),
        RuntimeError("bug"),
        ValueError("bad value"),
    ],
    ids=["constraint", "sqlite-no-such-table", "bug", "value"],
)
def test_a_refused_statement_or_a_bug_is_not(exc: BaseException) -> None:
    assert not database_unavailable(exc)
