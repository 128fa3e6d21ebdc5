"""The login limit's arithmetic, its bound on concurrent password checks, and its settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from hub.errors import ConfigError
from hub.login_limits import LoginLimiter, LoginLimits, count_attempt
from hub.settings import Settings
from hub.store.login_attempts import AttemptCounter

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIMITS = LoginLimits(
    attempts=3, window=timedelta(minutes=10), lockout=timedelta(seconds=30), max_lockout=timedelta(seconds=100)
)


def counter(
    attempts: int = 0, *, started: int = 0, locked_until: int | None = None, lockouts: int = 0
) -> AttemptCounter:
    return AttemptCounter(
        attempts=attempts,
        window_started_at=T0 + timedelta(seconds=started),
        locked_until=None if locked_until is None else T0 + timedelta(seconds=locked_until),
        lockouts=lockouts,
    )


@pytest.mark.parametrize(
    ("before", "at", "after", "wait"),
    [
        (counter(0), 1, counter(1), None),
        (counter(2), 1, counter(3), None),
        # the attempt past the limit locks, for the first lockout's length
        (counter(3), 5, counter(0, started=5, locked_until=35, lockouts=1), 30),
        # a locked key refuses and stays as it is
        (counter(0, locked_until=35, lockouts=1), 20, counter(0, locked_until=35, lockouts=1), 15),
        # the second lockout in a row lasts twice as long, the third is capped
        (
            counter(3, started=40, locked_until=35, lockouts=1),
            50,
            counter(0, started=50, locked_until=110, lockouts=2),
            60,
        ),
        (
            counter(3, started=40, locked_until=35, lockouts=2),
            50,
            counter(0, started=50, locked_until=150, lockouts=3),
            100,
        ),
        # a window that ran out starts again
        (counter(3), 600, counter(1, started=600), None),
        # a whole quiet window after a lockout: the back-off starts again too
        (counter(3, locked_until=35, lockouts=4), 635, counter(1, started=635), None),
    ],
)
def test_count_attempt(before: AttemptCounter, at: int, after: AttemptCounter, wait: int | None) -> None:
    now = T0 + timedelta(seconds=at)
    counted, waited = count_attempt(before, limit=3, limits=LIMITS, now=now)
    assert counted == after
    assert waited == (None if wait is None else timedelta(seconds=wait))


async def test_no_more_password_checks_run_at_once_than_allowed() -> None:
    limiter = LoginLimiter(LoginLimits(concurrent_checks=2))
    running = 0
    most = 0

    async def check() -> None:
        nonlocal running, most
        async with limiter.checking():
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(check() for _ in range(20)))
    assert most == 2


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("login_attempts = 0", "auth.login_attempts"),
        ("login_address_attempts = -1", "auth.login_address_attempts"),
        ("password_checks = 0", "auth.password_checks"),
        ("login_window_seconds = 0", "auth.login_window_seconds"),
        ("login_lockout_seconds = -5", "auth.login_lockout_seconds"),
        ("login_max_lockout_seconds = 10\nlogin_lockout_seconds = 60", "auth.login_max_lockout_seconds"),
        ("login_attempts = 'many'", "auth.login_attempts"),
    ],
)
def test_bad_login_limit_settings_name_the_key(make_settings: Callable[..., Settings], line: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_settings(f"\n[auth]\n{line}\n")
    assert key in str(raised.value)


def test_login_limit_settings_are_read_from_the_auth_table(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("\n[auth]\nlogin_attempts = 7\nlogin_window_seconds = 60\npassword_checks = 3\n")
    assert settings.auth.login_attempts == 7
    assert settings.auth.login_window_seconds == 60.0
    assert settings.auth.password_checks == 3
    assert make_settings("").auth.login_address_attempts == 50
