"""How many password guesses a login name and a client address get, and how many run at once.

Every login attempt is counted before its password is checked, against two keys:
the login name (whether or not such an agent exists, so the answers tell nothing
about which logins are real) and the client address. Past ``attempts`` in one
window the key is locked: the first lockout lasts ``lockout``, each further one
in a row twice as long as the one before, up to ``max_lockout``. A locked key is
refused at once, before any hashing, with how long to wait. A successful login
clears its login name and gives its attempt back to the address (agents behind
one office address share it), so the address counts, in effect, failures.

The counters are rows in the database (hub/store/login_attempts.py), so the limit
holds across hub processes sharing one PostgreSQL database. Password checks run
argon2 with 64 MiB each in a worker thread; a per-process semaphore bounds how
many run at once, so a burst of logins costs queueing, not memory.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hub.store import Store
from hub.store.login_attempts import AttemptCounter, forget_attempt, lock_counters, prune_counters, save_counters

__all__ = ["LoginLimiter", "LoginLimits", "TooManyAttempts", "count_attempt"]

_PRUNE_EVERY = timedelta(minutes=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginLimits:
    attempts: int = 5  # per login name in one window
    address_attempts: int = 50  # per client address in one window (0: no address limit)
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=1)  # the first lockout; each further one in a row doubles
    max_lockout: timedelta = timedelta(hours=1)
    concurrent_checks: int = 2  # password checks running at once in one process


class TooManyAttempts(Exception):
    """Refused before checking the password; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many login attempts; try again in {retry_after} s")
        self.retry_after = retry_after


def count_attempt(
    counter: AttemptCounter, *, limit: int, limits: LoginLimits, now: datetime
) -> tuple[AttemptCounter, timedelta | None]:
    """One more attempt on a key: its new counter, and how long to wait when the attempt is refused.

    A locked key refuses and stays as it is. A window that has run out starts again; a key that was quiet
    for a whole window after its last lockout starts its back-off again too. The attempt past ``limit``
    locks the key."""
    if counter.locked_until is not None and now < counter.locked_until:
        return counter, counter.locked_until - now
    if counter.locked_until is not None and now >= counter.locked_until + limits.window:
        counter = replace(counter, locked_until=None, lockouts=0)
    if now - counter.window_started_at >= limits.window:
        counter = replace(counter, attempts=0, window_started_at=now)
    if counter.attempts >= limit:
        lasts = min(limits.lockout * (2 ** min(counter.lockouts, 32)), limits.max_lockout)
        locked = AttemptCounter(
            attempts=0, window_started_at=now, locked_until=now + lasts, lockouts=counter.lockouts + 1
        )
        return locked, lasts
    return replace(counter, attempts=counter.attempts + 1), None


def _seconds(wait: timedelta) -> int:
    return max(1, math.ceil(wait.total_seconds()))


class LoginLimiter:
    """One per hub process: counts attempts in the database and bounds concurrent password checks."""

    def __init__(self, limits: LoginLimits) -> None:
        self.limits = limits
        self._checks: asyncio.Semaphore | None = None
        self._pruned_at: datetime | None = None

    def _keys(self, login: str, address: str | None) -> dict[str, int]:
        keys = {f"login:{login.strip().casefold()[:180]}": self.limits.attempts}
        if address and self.limits.address_attempts > 0:
            keys[f"address:{address[:180]}"] = self.limits.address_attempts
        return keys

    async def admit(self, store: Store, login: str, address: str | None, *, now: datetime) -> None:
        """Count this attempt, or raise TooManyAttempts (nothing counted) when a key is locked or locks now."""
        keys = self._keys(login, address)
        async with store.write() as connection:
            if self._pruned_at is None or now - self._pruned_at >= _PRUNE_EVERY:
                self._pruned_at = now
                await prune_counters(
                    connection,
                    window_before=now - self.limits.window,
                    unlocked_before=now - self.limits.window,
                )
            counters = await lock_counters(connection, keys, now=now)
            counted: dict[str, AttemptCounter] = {}
            waits: list[timedelta] = []
            for key, limit in keys.items():
                counted[key], wait = count_attempt(counters[key], limit=limit, limits=self.limits, now=now)
                if wait is not None:
                    waits.append(wait)
            if waits:
                # only the keys that locked just now change; the attempt is not counted on the others
                await save_counters(
                    connection,
                    {key: c for key, c in counted.items() if c.locked_until != counters[key].locked_until},
                )
            else:
                await save_counters(connection, counted)
        if waits:  # raised once the lock is committed
            raise TooManyAttempts(_seconds(max(waits)))

    async def succeeded(self, store: Store, login: str, address: str | None) -> None:
        """The password was right: the login name starts afresh, the address gets its attempt back."""
        keys = self._keys(login, address)
        async with store.write() as connection:
            for key in sorted(keys):
                await forget_attempt(connection, key, reset=key.startswith("login:"))

    @asynccontextmanager
    async def checking(self) -> AsyncIterator[None]:
        """Hold one of the process's password-check slots while hashing."""
        if self._checks is None:
            self._checks = asyncio.Semaphore(max(1, self.limits.concurrent_checks))
        async with self._checks:
            yield
