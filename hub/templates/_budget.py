"""The per-render budget: steps, characters and wall time, counted by the sandbox, its guards and its
filters, so a hostile or careless template fails fast instead of hanging the server."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUDGET",
    "MAX_OUTPUT_CHARS",
    "MAX_STEPS",
    "RENDER_SECONDS",
    "Budget",
    "LimitExceeded",
    "check_argument",
    "check_size",
    "sized_text",
    "tick",
]

MAX_OUTPUT_CHARS = 64 * 1024  # any intermediate string or the whole output, before the channel limit
MAX_STEPS = 200_000  # loop iterations + calls + buffered outputs in one render
RENDER_SECONDS = 1.0


class LimitExceeded(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Budget:
    deadline: float
    steps: int = 0
    buffered: int = 0


BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


def tick() -> Budget:
    budget = BUDGET.get()
    if budget is None:
        raise LimitExceeded("render_timeout", "templates render only through hub.templates.render")
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise LimitExceeded("render_timeout", f"the template did more than {MAX_STEPS} steps")
    if budget.steps % 64 == 0 and time.monotonic() > budget.deadline:
        raise LimitExceeded("render_timeout", f"the template took longer than {RENDER_SECONDS:g}s")
    return budget


def check_size(value: Any) -> None:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_OUTPUT_CHARS:
        raise LimitExceeded("too_long", f"a value grew past {MAX_OUTPUT_CHARS} characters")


def check_argument(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT_CHARS:
        raise LimitExceeded("too_long", f"argument {value} is larger than {MAX_OUTPUT_CHARS}")
    check_size(value)


def _text_size(value: Any, limit: int) -> int:
    """About how long ``str(value)`` would be, counted without building it; stops once past ``limit``.

    A list of 60,000 references to one 60,000-character string is small, but its text is 3.6 GB."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 24  # numbers (their size is capped), None, dates
    return total


def sized_text(value: Any) -> str:
    """``str(value)``, refused before it is built when it would pass the size limit."""
    if type(value) is str:
        return value
    container = isinstance(value, (list, tuple, dict, set, frozenset))
    if container and _text_size(value, MAX_OUTPUT_CHARS) > MAX_OUTPUT_CHARS:
        raise LimitExceeded("too_long", f"a value's text would exceed {MAX_OUTPUT_CHARS} characters")
    text = str(value)
    check_size(text)
    return text
