"""The Send message window's statuses, in a real browser: the manual's "Select a status. You must select a
status before sending the message" offers the statuses the message's queue allows, not the whole catalogue."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import OLD_CUSTOMER, RunningHub
from tests.browser.test_console import open_console

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def hub_config_edit() -> Callable[[str, str], str]:
    """The support queue allows only "resolved" at close; the catalogue also has "spam"."""

    def edit(text: str, emulator_url: str) -> str:
        support = 'id = "support"\nname = "Support"\nnumber = 100\noffer_timeout = 120\nstatuses = ["resolved", "spam"]'
        assert support in text
        return text.replace(support, support.replace('["resolved", "spam"]', '["resolved"]'))

    return edit


async def test_the_send_message_window_offers_the_statuses_of_the_customers_queue(
    hub: RunningHub, browser: Any
) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    number, name = OLD_CUSTOMER
    await page.get_by_role("button", name="+ WhatsApp").click()
    dialog = page.locator("dialog[data-dialog=outbound]")
    await dialog.get_by_label("Customer", exact=True).fill("Petr")
    await dialog.get_by_role("option", name=re.compile(name)).click()
    await expect(dialog.locator(".chosen")).to_contain_text(number)
    status = dialog.get_by_label("Status", exact=True)
    await expect(status.locator("option")).to_have_count(2)
    assert await status.locator("option").all_inner_texts() == ["Status (needed to send and close)…", "Resolved"]
    assert alice.errors == []
