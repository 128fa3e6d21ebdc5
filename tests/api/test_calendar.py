"""The agent's calendar through the API, on both engines: events are the owner's alone, a follow-up
warns when the customer's window will be closed at its start, and the secret feed is iCalendar."""

from __future__ import annotations

from datetime import datetime, timedelta

from icalendar import Calendar
from sqlalchemy import func, select

from hub.store.tables import calendar_events
from tests.api.conftest import START, Api
from tests.api.test_tickets import make_owner


def _at(delta: timedelta) -> str:
    return (START + delta).isoformat()


async def _event_count(api: Api) -> int:
    async with api.store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(calendar_events))).scalar_one())


async def test_event_is_created_listed_edited_and_deleted(api: Api) -> None:
    alice = await api.agent("alice")
    created = await alice.json(
        "POST",
        "/api/v1/events",
        {"title": "Call back Jana", "starts_at": "2026-03-03T10:00:00+01:00", "note": "about the refund"},
        status=201,
    )
    assert created["title"] == "Call back Jana"
    assert datetime.fromisoformat(created["starts_at"]) == datetime.fromisoformat("2026-03-03T09:00:00+00:00")
    assert (created["note"], created["ends_at"], created["conversation"], created["warnings"]) == (
        "about the refund",
        None,
        None,
        [],
    )
    later = await alice.json("POST", "/api/v1/events", {"title": "Later", "starts_at": _at(timedelta(days=40))}, 201)

    listed = await alice.json("GET", "/api/v1/events")
    assert [e["id"] for e in listed["items"]] == [created["id"], later["id"]]  # earliest first
    window = await alice.json("GET", "/api/v1/events?from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z")
    assert [e["id"] for e in window["items"]] == [created["id"]]
    # the offset typed as it is: the "+" arrives as a space and is read back as the "+" it was
    typed = await alice.json("GET", "/api/v1/events?from=2026-03-03T01:00:00+01:00&to=2026-03-04T01:00:00+01:00")
    assert [e["id"] for e in typed["items"]] == [created["id"]]

    edited = await alice.json(
        "PUT", f"/api/v1/events/{created['id']}", {"ends_at": "2026-03-03T09:30:00Z", "note": None}
    )
    assert (edited["title"], edited["note"]) == ("Call back Jana", None)
    assert datetime.fromisoformat(edited["ends_at"]) == datetime.fromisoformat("2026-03-03T09:30:00+00:00")

    await alice.json("DELETE", f"/api/v1/events/{created['id']}", status=204)
    listed = await alice.json("GET", "/api/v1/events")
    assert [e["id"] for e in listed["items"]] == [later["id"]]


async def test_an_agent_sees_and_changes_only_their_own_events(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    mine = await alice.json("POST", "/api/v1/events", {"title": "Mine", "starts_at": _at(timedelta(hours=1))}, 201)
    assert (await bob.json("GET", "/api/v1/events"))["items"] == []
    for method, body in (("PUT", {"title": "Bob's now"}), ("DELETE", None)):
        answer = await bob.json(method, f"/api/v1/events/{mine['id']}", body, status=404)
        assert answer["error"]["code"] == "not_found"
    assert [e["title"] for e in (await alice.json("GET", "/api/v1/events"))["items"]] == ["Mine"]


async def test_invalid_event_input_is_422_and_writes_nothing(api: Api) -> None:
    alice = await api.agent("alice")
    for body, field in [
        ({"starts_at": _at(timedelta(hours=1))}, "title"),
        ({"title": "x"}, "starts_at"),
        ({"title": "x", "starts_at": "tomorrow"}, "starts_at"),
        ({"title": "x", "starts_at": "2026-03-03T10:00:00"}, "starts_at"),  # no offset: which zone?
        ({"title": "x", "starts_at": _at(timedelta(hours=2)), "ends_at": _at(timedelta(hours=1))}, "ends_at"),
        ({"title": "x", "starts_at": _at(timedelta(hours=1)), "ticket": 999}, "ticket"),
        ({"title": "x", "starts_at": _at(timedelta(hours=1)), "colour": "red"}, "colour"),
        ({"title": "x", "starts_at": 17}, "starts_at"),
        ({"title": "x", "starts_at": "0001-01-01T00:00:00+05:00"}, "starts_at"),  # before year 1 in UTC
        ({"title": "x", "starts_at": "9999-12-31T23:59:59-05:00"}, "starts_at"),  # after year 9999 in UTC
    ]:
        response = await alice.post("/api/v1/events", json=body)
        assert response.status == 422, body
        assert (await response.json())["error"]["field"] == field
    response = await alice.get("/api/v1/events?from=yesterday")
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_query"
    assert await _event_count(api) == 0


async def test_a_follow_up_warns_when_the_window_will_be_closed_at_its_start(api: Api) -> None:
    alice = await api.agent("alice")
    conversation_id = await api.customer_writes(text="my order is late")  # WhatsApp: 24 h window from now
    await make_owner(api, conversation_id, alice)

    soon = await alice.json(
        "POST",
        "/api/v1/events",
        {"title": "Write back", "starts_at": _at(timedelta(hours=3)), "conversation": conversation_id},
        status=201,
    )
    assert soon["warnings"] == []
    assert soon["conversation"] == conversation_id

    tuesday = await alice.json(
        "POST",
        "/api/v1/events",
        {"title": "Write on Tuesday", "starts_at": _at(timedelta(days=2)), "conversation": conversation_id},
        status=201,
    )
    [warning] = tuesday["warnings"]
    assert warning["code"] == "window_closed"
    assert datetime.fromisoformat(warning["window_closed_at"]) == START + timedelta(hours=24)

    # moving the event back inside the window clears the warning
    moved = await alice.json("PUT", f"/api/v1/events/{tuesday['id']}", {"starts_at": _at(timedelta(hours=20))})
    assert moved["warnings"] == []


async def test_a_follow_up_on_a_ticket_warns_for_the_ticket_s_customer(api: Api) -> None:
    alice = await api.agent("alice")
    conversation_id = await api.customer_writes()
    await make_owner(api, conversation_id, alice)
    ticket = await alice.json("POST", "/api/v1/tickets", {"title": "Refund"}, status=201)
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/ticket", {"ticket": ticket["id"]})
    event = await alice.json(
        "POST",
        "/api/v1/events",
        {"title": "Refund done?", "starts_at": _at(timedelta(days=3)), "ticket": ticket["id"]},
        201,
    )
    assert [w["code"] for w in event["warnings"]] == ["window_closed"]


async def test_a_conversation_the_agent_may_not_see_is_refused(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    await make_owner(api, conversation_id, alice)
    answer = await bob.json(
        "POST",
        "/api/v1/events",
        {"title": "Snoop", "starts_at": _at(timedelta(hours=1)), "conversation": conversation_id},
        status=403,
    )
    assert answer["error"]["code"] == "forbidden"
    assert await _event_count(api) == 0


async def test_the_feed_is_icalendar_behind_a_secret_that_can_be_rotated(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    event = await alice.json(
        "POST",
        "/api/v1/events",
        {
            "title": "Call back Jana",
            "starts_at": "2026-03-03T10:00:00+01:00",
            "ends_at": "2026-03-03T10:30:00+01:00",
            "note": "refund",
        },
        status=201,
    )
    await bob.json("POST", "/api/v1/events", {"title": "Bob's own", "starts_at": _at(timedelta(hours=1))}, 201)
    url = (await alice.json("GET", "/api/v1/me/calendar-feed"))["url"]
    assert url == (await alice.json("GET", "/api/v1/me/calendar-feed"))["url"]  # stable until rotated
    assert url != (await bob.json("GET", "/api/v1/me/calendar-feed"))["url"]
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]

    response = await api.client.get(path)  # no login: the secret is the credential
    assert response.status == 200
    assert response.content_type == "text/calendar"
    calendar = Calendar.from_ical(await response.read())
    [vevent] = calendar.walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Call back Jana"
    assert vevent.decoded("DTSTART") == datetime.fromisoformat("2026-03-03T09:00:00+00:00")
    assert vevent.decoded("DTEND") == datetime.fromisoformat("2026-03-03T09:30:00+00:00")
    assert "refund" in str(vevent["DESCRIPTION"])
    assert str(vevent["UID"]).startswith(f"event-{event['id']}@")
    assert [a.decoded("TRIGGER") for a in vevent.walk("VALARM")] == [timedelta(0)]

    rotated = (await alice.json("POST", "/api/v1/me/calendar-feed/rotate"))["url"]
    assert rotated != url
    assert (await api.client.get(path)).status == 404  # the old URL stops working
    new_path = "/" + rotated.split("://", 1)[1].split("/", 1)[1]
    assert (await api.client.get(new_path)).status == 200
    assert (await api.client.get("/calendar/not-a-secret.ics")).status == 404


async def test_calendar_routes_need_a_login(api: Api) -> None:
    for method, path in (("GET", "/api/v1/events"), ("POST", "/api/v1/events"), ("GET", "/api/v1/me/calendar-feed")):
        response = await api.client.request(method, path, json={} if method == "POST" else None)
        assert response.status == 401
