"""Bots in the console, in a real browser against a real hub: the "Bot" list with its badge, taking a
conversation over from the bot, "Return to bot", and the hand-off reason on a conversation."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import (
    RunningHub,
)
from tests.browser.test_console import open_console, set_presence

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FLOW = """
greeting = "Hi, I am the concierge bot."

[[keywords]]
match = ["hours"]
reply = "We are open 9 to 17."
"""


@pytest.fixture
def hub_config_edit(tmp_path: Path) -> Callable[[str, str], str]:
    """The browser tests' hub with a rules bot answering the sales queue first, on an account of its own."""
    flow = tmp_path / "flow.toml"
    flow.write_text(FLOW, encoding="utf-8")

    def edit(text: str, emulator_url: str) -> str:
        return (
            text
            + f"""
[[accounts]]
id = "wa-bot"
channel = "whatsapp"
provider = "twilio"
queue = "sales"
account_sid = "AC00000000000000000000000000000003"
auth_token = "twilio-test-auth-token-3"
from_number = "+15550003333"
api_base = "{emulator_url}/twilio"

[[bots]]
id = "concierge"
kind = "rules"
queues = ["sales"]
flow = "{flow}"
"""
        )

    return edit


async def test_the_bot_list_take_over_return_to_bot_and_the_hand_off_reason(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    customer = "+420600222333"
    await hub.say(customer, "hello", name="Eva Bot", account="wa-bot")

    # the bot answers first; the conversation is in the Bot list with its badge, not offered
    bots = page.get_by_test_id("bot-filter")
    await bots.click()
    dialog = page.locator("dialog[open]")
    row = dialog.locator(".list-row", has_text="Eva Bot")
    await expect(row).to_be_visible()
    await expect(row.get_by_test_id("bot-badge")).to_have_text("Bot")
    await page.screenshot(path=str(screenshots / "bots.png"))

    # take it over mid-bot: it opens as the agent's conversation, the bot's greeting in its history
    await row.get_by_role("button", name="Take over").click()
    widget = page.locator(".message-widget")
    await expect(widget.locator(".history")).to_contain_text("Hi, I am the concierge bot.")
    back = page.get_by_test_id("return-to-bot")
    await expect(back).to_be_visible()

    # hand it back: the tab goes, the conversation is the bot's again
    await back.click()
    await expect(page.get_by_role("tab", name=re.compile("Eva Bot"))).to_have_count(0)
    await bots.click()
    dialog = page.locator("dialog[open]")
    await expect(dialog.locator(".list-row", has_text="Eva Bot")).to_be_visible()
    await dialog.get_by_role("button", name="Close").click()

    # the customer asks for a person: handed off, offered, and the console says why
    await set_presence(page, "ready")
    await hub.say(customer, "I want to talk to an agent please", account="wa-bot")
    offer = page.locator(".offer-card")
    await expect(offer).to_be_visible()
    await offer.get_by_role("button", name="Accept").click()
    await expect(page.get_by_test_id("handoff-reason")).to_contain_text("the customer asked for a person")
    await expect(widget.locator(".history")).to_contain_text("The bot handed over")
    assert alice.errors == []
