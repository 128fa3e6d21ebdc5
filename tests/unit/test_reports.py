"""Report rules on timelines written out by hand: contacts, their queue, the first answer, percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.errors import ConfigError
from hub.reports import Bucket, SlaTargets, Timeline, TimelineEvent, bucket_start, contacts_of, figures_by, percentile
from hub.settings import Settings

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
