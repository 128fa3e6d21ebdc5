"""Provider timestamps read defensively: a plausible instant, or None.

Providers send epoch numbers in seconds (WhatsApp, as strings), in milliseconds
(Messenger, Viber), or, from some senders, in seconds where milliseconds are
documented. A value that is not a number, not finite, absurdly large or outside
the years a provider could have sent it is not an instant the hub may trust: the
window rules start at a customer's ``sent_at``, so a year-3000 timestamp would
hold a window open for ever. Callers fall back to another clock (``entry.time``,
then the time the delivery reached us) and say so; they never crash on one.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = ["EARLIEST", "FUTURE_SLACK", "plausible_time", "utc_now"]

#: nothing a provider sends us today happened before this
EARLIEST = datetime(2009, 1, 1, tzinfo=UTC)
#: clocks drift; a provider's clock this far ahead of ours is still believed
FUTURE_SLACK = timedelta(days=1)
#: below this an epoch number is seconds, above it milliseconds (1e11 s is the year 5138, 1e11 ms is 1973)
_SECONDS_BELOW = 100_000_000_000
_MAX_DIGITS = 20  # longer than any epoch in milliseconds for thousands of years


def utc_now() -> datetime:
    return datetime.now(UTC)


def plausible_time(
    value: Any, *, unit: Literal["s", "ms", "auto"], received_at: datetime | None = None
) -> datetime | None:
    """``value`` as an aware UTC instant, or None when it cannot be one the provider meant.

    ``unit="auto"`` reads the value as seconds or milliseconds by its magnitude. Accepts
    ints, finite floats and strings of digits (with an optional fraction); refuses
    booleans, NaN, infinities, negative numbers and anything before ``EARLIEST`` or more
    than ``FUTURE_SLACK`` after ``received_at`` (now, when not given).
    """
    number = _number(value)
    if number is None or number < 0:
        return None
    if unit == "auto":
        unit = "s" if number < _SECONDS_BELOW else "ms"
    seconds = number / 1000 if unit == "ms" else number
    try:
        when = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    latest = (received_at or utc_now()) + FUTURE_SLACK
    return when if EARLIEST <= when <= latest else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if value.bit_length() <= 64 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        whole, _, fraction = text.partition(".")
        if not _ascii_digits(whole) or len(whole) > _MAX_DIGITS or (fraction and not _ascii_digits(fraction)):
            return None
        return float(text)
    return None


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
