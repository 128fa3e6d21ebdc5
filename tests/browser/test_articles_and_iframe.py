"""Knowledge articles and the page in iframe, in a real Chromium against a real hub.

An admin writes an article (preview, versions); an agent in a conversation searches it (a
mistyped word too), reads it in the side panel, inserts a passage and its link into the reply,
goes back, opens it full-page and comes back. The support queue shows a page in a sandboxed
iframe whose address the hub built from the conversation (a hostile customer name included).
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import expect

from tests.browser.conftest import RunningHub
from tests.browser.test_console import open_console, set_presence
from tests.ports import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTICLE_BODY = """## What to do

1. Check the **tracking** number with the customer.
2. Offer the [claim form](https://example.com/claim).

<script>document.title = 'ran'</script>
"""


@pytest.fixture
async def page_server() -> AsyncIterator[str]:
    """A CRM-like page on another host name (localhost, not the hub's 127.0.0.1) that shows what it was asked."""

    async def card(request: web.Request) -> web.Response:
        rows = "".join(
            f"<li data-key='{html.escape(k)}'>{html.escape(k)} = {html.escape(v)}</li>"
            for k, v in request.query.items()
        )
        referrer = html.escape(request.headers.get("Referer", "none"))
        return web.Response(
            text=f"<!doctype html><title>CRM card</title><h1>CRM card</h1><ul>{rows}</ul><p id=referrer>{referrer}</p>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/card", card)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "localhost", port).start()
    try:
        yield f"http://localhost:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def hub_config_edit(page_server: str) -> Callable[[str, str], str]:
    lines = (
        f'iframe_url = "{page_server}/card?name={{customer_name}}&conv={{conversation_id}}&queue={{queue}}"\n'
        'iframe_hosts = ["localhost"]\n'
    )

    def edit(text: str, emulator_url: str) -> str:
        marker = 'url_template = "https://crm.example/customers?phone={external_id}"\n'
        assert marker in text
        return text.replace(marker, marker + lines, 1)

    return edit


async def _admin_writes_an_article(browser: Any, hub: RunningHub, screenshots: Path) -> None:
    admin = await open_console(browser, hub, "admin")
    page = admin.page
    await page.get_by_role("button", name="Articles", exact=True).click()
    editor = page.locator(".article-editor")
    await editor.get_by_label("Title").fill("Parcel did not arrive")
    await editor.get_by_label("Tags").fill("Shipping, parcels")
    await editor.get_by_label("Support").check()
    await editor.get_by_label("Body (Markdown)").fill(ARTICLE_BODY)
    preview = page.get_by_test_id("article-preview")
    await expect(preview.locator("h2")).to_have_text("What to do")
    await expect(preview.locator("strong")).to_have_text("tracking")
    await expect(preview).to_contain_text("<script>")  # shown as text, never run
    await editor.get_by_role("button", name="Create").click()
    await expect(page.locator(".articles-list")).to_contain_text("Parcel did not arrive · v1")
    await expect(editor.locator("h2").first).to_have_text("Parcel did not arrive · v1")  # the saved article reopened

    # a second version; both are listed
    await editor.get_by_label("Body (Markdown)").fill(ARTICLE_BODY + "\nRefunds follow within **14 days**.\n")
    await editor.get_by_role("button", name="Save new version").click()
    await expect(editor.locator("h2").first).to_have_text("Parcel did not arrive · v2")
    await expect(editor.locator(".versions li")).to_have_count(2)
    await editor.locator(".versions li[data-version='1']").get_by_role("button", name="View").click()
    await expect(preview).not_to_contain_text("14 days")
    await page.screenshot(path=str(screenshots / "articles-admin.png"))
    assert await page.title() != "ran"
    assert admin.errors == []
    await page.context.close()


async def test_an_agent_finds_reads_and_quotes_an_article_beside_the_page_in_iframe(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    await _admin_writes_an_article(browser, hub, screenshots)

    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")
    await hub.say("+420600111333", "My parcel did not arrive.", name="Jana & <Co>")
    await page.locator(".offer-card").get_by_role("button", name="Accept").click()
    widget = page.locator(".articles-widget")
    await expect(widget).to_be_visible()

    # search with a typo: the article is still found
    await widget.get_by_label("Search articles").fill("trackng")
    row = widget.locator("ul[data-query='trackng'] .article-row").first
    await expect(row).to_contain_text("Parcel did not arrive")
    await expect(row).to_contain_text("Check the tracking number")

    # read it in the widget
    await row.get_by_role("button", name="Parcel did not arrive", exact=True).click()
    content = widget.locator(".article-content")
    await expect(content.locator("h2")).to_have_text("What to do")
    link = content.get_by_role("link", name="claim form")
    await expect(link).to_have_attribute("href", "https://example.com/claim")
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert await content.locator("script").count() == 0

    # select a passage and insert it, then the link
    await page.evaluate(
        """() => {
            const item = document.querySelector('.articles-widget .article-content li');
            const range = document.createRange();
            range.selectNodeContents(item);
            const selection = window.getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
        }"""
    )
    passage = widget.get_by_role("button", name="Insert passage")
    await expect(passage).to_be_enabled()
    await passage.click()
    composer = page.locator(".message-widget").get_by_label("Message", exact=True)
    await expect(composer).to_have_value("Check the tracking number with the customer.")
    await widget.get_by_role("button", name="Insert link").click()
    await expect(composer).to_have_value(
        re.compile(
            r"^Check the tracking number with the customer\. Parcel did not arrive: http://.+/console/#article/\d+$"
        )
    )

    # the page in iframe: sandboxed, no referrer, the values the hub encoded
    frame_element = page.locator(".iframe-widget iframe")
    await expect(frame_element).to_have_attribute("sandbox", re.compile("allow-scripts"))
    await expect(frame_element).to_have_attribute("referrerpolicy", "no-referrer")
    sandbox = await frame_element.get_attribute("sandbox") or ""
    assert "allow-top-navigation" not in sandbox
    frame = page.frame_locator(".iframe-widget iframe")
    await expect(frame.locator("li[data-key='name']")).to_have_text("name = Jana & <Co>")
    await expect(frame.locator("li[data-key='queue']")).to_have_text("queue = support")
    await expect(frame.locator("#referrer")).to_have_text("none")
    await page.screenshot(path=str(screenshots / "article-widget.png"))
    await page.locator(".iframe-widget").screenshot(path=str(screenshots / "iframe-widget.png"))

    # back to the list, then the full page and back to the conversation
    await widget.get_by_role("button", name="← Back").click()
    await expect(widget.locator(".article-row")).to_have_count(1)
    await widget.get_by_role("button", name="Open Parcel did not arrive full-page").click()
    article_page = page.locator(".article-page")
    await expect(article_page.locator("h1")).to_have_text("Parcel did not arrive")
    await expect(article_page).to_contain_text("14 days")
    await page.screenshot(path=str(screenshots / "article-page.png"))
    await article_page.get_by_role("button", name="← Back").click()
    await expect(page.locator(".message-widget")).to_be_visible()
    assert alice.errors == []
