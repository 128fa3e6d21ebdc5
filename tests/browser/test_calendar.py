"""The Calendar widget in real Chromium: a follow-up created from the conversation colours its day,
the selected day is bold, a follow-up after the customer's window closes says so, a due event is
reminded on the console, and the feed URL serves the same events as iCalendar."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
from icalendar import Calendar
from playwright.async_api import expect

from tests.browser.conftest import RunningHub
from tests.browser.test_console import open_console, set_presence

LOCAL_INPUT_NOW = """() => {
    const d = new Date(Date.now() + (__DAYS__) * 86400000);
    if (__DAYS__) d.setHours(10, 0, 0, 0);
    const pad = (n) => String(n).padStart(2, "0");
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return `${day}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}"""


async def test_follow_ups_in_the_calendar_widget_reminder_and_feed(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")
    await hub.say("+420600777888", "Please call me back about the invoice.", name="Jana Novak")
    await page.locator(".offer-card").get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("tab", name=re.compile("Jana Novak"))).to_be_visible()

    widget = page.locator(".calendar-widget")
    await expect(widget.get_by_role("heading", name="Calendar")).to_be_visible()
    today = widget.locator(".day.today")
    await expect(today).to_have_class(re.compile(r"\bselected\b"))
    await expect(today).to_have_css("font-weight", "700")  # the selected day is bold
    await expect(widget.locator(".day.has-events")).to_have_count(0)

    # a follow-up now (this minute): due at once, so the console reminds of it
    await widget.get_by_role("button", name="Follow-up…").click()
    dialog = page.locator("dialog[open]")
    await expect(dialog.get_by_label("Title")).to_have_value("Write to Jana Novak")
    await dialog.get_by_label("Title").fill("Call back Jana")
    await dialog.get_by_label("When").fill(await page.evaluate(LOCAL_INPUT_NOW.replace("__DAYS__", "0")))
    await dialog.get_by_label("Note").fill("about invoice 2026-17")
    await dialog.get_by_role("button", name="Schedule").click()
    await expect(dialog).to_be_hidden()
    await expect(widget.locator(".day-events")).to_contain_text("Call back Jana")
    await expect(today).to_have_class(re.compile(r"\bhas-events\b"))  # coloured
    reminder = page.locator(".reminders .reminder")
    await expect(reminder).to_contain_text("Call back Jana")
    await expect(reminder).to_contain_text("about invoice 2026-17")

    # a follow-up in three days: the WhatsApp window (24 h from the customer's message) will be closed
    await widget.get_by_role("button", name="Follow-up…").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("When").fill(await page.evaluate(LOCAL_INPUT_NOW.replace("__DAYS__", "3")))
    await dialog.get_by_role("button", name="Schedule").click()
    await expect(dialog).to_be_hidden()
    await expect(widget.get_by_test_id("calendar-warning")).to_contain_text("messaging window will be closed")
    selected = widget.locator(".day.selected")
    await expect(selected).to_have_class(re.compile(r"\bhas-events\b"))
    await expect(widget.locator(".day-events")).to_contain_text("Write to Jana Novak")
    await expect(reminder).to_have_count(1)  # not due yet
    await page.evaluate("document.getElementById('toasts').replaceChildren()")
    await widget.screenshot(path=str(screenshots / "calendar-widget.png"))

    # the personal feed: a secret URL that a calendar app reads without logging in
    await widget.get_by_role("button", name="Feed…").click()
    url = page.locator("dialog[open]").get_by_label("Feed URL")
    await expect(url).to_have_value(re.compile(r"/calendar/[^/]+\.ics$"))
    async with aiohttp.ClientSession() as session, session.get(await url.input_value()) as answer:
        assert answer.status == 200
        assert answer.content_type == "text/calendar"
        calendar = Calendar.from_ical(await answer.read())
    assert sorted(str(e["SUMMARY"]) for e in calendar.walk("VEVENT")) == ["Call back Jana", "Write to Jana Novak"]
    assert alice.errors == []
