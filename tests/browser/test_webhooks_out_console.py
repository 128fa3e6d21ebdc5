"""The outgoing webhooks admin screen in a real browser: an admin subscribes a loopback receiver, a customer
writes, the signed delivery arrives, the screen lists it with its attempt, and a replay sends it again; a view
still loading when the admin asked for another never paints over it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import RunningHub
from tests.browser.test_console import open_console
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def until_received(receiver: Receiver, count: int) -> None:
    for _ in range(1000):  # the deadline only keeps a broken test from hanging
        if len(receiver.accepted) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the receiver got {len(receiver.accepted)} of {count} deliveries")


async def test_an_admin_subscribes_a_receiver_sees_the_delivery_and_replays_it(hub: RunningHub, browser: Any) -> None:
    receiver = Receiver(secret="")
    await receiver.start()
    try:
        admin = await open_console(browser, hub, "admin")
        page = admin.page
        await page.get_by_role("button", name="Admin", exact=True).click()
        await page.get_by_role("tab", name="Outgoing webhooks").click()
        await expect(page.get_by_test_id("webhooks-empty")).to_be_visible()
        await page.get_by_test_id("webhook-new").click()
        dialog = page.locator("dialog[open]")
        await dialog.get_by_label("Id").fill("crm")
        await dialog.get_by_label("URL").fill(receiver.url)
        await dialog.get_by_label("message.created").check()
        await dialog.get_by_role("button", name="Create").click()
        secret = (await dialog.get_by_test_id("webhook-secret").text_content() or "").strip()
        assert secret.startswith("whsec_")
        receiver.secret = secret
        await dialog.get_by_role("button", name="Done").click()
        table = page.get_by_test_id("webhooks-out")
        await expect(table).to_contain_text("message.created")
        await expect(table).to_contain_text("active")

        await hub.say("+420600333444", "Is my order on its way?", name="Eva")
        await until_received(receiver, 1)
        assert receiver.accepted[0].data["message"]["text"] == "Is my order on its way?"

        await page.get_by_role("button", name="Deliveries of crm").click()
        deliveries = page.get_by_test_id("webhook-deliveries")
        await expect(deliveries.locator("tr[data-status=delivered]")).to_have_count(1)
        await expect(deliveries).to_contain_text(receiver.accepted[0].webhook_id)
        await deliveries.locator("summary").first.click()
        await expect(deliveries.locator("ol.attempts li").first).to_contain_text("200")
        refreshed = asyncio.Event()

        async def slow_refresh(route: Any) -> None:  # the replay's refresh of the list arrives after "Back"
            await asyncio.sleep(1.0)
            await route.continue_()
            refreshed.set()

        await page.route("**/api/v1/webhooks-out/crm/deliveries*", slow_refresh)
        await page.get_by_role("button", name=f"Replay {receiver.accepted[0].webhook_id}").click()
        await until_received(receiver, 2)
        assert receiver.bad_signatures == 0
        assert receiver.accepted[1].webhook_id == receiver.accepted[0].webhook_id  # the receiver can deduplicate
        await page.get_by_role("button", name="Back to webhooks").click()
        await expect(page.get_by_test_id("webhooks-out")).to_be_visible()
        await asyncio.wait_for(refreshed.wait(), 10)
        await page.wait_for_timeout(300)  # the late answer has been handled by now
        await expect(page.get_by_test_id("webhooks-out")).to_be_visible()
        await expect(page.get_by_test_id("webhook-deliveries")).to_have_count(0)
        assert admin.errors == []
    finally:
        await receiver.stop()


async def test_a_section_chosen_while_the_first_still_loads_stays_on_screen(hub: RunningHub, browser: Any) -> None:
    admin = await open_console(browser, hub, "admin")
    page = admin.page
    answered = asyncio.Event()

    async def slow_accounts(route: Any) -> None:  # the first section's list arrives after the admin chose another
        await asyncio.sleep(1.0)
        await route.continue_()
        answered.set()

    await page.route("**/api/v1/accounts*", slow_accounts)
    await page.get_by_role("button", name="Admin", exact=True).click()
    await page.get_by_role("tab", name="Outgoing webhooks").click()
    await expect(page.get_by_test_id("webhooks-empty")).to_be_visible()
    await asyncio.wait_for(answered.wait(), 10)
    await page.wait_for_timeout(300)  # the late answer has been handled by now
    await expect(page.get_by_test_id("webhooks-empty")).to_be_visible()
    await expect(page.get_by_role("heading", name="Channel accounts")).to_have_count(0)
    await expect(page.get_by_role("tab", name="Outgoing webhooks")).to_have_attribute("aria-selected", "true")
    assert admin.errors == []
