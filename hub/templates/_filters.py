"""The filters a template may name: a short list of Jinja's, and ours (date, datetime, time, phone, and
replace and join that size their output first), each call counted against the render budget."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import filters as jinja_filters
from jinja2 import pass_context
from jinja2.runtime import Context

from hub.templates._budget import MAX_OUTPUT_CHARS, LimitExceeded, check_argument, check_size, sized_text, tick
from hub.time_zones import zone_or_none

__all__ = ["join_filter", "replace_filter", "template_filters"]


def _zone(context: Context) -> ZoneInfo | None:
    contact = context.get("contact")
    return zone_or_none(contact.get("time_zone") if isinstance(contact, Mapping) else None)


def _as_datetime(value: Any) -> datetime | date:
    if isinstance(value, (datetime, date)):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date or date-time") from None
    raise ValueError(f"{type(value).__name__} is not a date")


def _format_when(context: Context, value: Any, fmt: str) -> str:
    when = _as_datetime(value)
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        zone = _zone(context)
        if zone is not None:
            when = when.astimezone(zone)
    if len(fmt) > 100:
        raise ValueError("date format is too long")
    return when.strftime(fmt)


@pass_context
def _date_filter(context: Context, value: Any, fmt: str = "%d %b %Y") -> str:
    """``{{ when | date }}``: the calendar day in the contact's time zone (UTC when unknown)."""
    return _format_when(context, value, fmt)


@pass_context
def _datetime_filter(context: Context, value: Any, fmt: str = "%d %b %Y %H:%M") -> str:
    """``{{ when | datetime }}``: date and time in the contact's time zone (UTC when unknown)."""
    return _format_when(context, value, fmt)


@pass_context
def _time_filter(context: Context, value: Any, fmt: str = "%H:%M") -> str:
    return _format_when(context, value, fmt)


def _phone_filter(value: Any) -> str:
    """``{{ contact.phone | phone }}``: E.164 made readable (+1 415 555 0123; others in groups)."""
    text = str(value).strip()
    for prefix in ("whatsapp:", "tel:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return text
    if not text.startswith("+") and not text.startswith("00"):
        return text  # a national number: we cannot know how it groups
    if text.startswith("00"):
        digits = digits[2:]
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 {digits[1:4]} {digits[4:7]} {digits[7:]}"
    size = 1 if digits[0] in "17" else 2 if digits[:2] in _TWO_DIGIT_COUNTRY_CODES else 3
    head, rest = digits[:size], digits[size:]
    groups = [rest[i : i + 3] for i in range(0, len(rest), 3)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        last = groups.pop()
        groups[-1] += last
    return " ".join(["+" + head, *groups])


# ITU-T E.164 country codes of two digits (the others have one: 1, 7; or three)
_TWO_DIGIT_COUNTRY_CODES = frozenset(
    [
        "20",
        "27",
        "30",
        "31",
        "32",
        "33",
        "34",
        "36",
        "39",
        "40",
        "41",
        "43",
        "44",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "84",
        "86",
        "90",
        "91",
        "92",
        "93",
        "94",
        "95",
        "98",
    ]
)


def replace_filter(value: Any, old: str, new: str, count: int | None = None) -> str:
    text = sized_text(value)
    old, new = sized_text(old), sized_text(new)
    hits = (len(text) + 1) if old == "" else text.count(old)
    if count is not None:
        hits = min(hits, max(int(count), 0))
    if len(text) + hits * len(new) > MAX_OUTPUT_CHARS:
        raise LimitExceeded("too_long", f"replace would exceed {MAX_OUTPUT_CHARS} characters")
    return text.replace(old, new) if count is None else text.replace(old, new, int(count))


def join_filter(value: Any, d: str = "") -> str:
    """``join`` that counts the characters before building the string."""
    separator = str(d)
    parts: list[str] = []
    size = 0
    for item in value:
        text = sized_text(item)
        size += len(text) + len(separator)
        if size > MAX_OUTPUT_CHARS + len(separator):
            raise LimitExceeded("too_long", f"join would exceed {MAX_OUTPUT_CHARS} characters")
        parts.append(text)
    return separator.join(parts)


_FILTER_NAMES = (
    "abs",
    "capitalize",
    "center",
    "count",
    "d",
    "default",
    "first",
    "float",
    "int",
    "last",
    "length",
    "list",
    "lower",
    "max",
    "min",
    "reverse",
    "round",
    "sort",
    "string",
    "title",
    "trim",
    "truncate",
    "unique",
    "upper",
    "wordcount",
)


# Filters that turn their value into text first: a list's text is sized before it is built.
_TEXT_FILTERS = frozenset(
    {"capitalize", "center", "lower", "string", "title", "trim", "truncate", "upper", "wordcount"}
)


def _guarded_filter(func: Callable[..., Any], *, text: bool = False) -> Callable[..., Any]:
    """Count the call and keep arguments and result within the size limits."""

    value_at = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # after the environment or context

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        if text and len(args) > value_at:
            sized_text(args[value_at])
        for arg in (*args[1:], *kwargs.values()):
            check_argument(arg)
        result = func(*args, **kwargs)
        check_size(result)
        return result

    return guarded


def template_filters() -> dict[str, Callable[..., Any]]:
    """Every filter a template may name, each guarded."""
    builtin = jinja_filters.FILTERS
    found = {name: _guarded_filter(builtin[name], text=name in _TEXT_FILTERS) for name in _FILTER_NAMES}
    found["replace"] = _guarded_filter(replace_filter)
    found["join"] = _guarded_filter(join_filter)
    found["date"] = _guarded_filter(_date_filter)
    found["datetime"] = _guarded_filter(_datetime_filter)
    found["time"] = _guarded_filter(_time_filter)
    found["phone"] = _guarded_filter(_phone_filter)
    return found
