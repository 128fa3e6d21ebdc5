"""Which store failures a webhook answers 503 (the database is away or full: a retry cures it) and which 500."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, PendingRollbackError

from hub.store import database_unavailable


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        OperationalError("INSERT", {}, Exception("database or disk is full")),
        InterfaceError("SELECT", {}, Exception("connection is closed")),
        PendingRollbackError("Can't reconnect until invalid transaction is rolled back"),
    ],
    ids=["refused", "timeout", "disk-full", "connection-closed", "lost-mid-transaction"],
)
def test_the_database_being_away_or_full_is_unavailable(exc: BaseException) -> None:
    assert database_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [IntegrityError("INSERT", {}, Exception("constraint violated")), RuntimeError("bug"), ValueError("bad value")],
    ids=["constraint", "bug", "value"],
)
def test_a_refused_statement_or_a_bug_is_not(exc: BaseException) -> None:
    assert not database_unavailable(exc)
