"""Media in the console, in a real browser against a real hub and the provider emulators: a customer's
photo appears in the conversation (thumbnail, full view), and a file dragged into the composer is uploaded
with a progress bar, sent, and downloaded by the emulated provider from the hub's public link."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.browser.conftest import RunningHub
from tests.browser.test_console import open_console, set_presence

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PDF = "%PDF-1.4\n% the invoice\n%%EOF\n"

_DROP = """
([selector, name, type, text]) => {
  const file = new File([text], name, { type });
  const data = new DataTransfer();
  data.items.add(file);
  const target = document.querySelector(selector);
  for (const kind of ["dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: data }));
  }
}
"""


async def _say_image(hub: RunningHub, customer: str, name: str) -> None:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(
            f"{hub.emulator_url}/_emulator/say",
            json={
                "account": "wa-main",
                "from": customer,
                "name": name,
                "text": "The box arrived broken",
                "kind": "image",
            },
        ) as response,
    ):
        assert response.status == 200, await response.text()


async def test_a_customers_photo_appears_and_a_dropped_file_is_delivered(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")

    await _say_image(hub, "+420600555444", "Olga Mlada")
    offer = page.locator(".offer-card")
    await expect(offer).to_contain_text("Olga Mlada")
    await offer.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("tab", name=re.compile("Olga Mlada"))).to_be_visible()
    history = page.locator(".message-widget .history")
    await expect(history).to_contain_text("The box arrived broken")

    # the photo: fetched by the hub from the provider, then shown as its thumbnail
    image = history.get_by_test_id("attachment-image")
    await expect(image).to_be_visible()
    await expect(image).to_have_attribute("src", re.compile(r"/api/v1/media/\d+\?thumbnail=1$"))
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await image.element_handle())
    await image.click()
    full = page.locator("dialog[open] img.media-full")
    await expect(full).to_be_visible()
    await page.wait_for_function("img => img.complete && img.naturalWidth === 320", arg=await full.element_handle())
    await page.screenshot(path=str(screenshots / "media-image.png"))
    await page.locator("dialog[open]").get_by_role("button", name="Close").click()

    # a PDF dragged into the composer: uploaded with a progress bar, then sent
    await page.evaluate(_DROP, [".message-widget .dropzone", "invoice.pdf", "application/pdf", PDF])
    pending = page.get_by_test_id("pending-file")
    await expect(pending).to_have_attribute("data-state", "ready")
    await expect(pending).to_contain_text("invoice.pdf")
    widget = page.locator(".message-widget")
    await widget.get_by_role("textbox", name="Message").fill("Here is your invoice")
    await widget.get_by_role("button", name="Send", exact=True).click()
    card = history.get_by_test_id("file-card")
    await expect(card).to_contain_text("invoice.pdf")
    # WhatsApp through Twilio captions no document: the text went as a message of its own
    await expect(history).to_contain_text("Here is your invoice")
    await expect(card).to_contain_text("application/pdf")
    await expect(pending).to_have_count(0)

    # the emulated provider downloaded it from the hub's public link
    fetched: list[Any] = []
    for _ in range(200):
        fetched = [r["body"]["media_fetched"] for r in await hub.sent() if r["body"].get("media_fetched")]
        if fetched:
            break
        await asyncio.sleep(0.05)
    [[result]] = fetched
    assert (result["status"], result["bytes"], result["type"]) == (200, len(PDF), "application/pdf")
    await page.screenshot(path=str(screenshots / "media-sent.png"))
    assert alice.errors == []


async def test_an_upload_the_hub_refuses_is_explained_in_plain_words(hub: RunningHub, browser: Any) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")
    await hub.say("+420600555333", "Hello", name="Karel Maly")
    offer = page.locator(".offer-card")
    await offer.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("tab", name=re.compile("Karel Maly"))).to_be_visible()
    await page.evaluate(_DROP, [".message-widget .dropzone", "holiday.jpg", "image/jpeg", PDF])
    await expect(page.locator(".composer")).to_contain_text("holiday.jpg is not what its name says")
    await expect(page.get_by_test_id("pending-file")).to_have_count(0)
