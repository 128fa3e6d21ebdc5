"""Small value checks shared by the adapters' parse code (no provider knowledge here)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["coordinate"]


def coordinate(value: Any, limit: float) -> float:
    """A latitude (``limit`` 90) or longitude (180) as a finite float; ValueError otherwise.

    NaN or 1e308 would be stored as JSON that PostgreSQL refuses or a map cannot show.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a coordinate")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{value!r} is not a coordinate") from None
    if not math.isfinite(number) or abs(number) > limit:
        raise ValueError(f"{value!r} is not a coordinate")
    return number
