"""An agent's events as an iCalendar document (RFC 5545), for their own calendar app. No I/O.

Each event becomes a VEVENT with a stable UID (so a calendar app updates it in place when it is
edited), a reminder (VALARM) at its start, and the conversation or ticket it follows up in its
description. The feed is read by the app with the secret URL alone, so it carries no customer data
beyond what the agent typed into the title and note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from icalendar import Alarm, Calendar, Event

__all__ = ["feed"]

PRODID = "-//channelhub//calendar feed//EN"


def _description(event: Mapping[str, Any]) -> str:
    lines = [event["note"]] if event.get("note") else []
    if event.get("conversation") is not None:
        lines.append(f"Conversation #{event['conversation']}")
    if event.get("ticket") is not None:
        lines.append(f"Ticket #{event['ticket']}")
    return "\n".join(lines)


def _vevent(event: Mapping[str, Any], host: str, console_url: str) -> Event:
    item = Event()
    item.add("uid", f"event-{event['id']}@{host}")
    item.add("dtstamp", event["updated_at"])
    item.add("last-modified", event["updated_at"])
    item.add("created", event["created_at"])
    item.add("dtstart", event["starts_at"])
    if event.get("ends_at") is not None:
        item.add("dtend", event["ends_at"])
    item.add("summary", event["title"])
    description = _description(event)
    if description:
        item.add("description", description)
    item.add("url", console_url)
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", event["title"])
    alarm.add("trigger", timedelta(0))
    item.add_component(alarm)
    return item


def feed(events: Iterable[Mapping[str, Any]], *, name: str, public_url: str) -> bytes:
    """The calendar named ``name`` with every event; ``public_url`` is the hub's (the console's) address."""
    host = public_url.split("://", 1)[-1].split("/", 1)[0] or "channelhub"
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    calendar.add("x-published-ttl", "PT15M")  # how often a calendar app should read it again
    for event in events:
        calendar.add_component(_vevent(event, host, public_url.rstrip("/") + "/"))
    return bytes(calendar.to_ical())
