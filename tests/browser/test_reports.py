"""The reports screen, the overview's service level and the SLA widget, in a real browser against a real hub."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from tests.browser.conftest import RunningHub
from tests.browser.test_console import open_console, set_presence

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_reports_chart_the_figures_export_csv_and_show_the_service_level(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    await set_presence(alice.page, "ready")
    await hub.say("+420600555666", "Where is my order?", name="Karel Report")
    offer = alice.page.locator(".offer-card")
    await offer.get_by_role("button", name="Accept").click()
    # the SLA widget beside the conversation: the queue's targets and the share met today
    sla = alice.page.get_by_test_id("sla-widget")
    # (the fixture's seeded customer also waits in support, so the share depends on how long ago that was)
    await expect(sla).to_contain_text(re.compile(r"Support: 80% accepted within 1m 00s: \d+% today"))
    await expect(sla).to_contain_text("first response within 5m 00s")

    # west of Greenwich, where a UTC day begins the evening before: the buckets are named as the hub counts them
    # (in its configured zone, UTC here), never in the browser's
    admin = await open_console(browser, hub, "admin", timezone_id="America/New_York")
    page = admin.page
    await page.get_by_role("button", name="Overview", exact=True).click()
    await expect(page.get_by_test_id("sla-today")).to_contain_text(
        re.compile(r"support 80% accepted within 1m 00s: \d+% today")
    )

    await page.get_by_role("button", name="Reports", exact=True).click()
    await page.get_by_role("button", name="Show").click()
    table = page.get_by_test_id("report-table")
    row = table.locator("tbody tr[data-key='support']")
    # Karel, and the customer the fixture seeded (never answered)
    await expect(row.locator("[data-figure='received']")).to_have_text("2")
    await expect(row.locator("[data-figure='handled']")).to_have_text("1")
    await expect(row.locator("[data-figure='sla_met_share']")).to_have_text(re.compile(r"^\d+%$"))
    await expect(page.get_by_test_id("report-chart")).to_be_visible()
    # Chart.js drew into the canvas: it is no longer blank
    drawn = await page.get_by_test_id("report-chart").evaluate(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v !== 0)"
    )
    assert drawn
    await page.screenshot(path=str(screenshots / "reports.png"))

    # the CSV link serves the same rows, with the session of the console
    href = await page.get_by_test_id("report-csv").get_attribute("href")
    assert href is not None
    assert href.startswith("/api/v1/reports/queues.csv?")
    response = await page.request.get(href)
    assert response.status == 200
    lines = (await response.text()).splitlines()
    assert lines[0].startswith("queue,bucket_start,received,handled,abandoned")
    assert lines[1].startswith("support,")
    utc_day = lines[1].split(",")[1][:10]
    await expect(row.locator("[data-figure='bucket_start']")).to_have_text(utc_day)
    # the hub's zone (the default, UTC) heads the column, whatever the browser's
    await expect(table.locator("thead")).to_contain_text("From (UTC)")

    await page.get_by_test_id("report-kind").select_option("agents")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_test_id("report-table")).to_contain_text("alice")
    assert admin.errors == []
    assert alice.errors == []


# A zone whose date differs from UTC's now (UTC+14 from 10:00 UTC, UTC-12 before 12:00 UTC), chosen as the hub starts.
_HUBS_ZONE: dict[str, str] = {}


def _far_from_utc(text: str, emulator_url: str) -> str:
    _HUBS_ZONE["name"] = "Pacific/Kiritimati" if datetime.now(UTC).hour >= 12 else "Etc/GMT+12"
    return f'{text}\n[reports]\ntimezone = "{_HUBS_ZONE["name"]}"\n'


@pytest.mark.parametrize("hub_config_edit", [_far_from_utc])
async def test_the_reports_default_week_ends_today_in_the_hubs_zone(hub: RunningHub, browser: Any) -> None:
    # UTC's date is the day before or after the hub's here: a default week ending on it missed or added a day
    admin = await open_console(browser, hub, "admin", timezone_id="UTC")
    page = admin.page
    await page.get_by_role("button", name="Reports", exact=True).click()
    today = datetime.now(ZoneInfo(_HUBS_ZONE["name"])).date()
    await expect(page.get_by_test_id("report-to")).to_have_value(today.isoformat())
    await expect(page.get_by_test_id("report-from")).to_have_value((today - timedelta(days=6)).isoformat())
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_test_id("report-table").locator("thead")).to_contain_text(f"From ({_HUBS_ZONE['name']})")
    assert admin.errors == []
