"""Reports against a timeline whose times are known: three contacts played through the test clock.

The expected figures below are worked out by hand from the script in ``_play`` (times in seconds after
09:00 UTC on 2 March 2026), not read back from the code:

* contact A (care): written at 0; alice is offered it at 10 and rejects at 15; bob is offered it at 15,
  accepts at 25, answers at 85, closes it "resolved" at 385. First offer 10 s, wait 25 s, first response
  85 s, handling 360 s, one missed offer; accepted within the 60 s target, answered within 300 s.
* contact B (care): written at 100, never offered (nobody ready), closed "spam" by the supervisor at 200:
  abandoned, and so misses both targets.
* contact C (care, the 10:00 hour): written at 3600 and offered to bob at once, accepted at 3700,
  answered at 3750, transferred by bob to sales at 3800 (so it still counts for care, where it started).
  First offer 0 s, wait 100 s (target missed), first response 150 s (met).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.api.conftest import START, AgentHandle, Api, MakeApi

CARE = """
[[queues]]
id = "care"
name = "Care"
number = 300
offer_timeout = 300
statuses = ["resolved", "spam"]
sla_accept_seconds = 60
sla_accept_share = 0.8
sla_first_response_seconds = 300

[[accounts]]
id = "wa-care"
channel = "whatsapp"
provider = "twilio"
queue = "care"
api_base = "http://127.0.0.1:9"
account_sid = "ACcare"
auth_token = "care-auth-token"
from_number = "+15550002222"
"""

HOUR = "from=2026-03-02T09:00:00Z&to=2026-03-02T11:00:00Z&bucket=hour"
DAY = "from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z&bucket=day"


async def _at(api: Api, seconds: float) -> None:
    api.clock.advance(seconds - (api.clock() - START).total_seconds())


async def _presence(agent: AgentHandle, state: str) -> None:
    await agent.json("PUT", "/api/v1/me/presence", {"state": state})


async def _play(api: Api) -> dict[str, AgentHandle]:
    alice = await api.agent("alice", queues=("care",))
    bob = await api.agent("bob", queues=("care",))
    sue = await api.agent("sue", role="supervisor", queues=())
    a = await api.customer_writes("wa-care", sender="+420600000101")
    await _at(api, 10)
    await _presence(alice, "ready")
    await api.sweep()
    await _at(api, 15)
    await _presence(bob, "ready")
    await alice.json("POST", f"/api/v1/conversations/{a}/reject")
    await _presence(alice, "offline")
    await api.sweep()
    await _at(api, 25)
    await bob.json("POST", f"/api/v1/conversations/{a}/accept")
    await _presence(bob, "offline")
    await _at(api, 85)
    await bob.json("POST", f"/api/v1/conversations/{a}/messages", {"text": "Hello, how can I help?"}, status=201)
    await _at(api, 100)
    b = await api.customer_writes("wa-care", sender="+420600000102")
    await api.sweep()
    await _at(api, 200)
    await sue.json("POST", f"/api/v1/conversations/{b}/close", {"status": "spam"})
    await _at(api, 385)
    await bob.json("POST", f"/api/v1/conversations/{a}/close", {"status": "resolved"})
    await _at(api, 3600)
    await _presence(bob, "ready")
    c = await api.customer_writes("wa-care", sender="+420600000103")
    await api.sweep()
    await _at(api, 3700)
    await bob.json("POST", f"/api/v1/conversations/{c}/accept")
    await _at(api, 3750)
    await bob.json("POST", f"/api/v1/conversations/{c}/messages", {"text": "Let me check."}, status=201)
    await _at(api, 3800)
    await bob.json("POST", f"/api/v1/conversations/{c}/transfer", {"queue": "sales"})
    return {"alice": alice, "bob": bob, "sue": sue}


def _row(items: list[dict[str, Any]], key: str, value: Any, bucket_start: str) -> dict[str, Any]:
    found = [i for i in items if i[key] == value and i["bucket_start"] == bucket_start]
    assert len(found) == 1, items
    return found[0]


async def test_queue_report_per_hour_matches_the_hand_computed_timeline(make_api: MakeApi) -> None:
    api = await make_api(CARE, fake_adapter=True)
    sue = (await _play(api))["sue"]
    items = (await sue.json("GET", f"/api/v1/reports/queues?{HOUR}"))["items"]
    assert {i["queue"] for i in items} == {"care"}
    nine = _row(items, "queue", "care", "2026-03-02T09:00:00+00:00")
    assert {k: nine[k] for k in ("received", "handled", "abandoned", "missed_offers", "transfers")} == {
        "received": 2,
        "handled": 1,
        "abandoned": 1,
        "missed_offers": 1,
        "transfers": 0,
    }
    assert nine["first_offer_p50_s"] == 10
    assert nine["wait_p50_s"] == 25
    assert nine["wait_p90_s"] == 25
    assert nine["first_response_p50_s"] == 85
    assert nine["handle_p50_s"] == 360
    assert nine["sla_met_share"] == 0.5
    assert nine["sla_first_response_met_share"] == 0.5
    assert nine["by_status"] == {"resolved": 1, "spam": 1}
    ten = _row(items, "queue", "care", "2026-03-02T10:00:00+00:00")
    assert (ten["received"], ten["handled"], ten["abandoned"], ten["transfers"]) == (1, 1, 0, 1)
    assert (ten["first_offer_p50_s"], ten["wait_p50_s"], ten["first_response_p50_s"]) == (0, 100, 150)
    assert ten["handle_p50_s"] is None
    assert ten["sla_met_share"] == 0.0
    assert ten["sla_first_response_met_share"] == 1.0
    assert ten["by_status"] == {}

    # the CSV variant has the same rows
    response = await sue.get(f"/api/v1/reports/queues.csv?{HOUR}")
    assert response.status == 200
    assert response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["queue"], r["bucket_start"], r["received"], r["sla_met_share"]) for r in rows] == [
        ("care", "2026-03-02T09:00:00+00:00", "2", "0.5"),
        ("care", "2026-03-02T10:00:00+00:00", "1", "0.0"),
    ]
    assert rows[0]["by_status"] == "resolved=1;spam=1"
    assert rows[1]["handle_p50_s"] == ""


async def test_day_buckets_agents_and_channels_and_a_second_hub_reads_the_same(make_api: MakeApi) -> None:
    api = await make_api(CARE, fake_adapter=True)
    people = await _play(api)
    sue = people["sue"]
    day = _row(
        (await sue.json("GET", f"/api/v1/reports/queues?{DAY}"))["items"], "queue", "care", "2026-03-02T00:00:00+00:00"
    )
    assert (day["received"], day["handled"], day["abandoned"]) == (3, 2, 1)
    assert (day["wait_p50_s"], day["wait_p90_s"]) == (25, 100)
    assert day["sla_met_share"] == 0.3333

    agents = (await sue.json("GET", f"/api/v1/reports/agents?{HOUR}"))["items"]
    alice = _row(agents, "agent", people["alice"].id, "2026-03-02T09:00:00+00:00")
    assert (alice["agent_login"], alice["received"], alice["handled"], alice["missed_offers"]) == ("alice", 1, 0, 1)
    assert alice["wait_p50_s"] is None
    bob = _row(agents, "agent", people["bob"].id, "2026-03-02T09:00:00+00:00")
    assert (bob["received"], bob["handled"], bob["missed_offers"], bob["wait_p50_s"]) == (1, 1, 0, 25)
    assert (bob["first_response_p50_s"], bob["handle_p50_s"], bob["sla_met_share"]) == (85, 360, 1.0)
    bob_ten = _row(agents, "agent", people["bob"].id, "2026-03-02T10:00:00+00:00")
    assert (bob_ten["handled"], bob_ten["transfers"], bob_ten["sla_met_share"]) == (1, 1, 0.0)

    # C is in sales now, but it started in care: a queue's filter goes by where contacts started
    assert (await sue.json("GET", f"/api/v1/reports/queues?{DAY}&queue=sales"))["items"] == []
    only_care = (await sue.json("GET", f"/api/v1/reports/agents?{HOUR}&queue=care"))["items"]
    assert only_care == agents

    channels = (await sue.json("GET", f"/api/v1/reports/channels?{DAY}"))["items"]
    assert [(c["channel"], c["received"], c["handled"]) for c in channels] == [("whatsapp", 3, 2)]

    # another hub on the same database (a restart, or a second process) reads the same figures
    again = await make_api(CARE, fake_adapter=True)
    other = await again.agent("sam", role="admin", queues=())
    assert (await other.json("GET", f"/api/v1/reports/agents?{HOUR}"))["items"] == agents


async def test_a_contact_transferred_to_a_colleague_counts_as_handled_by_them_too(make_api: MakeApi) -> None:
    """The manual: "Your message will end and the customer will be transferred." The colleague who gets it
    carries on with the customer: the contact is theirs in the agent report, handled from when they got it.

    Written at 0, offered to alice at once, accepted at 20, answered at 30, transferred by name to bob at 100,
    closed by bob at 400: alice handled it 20..(400) as before; bob handled it from 100, so 300 s."""
    api = await make_api(CARE, fake_adapter=True)
    alice = await api.agent("alice", queues=("care",))
    bob = await api.agent("bob", queues=("care",))
    sue = await api.agent("sue", role="supervisor", queues=())
    await _presence(alice, "ready")
    a = await api.customer_writes("wa-care", sender="+420600000201")
    await api.sweep()
    await _at(api, 20)
    await alice.json("POST", f"/api/v1/conversations/{a}/accept")
    await _at(api, 30)
    await alice.json("POST", f"/api/v1/conversations/{a}/messages", {"text": "Let me find a colleague."}, status=201)
    await _at(api, 100)
    await alice.json("POST", f"/api/v1/conversations/{a}/transfer", {"agent": "bob"})
    await _at(api, 400)
    await bob.json("POST", f"/api/v1/conversations/{a}/close", {"status": "resolved"})

    agents = (await sue.json("GET", f"/api/v1/reports/agents?{HOUR}"))["items"]
    nine = "2026-03-02T09:00:00+00:00"
    first = _row(agents, "agent", alice.id, nine)
    assert (first["received"], first["handled"], first["transfers"], first["handle_p50_s"]) == (1, 1, 1, 380)
    second = _row(agents, "agent", bob.id, nine)
    assert (second["agent_login"], second["received"], second["handled"], second["transfers"]) == ("bob", 1, 1, 0)
    assert second["handle_p50_s"] == 300
    # the customer's wait and first answer are the contact's, whoever carried on
    assert (second["wait_p50_s"], second["first_response_p50_s"], second["by_status"]) == (20, 30, {"resolved": 1})
    # the queue counts the contact once
    queue = _row((await sue.json("GET", f"/api/v1/reports/queues?{HOUR}"))["items"], "queue", "care", nine)
    assert (queue["received"], queue["handled"], queue["transfers"], queue["handle_p50_s"]) == (1, 1, 1, 380)


async def test_todays_service_level_per_queue_is_live(make_api: MakeApi) -> None:
    api = await make_api(CARE, fake_adapter=True)
    people = await _play(api)
    items = (await people["sue"].json("GET", "/api/v1/reports/sla"))["items"]
    assert [(i["queue"], i["received"], i["sla_met_share"], i["sla_accept_share"]) for i in items] == [
        ("care", 3, 0.3333, 0.8)
    ]
    # an agent sees the queues they belong to
    assert [i["queue"] for i in (await people["alice"].json("GET", "/api/v1/reports/sla"))["items"]] == ["care"]
    outsider = await api.agent("olga", queues=("support",))
    assert (await outsider.json("GET", "/api/v1/reports/sla"))["items"] == []


async def test_bad_parameters_are_refused_with_codes(api: Api) -> None:
    sue = await api.agent("sue", role="supervisor", queues=())
    cases = {
        "bucket=week": "invalid_bucket",
        "from=yesterday": "invalid_date",
        "from=2026-03-02T10:00:00Z&to=2026-03-02T09:00:00+00:00": "bad_range",
        "from=2024-01-01T00:00:00Z&to=2026-03-02T00:00:00Z": "range_too_long",
        "from=2026-01-01T00:00:00Z&to=2026-03-30T00:00:00Z&bucket=hour": "too_many_buckets",
        "tz=Mars/Base": "invalid_tz",
        "tz=Europe": "invalid_tz",  # a folder of zones, not one
        "tz=../../etc/passwd": "invalid_tz",
    }
    for query, code in cases.items():
        for path in ("/api/v1/reports/queues", "/api/v1/reports/agents.csv"):
            response = await sue.get(f"{path}?{query}")
            assert response.status == 422, (path, query)
            assert (await response.json())["error"]["code"] == code


async def test_dates_at_the_ends_of_the_calendar_are_refused_not_a_500(api: Api) -> None:
    sue = await api.agent("sue", role="supervisor", queues=())
    for query in (
        "to=0001-01-03",  # the default 'from', seven days earlier, is before year 1
        "from=0001-01-01T00:00:00%2B05:00&to=0001-01-02",  # in UTC, before year 1
        "from=2026-03-01&to=9999-12-31T23:00:00-05:00",  # in UTC, after year 9999
    ):
        for path in ("/api/v1/reports/queues", "/api/v1/reports/agents.csv"):
            response = await sue.get(f"{path}?{query}")
            assert response.status == 422, (path, query)
            assert (await response.json())["error"]["code"] == "invalid_date"


async def test_the_csv_quotes_a_name_a_spreadsheet_would_run_as_a_formula(api: Api) -> None:
    admin = await api.agent("root", role="admin", queues=())
    eve = await api.agent("eve", ready=True)
    await admin.json("PUT", f"/api/v1/agents/{eve.id}", {"display_name": '=HYPERLINK("http://x.example/","y")'})
    await api.customer_writes()
    await api.sweep()
    api.clock.advance(60)
    response = await admin.get("/api/v1/reports/agents.csv")
    [row] = list(csv.DictReader(io.StringIO(await response.text())))
    assert row["agent_name"] == '\'=HYPERLINK("http://x.example/","y")'


async def test_agents_may_not_read_reports(api: Api) -> None:
    agent = await api.agent("alice")
    for path in ("/api/v1/reports/queues", "/api/v1/reports/channels.csv"):
        response = await agent.get(path)
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"


async def test_an_offset_written_unescaped_in_the_query_still_parses(api: Api) -> None:
    sue = await api.agent("sue", role="supervisor", queues=())
    await api.customer_writes()
    body = await sue.json("GET", "/api/v1/reports/queues?from=2026-03-02T10:00:00+01:00&to=2026-03-02T11:00:00+01:00")
    assert [(i["queue"], i["received"], i["bucket_start"]) for i in body["items"]] == [
        ("support", 1, "2026-03-02T00:00:00+00:00")
    ]


async def test_days_are_counted_in_the_time_zone_asked_for_or_configured(make_api: MakeApi) -> None:
    """Two customers write at 22:30 and 23:30 UTC on 2 March: the same UTC day, but 23:30 on the 2nd and 00:30
    on the 3rd in Prague (UTC+1). A date without an offset is read in the report's zone."""
    api = await make_api(CARE, fake_adapter=True, env={"CHANNELHUB_REPORTS_TIMEZONE": "Europe/Prague"})
    await _at(api, 13.5 * 3600)
    await api.customer_writes("wa-care", sender="+420600000401")
    await _at(api, 14.5 * 3600)
    await api.customer_writes("wa-care", sender="+420600000402")
    await _at(api, 15 * 3600)
    sue = await api.agent("sue", role="supervisor", queues=())

    def days(body: dict[str, Any]) -> list[tuple[str, int]]:
        return [(i["bucket_start"], i["received"]) for i in body["items"]]

    configured = await sue.json("GET", "/api/v1/reports/queues?from=2026-03-02&to=2026-03-04")
    assert configured["tz"] == "Europe/Prague"
    assert days(configured) == [("2026-03-02T00:00:00+01:00", 1), ("2026-03-03T00:00:00+01:00", 1)]
    asked = await sue.json("GET", "/api/v1/reports/queues?from=2026-03-02&to=2026-03-04&tz=UTC")
    assert (asked["tz"], days(asked)) == ("UTC", [("2026-03-02T00:00:00+00:00", 2)])
    # the same in the CSV, and per hour: the hours are Prague's
    response = await sue.get("/api/v1/reports/channels.csv?from=2026-03-02T23:00:00&to=2026-03-03T01:00:00&bucket=hour")
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["bucket_start"], r["received"]) for r in rows] == [
        ("2026-03-02T23:00:00+01:00", "1"),
        ("2026-03-03T00:00:00+01:00", "1"),
    ]
    # today's service level starts at Prague's midnight: only the second customer wrote today there
    sla = await sue.json("GET", "/api/v1/reports/sla")
    assert sla["tz"] == "Europe/Prague"
    assert [(i["since"], i["received"]) for i in sla["items"]] == [("2026-03-03T00:00:00+01:00", 1)]
    refused = await sue.get("/api/v1/reports/sla?tz=Nowhere/Else")
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "invalid_tz"
