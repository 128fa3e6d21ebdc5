"""Attachment URLs an agent or a provider can plant do not break the console's history.

One outbound attachment with a malformed %-escape, planted through the API, used to
throw out of the history's render (``decodeURIComponent``) and blank the whole
conversation. An inbound attachment whose URL is not http(s) is shown as inert text,
never as a link or an image source.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.browser.conftest import PASSWORDS, RunningHub
from tests.browser.test_console import open_console, set_presence

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MALFORMED = "https://files.example/report%E0%A4%A.pdf"
SCRIPT = "javascript:alert(document.domain)"


async def _api(hub: RunningHub, method: str, path: str, token: str | None = None, json: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.request(method, f"{hub.url}{path}", json=json, headers=headers) as response,
    ):
        body = await response.json()
        assert response.status < 300, (response.status, body)
        return body


async def test_planted_attachment_urls_leave_the_history_readable_and_inert(hub: RunningHub, browser: Any) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")

    # the customer sends an "image" whose URL is a script (a provider passes on what it was given)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(
            f"{hub.emulator_url}/_emulator/say",
            json={
                "account": "wa-main",
                "from": "+420600123123",
                "name": "Eva Mala",
                "text": "Here is the photo",
                "kind": "image",
                "media_url": SCRIPT,
            },
        ) as response,
    ):
        assert response.status == 200, await response.text()
    offer = page.locator(".offer-card")
    await expect(offer).to_contain_text("Eva Mala")
    await offer.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("tab", name=re.compile("Eva Mala"))).to_be_visible()
    history = page.locator(".message-widget .history")
    await expect(history).to_contain_text("Here is the photo")

    # alice's own API client plants an attachment URL with a malformed %-escape
    token = (await _api(hub, "POST", "/api/v1/auth/login", json={"login": "alice", "password": PASSWORDS["alice"]}))[
        "token"
    ]
    listed = await _api(hub, "GET", "/api/v1/conversations?state=active", token)
    conversation = next(c for c in listed["items"] if "Eva" in str(c))
    messages = f"/api/v1/conversations/{conversation['id']}/messages"
    # WhatsApp through Twilio carries no caption on a document: the text goes on its own, then the file
    await _api(hub, "POST", messages, token, {"text": "Your report is attached"})
    await _api(hub, "POST", messages, token, {"attachments": [{"kind": "file", "url": MALFORMED}]})
    await expect(history).to_contain_text("Your report is attached")
    await expect(history).to_contain_text("report%E0%A4%A.pdf")

    # a fresh console renders the whole history from the API: every message is there
    await page.reload()
    await expect(page.get_by_role("tab", name=re.compile("Eva Mala"))).to_be_visible()
    await page.get_by_role("tab", name=re.compile("Eva Mala")).click()
    history = page.locator(".message-widget .history")
    await expect(history).to_contain_text("Here is the photo")
    await expect(history).to_contain_text("Your report is attached")
    await expect(history).to_contain_text("report%E0%A4%A.pdf")
    link = history.locator("a.attachment")
    await expect(link).to_have_attribute("href", MALFORMED)

    # the script URL is text: no link, no image source
    inert = history.get_by_test_id("attachment-inert")
    await expect(inert).to_contain_text(SCRIPT)
    assert await history.locator('a[href^="javascript:"], img[src^="javascript:"]').count() == 0
    assert alice.errors == []
