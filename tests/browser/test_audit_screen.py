"""The audit log screen: an admin finds a failed login and a presence change, filters, and exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.browser.conftest import RunningHub
from tests.browser.test_console import open_console, set_presence

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_an_admin_searches_and_exports_the_audit_log(hub: RunningHub, browser: Any, screenshots: Path) -> None:
    async with aiohttp.ClientSession() as session:
        wrong = {"login": "alice", "password": "not her password"}
        async with session.post(f"{hub.url}/api/v1/auth/login", json=wrong) as answer:
            assert answer.status == 401
    alice = await open_console(browser, hub, "alice")
    await set_presence(alice.page, "ready")
    admin = await open_console(browser, hub, "admin")
    page = admin.page

    await page.get_by_role("button", name="Audit log", exact=True).click()
    table = page.get_by_test_id("audit-table")
    await expect(table.locator("tr[data-action='auth.login_failed']")).to_contain_text("alice")
    await expect(table.locator("tr[data-action='auth.login_failed']")).to_contain_text("127.0.0.1")
    await expect(table.locator("tr[data-action='presence.changed']").first).to_contain_text("agent:alice")
    await page.screenshot(path=str(screenshots / "audit-log.png"))

    # filtered to presence changes by alice: only those rows, with what changed
    await page.get_by_label("Who").fill("alice")
    await page.get_by_label("Action").fill("presence.changed")
    await page.get_by_role("button", name="Search").click()
    await expect(table.locator("tbody tr")).to_have_count(1)
    await table.locator("summary").first.click()
    await expect(table.locator(".audit-change")).to_contain_text('"ready"')

    # the export links carry the same filters, and the CSV holds the same entry
    csv_link = page.get_by_test_id("audit-csv")
    href = await csv_link.get_attribute("href")
    assert href is not None
    assert "actor=alice" in href
    assert "action=presence.changed" in href
    exported = await page.request.get(href)
    assert exported.status == 200
    lines = (await exported.text()).strip().splitlines()
    assert len(lines) == 2
    assert "presence.changed" in lines[1]

    # a selection that matches nothing says so
    await page.get_by_label("Action").fill("template.deleted")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_test_id("audit-empty")).to_be_visible()
    assert admin.errors == []
