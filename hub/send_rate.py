"""The per-account send rate as one token bucket shared by every hub process (the bucket lives in the database).

Each process spends tokens it leased from the shared bucket (``hub.store.send_rate.lease_tokens``), a quarter
second's worth at a time, and asks for more when it runs out; when the shared bucket is empty it sleeps until
the next token accrues. Leased tokens a process never spends (it stopped, or died) are lost, never sent twice:
together the processes send at most ``rate`` per second on average, in bursts of at most ``capacity`` plus one
lease per process. Real wall-clock time, as providers count it (not the hub's clock, which tests move by hand).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime

from hub.store import Store
from hub.store.send_rate import lease_tokens

__all__ = ["SharedTokenBucket"]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class SharedTokenBucket:
    """``rate`` sends per second on average for one account across every process, bursts up to ``capacity``."""

    def __init__(
        self,
        store: Store,
        account_id: str,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], datetime] = _wall_clock,
    ) -> None:
        self.store = store
        self.account_id = account_id
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self.lease = max(1, min(math.floor(self.capacity), math.ceil(rate / 4)))
        self._clock = clock
        self._tokens = 0
        self._lock = asyncio.Lock()

    def try_acquire(self) -> bool:
        """Spend a leased token now if one is left and nobody is waiting (no await: the common case)."""
        if self._lock.locked() or self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def acquire(self) -> None:
        """Spend a token, leasing more from the shared bucket (and waiting for them) when none is left."""
        async with self._lock:
            while self._tokens < 1:
                granted, wait = await lease_tokens(
                    self.store,
                    self.account_id,
                    want=self.lease,
                    rate=self.rate,
                    capacity=self.capacity,
                    now=self._clock(),
                )
                self._tokens += granted
                if not granted:
                    await asyncio.sleep(max(wait, 0.001))
            self._tokens -= 1
