"""Business hours: a weekly table in a time zone, and closed dates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.errors import ConfigError
from hub.hours import DAYS, closed_queues, is_open, next_opening, opening_text, parse_hours
from hub.usecases.closed_queue import closed_answer, closed_now
from hub.usecases.outbound import Send

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
        ({"time_zone": "America", "mon": "09:00-17:00"}, "queues[0].hours.time_zone"),
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


def test_closed_queues_are_those_outside_their_hours_now() -> None:
    always = parse_hours({"time_zone": "UTC", **dict.fromkeys(DAYS, "00:00-24:00")}, "queues[1].hours")
    hours = {"prague": PRAGUE, "always": always}
    assert closed_queues(hours, datetime(2026, 3, 2, 8, 30, tzinfo=UTC)) == frozenset()
    assert closed_queues(hours, datetime(2026, 3, 2, 11, 30, tzinfo=UTC)) == {"prague"}
    assert closed_queues(hours, datetime(2026, 12, 24, 10, 0, tzinfo=UTC)) == {"prague"}  # a closed date
    assert closed_queues({}, datetime(2026, 3, 2, 11, 30, tzinfo=UTC)) == frozenset()


def test_the_opening_is_told_in_the_queues_time_zone() -> None:
    assert opening_text(PRAGUE, datetime(2026, 3, 6, 14, 0, tzinfo=UTC)) == "Mon 09 Mar 09:00"
    assert opening_text(PRAGUE, datetime(2026, 3, 2, 8, 30, tzinfo=UTC)) == "Mon 02 Mar 09:30"  # open: now


def test_a_closed_queue_answers_with_its_template_or_its_message() -> None:
    now = datetime(2026, 3, 2, 11, 30, tzinfo=UTC)
    message = parse_hours({"time_zone": "UTC", "mon": "12:00-17:00", "message": "Back at {opening}."}, "q")
    assert closed_answer(message, now) == Send(text="Back at Mon 02 Mar 12:00.")
    template = parse_hours({"time_zone": "UTC", "mon": "12:00-17:00", "template": "out_of_hours"}, "q")
    assert closed_answer(template, now) == Send(template="out_of_hours", variables={"opening": "Mon 02 Mar 12:00"})


def test_only_a_closed_queue_with_hours_has_an_answer_now() -> None:
    """What the out-of-hours answer and a bot's hand-off both ask: the same words, or nothing while open."""
    hours = parse_hours({"time_zone": "UTC", "mon": "12:00-17:00", "message": "Back at {opening}."}, "q")
    closed, open_ = datetime(2026, 3, 2, 11, 30, tzinfo=UTC), datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    assert closed_now(hours, closed) == closed_answer(hours, closed) == Send(text="Back at Mon 02 Mar 12:00.")
    assert closed_now(hours, open_) is None
    assert closed_now(None, closed) is None
