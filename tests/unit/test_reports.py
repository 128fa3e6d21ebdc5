"""Report rules on timelines written out by hand: contacts, their queue, the first answer, percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.errors import ConfigError
from hub.reports import (
    Bucket,
    SlaTargets,
    Timeline,
    TimelineEvent,
    bucket_start,
    contacts_of,
    figures_by,
    percentile,
)
from hub.settings import Settings
from hub.time_zones import named_zone

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(kind: str, seconds: float, agent: int | None = None, **data: Any) -> TimelineEvent:
    return TimelineEvent(kind=kind, agent_id=agent, at=at(seconds), data=data)


def test_a_reopened_conversation_is_two_contacts_each_with_its_own_answer() -> None:
    timeline = Timeline(
        conversation_id=1,
        channel="viber",
        queue_id="sales",
        events=[
            event("opened", 0),
            event("offered", 5, 7),
            event("accepted", 8, 7),
            event("closed", 60, 7, status="resolved"),
            event("reopened", 1000),
            event("taken", 1030, 8),
            event("transferred", 1100, 8, from_queue="support", to_queue="sales"),
        ],
        # the first contact's agent answered only after the second began: it is the second's answer
        first_responses={at(0): at(1040), at(1000): at(1040)},
    )
    first, second = contacts_of(timeline, T0, at(3600))
    assert (first.queue_id, first.handled_by, first.first_response_at, first.status) == ("support", 7, None, "resolved")
    assert (second.queue_id, second.handled_by, second.first_response_at) == ("support", 8, at(1040))
    assert second.transferred_by == (8,)
    assert second.first_offer_at is None
    assert [c.started_at for c in contacts_of(timeline, at(500), at(3600))] == [at(1000)]


def test_a_conversation_an_agent_opened_to_write_first_is_no_contact() -> None:
    timeline = Timeline(
        conversation_id=2,
        channel="whatsapp",
        queue_id="support",
        events=[event("opened", 0, 7, outbound=True), event("closed", 30, 7, status="resolved")],
        first_responses={at(0): at(0)},
    )
    assert contacts_of(timeline, T0, at(3600)) == []


def test_service_level_is_judged_only_once_its_time_has_run_out() -> None:
    waiting = Timeline(
        conversation_id=3, channel="viber", queue_id="q", events=[event("opened", 0)], first_responses={}
    )
    contacts = contacts_of(waiting, T0, at(3600))
    sla = SlaTargets(accept_seconds=60, accept_share=0.8, first_response_seconds=300)
    early = figures_by(contacts, lambda c: (c.queue_id,), Bucket.HOUR, lambda q: sla, at(30))
    assert early[("q", T0)].as_json()["sla_met_share"] is None
    late = figures_by(contacts, lambda c: (c.queue_id,), Bucket.HOUR, lambda q: sla, at(61))
    assert late[("q", T0)].as_json()["sla_met_share"] == 0.0
    assert late[("q", T0)].as_json()["sla_first_response_met_share"] is None


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([30.0], 0.9) == 30.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([float(v) for v in range(1, 11)], 0.9) == 9.0


def test_buckets_start_at_the_utc_hour_and_day() -> None:
    moment = datetime(2026, 3, 2, 9, 59, 59, tzinfo=UTC)
    assert bucket_start(moment, Bucket.HOUR) == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert bucket_start(moment, Bucket.DAY) == datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("sla_accept_share = 1.5", "queues[0].sla_accept_share"),
        ("sla_accept_seconds = 0", "queues[0].sla_accept_seconds"),
        ('sla_first_response_seconds = "soon"', "queues[0].sla_first_response_seconds"),
    ],
)
def test_wrong_service_level_targets_stop_the_start_by_name(make_settings: Any, line: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_settings(f'[[queues]]\nid = "care"\n{line}\n')
    assert raised.value.key.endswith(key.split(".", 1)[1])


def test_service_level_targets_are_read_from_the_queue(make_settings: Any) -> None:
    settings: Settings = make_settings(
        '[[queues]]\nid = "care"\nsla_accept_seconds = 60\nsla_accept_share = 0.8\nsla_first_response_seconds = 300\n'
    )
    care = settings.queue("care")
    assert (care.sla_accept_seconds, care.sla_accept_share, care.sla_first_response_seconds) == (60, 0.8, 300)
    assert settings.queue("support").sla_accept_seconds is None


def test_buckets_are_the_hours_and_days_of_a_time_zone_across_a_change_of_clocks() -> None:
    prague = named_zone("Europe/Prague")
    # 23:30 UTC on 2 March is half past midnight on the 3rd in Prague (UTC+1)
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    assert bucket_start(late, Bucket.DAY, prague) == datetime(2026, 3, 2, 23, tzinfo=UTC)
    assert bucket_start(late, Bucket.DAY, prague).astimezone(prague).isoformat() == "2026-03-03T00:00:00+01:00"
    # the clocks go forward on 29 March: that day starts at +01:00 and is 23 hours long
    spring = bucket_start(datetime(2026, 3, 29, 12, tzinfo=UTC), Bucket.DAY, prague)
    after = bucket_start(datetime(2026, 3, 30, 12, tzinfo=UTC), Bucket.DAY, prague)
    assert (spring.astimezone(prague).isoformat(), after - spring) == ("2026-03-29T00:00:00+01:00", timedelta(hours=23))
    assert after.astimezone(prague).isoformat() == "2026-03-30T00:00:00+02:00"
    # they go back on 25 October: two hours named 02:00, each its own bucket, and a day of 25 hours
    first = bucket_start(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), Bucket.HOUR, prague)
    second = bucket_start(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), Bucket.HOUR, prague)
    assert [b.astimezone(prague).isoformat() for b in (first, second)] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
    ]
    autumn = bucket_start(datetime(2026, 10, 25, 12, tzinfo=UTC), Bucket.DAY, prague)
    assert bucket_start(datetime(2026, 10, 26, 12, tzinfo=UTC), Bucket.DAY, prague) - autumn == timedelta(hours=25)
    # an hour of a zone half an hour off UTC starts at half past, UTC
    kolkata = named_zone("Asia/Kolkata")
    assert bucket_start(datetime(2026, 3, 2, 9, 10, tzinfo=UTC), Bucket.HOUR, kolkata) == datetime(
        2026, 3, 2, 8, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("name", ["Mars/Base", "Europe", "", "../etc/passwd", "x" * 300])
def test_a_name_that_is_no_time_zone_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="not a known time zone"):
        named_zone(name)


def test_the_reports_time_zone_is_read_and_checked_at_start_up(make_settings: Any) -> None:
    assert make_settings().reports.timezone == "UTC"
    assert str(make_settings('[reports]\ntimezone = "Europe/Prague"\n').reports.zone) == "Europe/Prague"
    assert make_settings(env={"CHANNELHUB_REPORTS_TIMEZONE": "America/New_York"}).reports.timezone == (
        "America/New_York"
    )
    with pytest.raises(ConfigError) as raised:
        make_settings('[reports]\ntimezone = "Mars/Base"\n')
    assert raised.value.key == "reports.timezone"
    assert "Mars/Base" in str(raised.value)
    with pytest.raises(ConfigError) as unknown:
        make_settings('[reports]\nzone = "UTC"\n')
    assert unknown.value.key == "reports.zone"


def test_a_bots_contact_reaches_people_at_its_hand_off_or_when_an_agent_takes_it_over() -> None:
    sla = SlaTargets(accept_seconds=60, accept_share=0.8)

    def figures(*events: TimelineEvent, now: float = 3000) -> dict[str, Any]:
        timeline = Timeline(conversation_id=5, channel="viber", queue_id="q", events=events, first_responses={})
        contacts = contacts_of(timeline, T0, at(3600))
        return figures_by(contacts, lambda c: (c.queue_id,), Bucket.HOUR, lambda q: sla, at(now))[("q", T0)].as_json()

    # still with the bot long past the target: not judged, nobody has kept the customer waiting
    assert figures(event("opened", 0, bot="faq"))["sla_met_share"] is None
    # an agent takes it over from the bot at 500: the customer never waited for people
    taken = figures(event("opened", 0, bot="faq"), event("taken", 500, 7))
    assert (taken["handled"], taken["wait_p50_s"], taken["sla_met_share"], taken["handed_off"]) == (1, 0, 1.0, 0)
    # a supervisor closes it while the bot has it: abandoned (no bot closed it), yet never judged
    closed = figures(event("opened", 0, bot="faq"), event("closed", 100, 9, status="spam"))
    assert (closed["abandoned"], closed["bot_resolved"], closed["sla_met_share"]) == (1, 0, None)
    # without a bot, the same wait runs from the start
    plain = figures(event("opened", 0), event("taken", 500, 7))
    assert (plain["wait_p50_s"], plain["sla_met_share"]) == (500, 0.0)
