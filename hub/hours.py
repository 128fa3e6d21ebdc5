"""A queue's business hours (``[queues.hours]``): a weekly table in a time zone, and dates that are closed.

Pure (stdlib only): ``parse_hours`` validates the configuration, ``is_open`` and ``next_opening`` answer for
an instant, ``closed_queues`` for every configured queue at once. Outside hours a queue's bot still answers
first, and what it hands over is told when the queue opens again (hub/bots/runner.py); a queue without a bot
answers with its message or template once per conversation (hub/out_of_hours.py). The router offers nothing
of a closed queue (hub/router.py): its conversations wait for the opening. The supervisor overview shows
whether each queue is open.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.errors import ConfigError
from hub.time_zones import named_zone

__all__ = ["DAYS", "BusinessHours", "closed_queues", "is_open", "next_opening", "opening_text", "parse_hours"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_DEFAULT_MESSAGE = "We are closed now. We will answer when we open again ({opening})."


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessHours:
    """``week``: per weekday (0 = Monday) the open spans, local time; ``closed``: whole days closed."""

    time_zone: str
    week: tuple[tuple[tuple[time, time], ...], ...]
    closed: frozenset[date] = frozenset()
    message: str = _DEFAULT_MESSAGE  # said outside hours; ``{opening}`` is the next opening
    template: str | None = None  # or a message template, with ``opening`` among its variables

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def _span(value: Any, where: str) -> tuple[time, time]:
    found = _SPAN.match(value) if isinstance(value, str) else None
    if found is None:
        raise ConfigError(where, f"{value!r} is not a span like 09:00-17:00")
    start = time(int(found[1]), int(found[2]))
    end = time.max if found[3] == "24" else time(int(found[3]), int(found[4]))
    if found[3] == "24" and found[4] != "00":
        raise ConfigError(where, f"{value!r} ends after midnight")
    if end <= start:
        raise ConfigError(where, f"{value!r} ends before it starts")
    return start, end


def parse_hours(raw: Any, where: str) -> BusinessHours:
    """``time_zone`` (IANA name), ``mon`` .. ``sun`` (a span "09:00-17:00" or a list of them; a day left
    out is closed), ``closed`` (ISO dates), ``message`` or ``template`` (what is said outside hours)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a table")
    for key in raw:
        if key not in {*DAYS, "time_zone", "closed", "message", "template"}:
            raise ConfigError(f"{where}.{key}", "unknown key (days are mon, tue, wed, thu, fri, sat, sun)")
    zone = raw.get("time_zone")
    if not isinstance(zone, str) or not zone:
        raise ConfigError(f"{where}.time_zone", "is required (an IANA name such as Europe/Prague)")
    try:
        named_zone(zone)
    except ValueError:
        raise ConfigError(f"{where}.time_zone", f"{zone!r} is not a known time zone") from None
    week = []
    for day in DAYS:
        value = raw.get(day, [])
        spans = [value] if isinstance(value, str) else value
        if not isinstance(spans, list):
            raise ConfigError(f"{where}.{day}", "must be a span or a list of spans")
        week.append(tuple(sorted(_span(s, f"{where}.{day}") for s in spans)))
    closed = raw.get("closed", [])
    if not isinstance(closed, list):
        raise ConfigError(f"{where}.closed", "must be a list of dates")
    days: set[date] = set()
    for value in closed:
        try:
            days.add(value if isinstance(value, date) else date.fromisoformat(str(value)))
        except ValueError:
            raise ConfigError(f"{where}.closed", f"{value!r} is not a date (YYYY-MM-DD)") from None
    message, template = raw.get("message", _DEFAULT_MESSAGE), raw.get("template")
    if not isinstance(message, str) or not message.strip():
        raise ConfigError(f"{where}.message", "must be a non-empty string")
    if template is not None and (not isinstance(template, str) or not template.strip()):
        raise ConfigError(f"{where}.template", "must be a template name")
    if not any(week):
        raise ConfigError(where, "the queue is never open: give at least one day's hours")
    return BusinessHours(time_zone=zone, week=tuple(week), closed=frozenset(days), message=message, template=template)


def is_open(hours: BusinessHours, now: datetime) -> bool:
    """Whether ``now`` (aware) falls in an open span of its local day, on a day that is not closed."""
    local = now.astimezone(hours.zone)
    if local.date() in hours.closed:
        return False
    moment = local.time().replace(tzinfo=None)
    return any(
        start <= moment < end or (end == time.max and moment >= start) for start, end in hours.week[local.weekday()]
    )


def next_opening(hours: BusinessHours, now: datetime) -> datetime | None:
    """When the queue opens next (``now`` itself when it is open), within the coming year; None: never."""
    if is_open(hours, now):
        return now
    zone = hours.zone
    local = now.astimezone(zone)
    for offset in range(366):
        day = local.date() + timedelta(days=offset)
        if day in hours.closed:
            continue
        for start, _ in hours.week[day.weekday()]:
            opening = datetime.combine(day, start, tzinfo=zone)
            if opening > now:
                return opening
    return None


def closed_queues(queue_hours: Mapping[str, BusinessHours], now: datetime) -> frozenset[str]:
    """The queues (by id) whose business hours do not include ``now``; a queue without hours is always open."""
    return frozenset(queue_id for queue_id, hours in queue_hours.items() if not is_open(hours, now))


def opening_text(hours: BusinessHours, now: datetime) -> str:
    """The next opening as the customer reads it, local to the queue ("Mon 02 Mar 12:00"), or "later"."""
    opening = next_opening(hours, now)
    return opening.astimezone(hours.zone).strftime("%a %d %b %H:%M") if opening is not None else "later"
