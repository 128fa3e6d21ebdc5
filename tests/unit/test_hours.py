"""Business hours: a weekly table in a time zone, and closed dates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.errors import ConfigError
from hub.hours import is_open, next_opening, parse_hours

PRAGUE = parse_hours(
    {
        "time_zone": "Europe/Prague",
        "mon": ["09:00-12:00", "13:00-17:00"],
        "tue": "09:00-17:00",
        "wed": "09:00-17:00",
        "thu": "09:00-17:00",
        "fri": "09:00-15:00",
        "closed": ["2026-12-24"],
    },
    "queues[0].hours",
)


@pytest.mark.parametrize(
    ("utc", "open_", "opening"),
    [
        ("2026-03-02T08:30:00", True, "2026-03-02T08:30:00+00:00"),  # Monday 09:30 in Prague (UTC+1)
        ("2026-03-02T11:30:00", False, "2026-03-02T12:00:00+00:00"),  # the lunch break
        ("2026-03-06T14:00:00", False, "2026-03-09T08:00:00+00:00"),  # Friday 15:00: closed until Monday
        ("2026-12-24T10:00:00", False, "2026-12-25T08:00:00+00:00"),  # a closed Thursday
        ("2026-07-01T06:30:00", False, "2026-07-01T07:00:00+00:00"),  # summer time (UTC+2)
    ],
)
def test_open_and_the_next_opening(utc: str, open_: bool, opening: str) -> None:
    now = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert is_open(PRAGUE, now) is open_
    found = next_opening(PRAGUE, now)
    assert found is not None
    assert found.astimezone(UTC).isoformat() == opening


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"mon": "09:00-17:00"}, "queues[0].hours.time_zone"),
        ({"time_zone": "Mars/Olympus", "mon": "09:00-17:00"}, "queues[0].hours.time_zone"),
        ({"time_zone": "UTC", "mon": "9-5"}, "queues[0].hours.mon"),
        ({"time_zone": "UTC", "mon": "17:00-09:00"}, "queues[0].hours.mon"),
        ({"time_zone": "UTC", "mon": "09:00-17:00", "closed": ["someday"]}, "queues[0].hours.closed"),
        ({"time_zone": "UTC", "monday": "09:00-17:00"}, "queues[0].hours.monday"),
        ({"time_zone": "UTC"}, "queues[0].hours"),
    ],
)
def test_mistakes_name_their_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_hours(raw, "queues[0].hours")
    assert caught.value.key == key
