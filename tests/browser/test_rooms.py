"""Co-browsing rooms in real Chromium with fake camera and microphone: the agent and the customer
see each other's video through WebRTC, signalled through the hub; an expired link and a third party
are refused."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import CHROMIUM, LAUNCH_ARGS, PASSWORDS, RunningHub
from tests.browser.test_console import TIMEOUT, open_console, set_presence

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MEDIA_ARGS = [
    "--use-fake-ui-for-media-stream",  # camera and microphone prompts answered "allow"
    "--use-fake-device-for-media-stream",  # a generated test pattern and tone instead of real devices
    "--auto-select-desktop-capture-source=Entire screen",
]


@pytest.fixture
async def media_browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS + MEDIA_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def bearer(hub: RunningHub, login: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{hub.url}/api/v1/auth/login", json={"login": login, "password": PASSWORDS[login]}) as answer,
    ):
        assert answer.status == 200
        return str((await answer.json())["token"])


async def conversation_with(hub: RunningHub, browser: Any, customer: str, name: str) -> tuple[Page, int]:
    """Alice's console with the customer's conversation open (offered, accepted)."""
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")
    await hub.say(customer, "Can you show me where the settings are?", name=name)
    await page.locator(".offer-card").get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("tab", name=re.compile(name))).to_be_visible()
    conversation_id = int(await page.locator(".conversation").get_attribute("data-conversation") or "0")
    return page, conversation_id


async def create_room(hub: RunningHub, conversation_id: int) -> dict[str, Any]:
    token = await bearer(hub, "alice")
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
        session.post(f"{hub.url}/api/v1/conversations/{conversation_id}/rooms") as answer,
    ):
        assert answer.status == 201, await answer.text()
        return dict(await answer.json())


async def remote_video_plays(page: Page) -> None:
    """Wait until the remote <video> shows frames of a live track (no fixed delay: Playwright polls)."""
    await page.wait_for_function(
        """() => {
            const v = document.getElementById("remote-video");
            const track = v && v.srcObject && v.srcObject.getVideoTracks()[0];
            return Boolean(track && track.readyState === "live" && !v.paused && v.readyState >= 2 && v.videoWidth > 0);
        }""",
        timeout=TIMEOUT,
    )


async def test_agent_and_customer_see_each_other_and_a_third_party_is_refused(
    hub: RunningHub, media_browser: Any, screenshots: Path
) -> None:
    console, conversation_id = await conversation_with(hub, media_browser, "+420600333444", "Eva Dvorak")
    room = await create_room(hub, conversation_id)
    assert room["warnings"] == []
    # the link went out as a reply, which the provider (the emulator) confirms like any other
    reply = console.locator(".message-widget .msg-out").last
    await expect(reply).to_contain_text(room["customer_url"])
    await expect(reply.locator("[data-testid=tick]")).to_have_attribute("data-state", re.compile("^(delivered|read)$"))

    # the agent's room, in a tab of the console's (logged-in) browser context
    agent = await console.context.new_page()
    await agent.goto(room["agent_url"])
    await expect(agent.locator("#room-status")).to_contain_text("Waiting for the customer")
    # the customer: no account, another browser context, the link they were sent
    customer_context = await media_browser.new_context(viewport={"width": 900, "height": 620})
    customer = await customer_context.new_page()
    await customer.goto(room["customer_url"])

    await agent.get_by_role("button", name="Camera").click()
    await customer.get_by_role("button", name="Camera").click()
    await customer.get_by_role("button", name="Microphone").click()
    await expect(agent.get_by_role("button", name="Camera")).to_have_attribute("aria-pressed", "true")
    await remote_video_plays(agent)
    await remote_video_plays(customer)
    await expect(agent.locator("body")).to_have_attribute("data-state", "connected")
    await expect(agent.get_by_role("button", name="Unmute")).to_be_visible()  # the customer's microphone
    await customer.screenshot(path=str(screenshots / "room-customer.png"))

    # desktop sharing replaces the camera in the same video sender; the customer keeps seeing a live track
    local_label = "document.getElementById('local-video').srcObject.getVideoTracks()[0].label"
    camera = await agent.evaluate(local_label)
    share = agent.get_by_role("button", name="Share screen")
    await share.click()
    await expect(share).to_have_attribute("aria-pressed", "true")
    assert await agent.evaluate(local_label) != camera  # the screen, not the camera
    await remote_video_plays(customer)
    await share.click()  # stop sharing: back to the camera
    await expect(share).to_have_attribute("aria-pressed", "false")
    assert await agent.evaluate(local_label) == camera

    # a third party with the same link is refused while the customer is in the room
    intruder_context = await media_browser.new_context()
    intruder = await intruder_context.new_page()
    await intruder.goto(room["customer_url"])
    await expect(intruder.locator("body")).to_have_attribute("data-state", "refused")
    await expect(intruder.locator("#room-status")).to_contain_text("cannot join")

    # the customer leaves: the agent is told
    await customer.get_by_role("button", name="Leave").click()
    await expect(customer.locator("#room-status")).to_contain_text("You left")
    await expect(agent.locator("#room-status")).to_contain_text("The other side left")


async def test_an_expired_link_is_refused(hub: RunningHub, media_browser: Any) -> None:
    console, conversation_id = await conversation_with(hub, media_browser, "+420600555666", "Karel Maly")
    room = await create_room(hub, conversation_id)
    database = re.search(r'url = "sqlite:///(.+?)"', hub.config.read_text(encoding="utf-8"))
    assert database is not None
    with sqlite3.connect(database.group(1)) as connection:  # the hour has passed
        connection.execute("UPDATE rooms SET expires_at = '2000-01-01 00:00:00.000000' WHERE id = ?", (room["id"],))
    customer = await (await media_browser.new_context()).new_page()
    answer = await customer.goto(room["customer_url"])
    assert answer is not None
    assert answer.status == 410
    await expect(customer.get_by_role("heading")).to_have_text("This link has expired")
    agent = await console.context.new_page()
    answer = await agent.goto(room["agent_url"])
    assert answer is not None
    assert answer.status == 410


async def test_the_co_browsing_widget_opens_the_room_beside_the_conversation(
    hub: RunningHub, media_browser: Any, screenshots: Path
) -> None:
    console, _ = await conversation_with(hub, media_browser, "+420600777999", "Ivana Mala")
    widget = console.locator(".rooms-widget")
    await widget.get_by_role("button", name="Create video room").click()
    await expect(widget.get_by_role("status")).to_have_text("The customer was sent the link.")
    link = await widget.get_by_label("Customer's link").input_value()
    assert "/rooms/" in link
    assert "token=" in link
    room = widget.frame_locator(".room-frame")
    await expect(room.locator("#room-status")).to_contain_text("Waiting for the customer")

    customer = await (await media_browser.new_context()).new_page()
    await customer.goto(link)
    await customer.get_by_role("button", name="Camera").click()
    await room.get_by_role("button", name="Camera").click()
    await remote_video_plays(customer)
    frame = next(f for f in console.frames if "/rooms/" in f.url)
    await frame.wait_for_function(
        """() => {
            const v = document.getElementById("remote-video");
            return Boolean(v && v.srcObject && !v.paused && v.readyState >= 2 && v.videoWidth > 0);
        }""",
        timeout=TIMEOUT,
    )
    await console.evaluate("document.getElementById('toasts').replaceChildren()")
    await widget.screenshot(path=str(screenshots / "rooms-widget.png"))
