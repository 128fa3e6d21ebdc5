"""The agent desk as the manual describes it, in a real browser against a real hub (ADR 0030).

Closing while a colleague is invited, the sound of a new message off screen, the side panel's widget
layout, "Send a new message" from the contact and the ticket widgets, and "Start chat" without a message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import OLD_CUSTOMER, PASSWORDS, RunningHub
from tests.browser.test_console import open_console, set_presence

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JANA = ("+420600111222", "Jana Novak")


async def accept_new_customer(hub: RunningHub, page: Page, text: str = "Hello, my parcel did not arrive.") -> None:
    """Jana writes; the ready agent accepts the offer and sees the conversation."""
    number, name = JANA
    await hub.say(number, text, name=name)
    offer = page.locator(".offer-card")
    await expect(offer).to_contain_text(name)
    await offer.get_by_role("button", name="Accept").click()
    await expect(page.locator(".message-widget .history")).to_contain_text(text)


async def sounds(page: Page) -> list[dict[str, Any]]:
    """The notification sounds the console played (its window.channelhubSounds hook)."""
    return list(await page.evaluate("window.channelhubSounds || []"))


async def played(page: Page, reason: str, conversation_id: str | None) -> bool:
    """Whether the console played the sound for ``reason`` in that conversation (it may take a moment)."""
    for _ in range(100):
        if any(s["reason"] == reason and s["conversation"] == conversation_id for s in await sounds(page)):
            return True
        await page.wait_for_timeout(100)
    return False


async def test_a_colleague_closing_leaves_the_chat_with_the_other_agent_and_new_messages_sound(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    bob = await open_console(browser, hub, "bob")
    page = alice.page
    await set_presence(page, "ready")
    await accept_new_customer(hub, page)
    conversation_id = await page.locator(".conversation").get_attribute("data-conversation")
    widget = page.locator(".message-widget")

    # invite bob: the conversation opens on his side too
    await widget.get_by_role("button", name="Invite").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("Agent login").fill("bob")
    await dialog.get_by_role("button", name="Invite").click()
    await expect(dialog).to_be_hidden()
    bob_tab = bob.page.get_by_role("tab", name=re.compile(JANA[1]))
    await expect(bob_tab).to_be_visible()

    # bob closes with a status: only his part ends; the toast says the colleague carries on
    await bob_tab.click()
    bob_widget = bob.page.locator(".message-widget")
    await bob_widget.get_by_test_id("status").select_option("spam")
    await bob_widget.get_by_role("button", name="Close").click()
    await expect(bob_tab).to_have_count(0)
    await expect(bob.page.locator("#toasts")).to_contain_text("your colleague carries on")
    await expect(widget.locator(".history")).to_contain_text("closed their part with status spam")
    await expect(page.get_by_role("tab", name=re.compile(JANA[1]))).to_be_visible()

    # with sound on, a new customer message in a conversation not on screen plays the sound
    sound = page.get_by_role("button", name="Sound")
    if await sound.get_attribute("aria-pressed") != "true":
        await sound.click()
    await expect(sound).to_have_attribute("aria-pressed", "true")
    await page.get_by_role("button", name="Desk", exact=True).click()
    await hub.say(JANA[0], "Is anyone still there?")
    tab = page.get_by_role("tab", name=re.compile(JANA[1]))
    await expect(tab).to_have_class(re.compile("flash"))
    assert await played(page, "message", conversation_id)
    assert all(s["reason"] != "message" for s in await sounds(bob.page))  # bob's sound is off, and he left

    # the message landed in the same conversation, still alice's
    await tab.click()
    await expect(widget.locator(".history")).to_contain_text("Is anyone still there?")
    await page.screenshot(path=str(screenshots / "colleague-closed-their-part.png"))

    # the last participant's close closes it
    await widget.get_by_test_id("status").select_option("resolved")
    await widget.get_by_role("button", name="Close").click()
    await expect(page.locator("#toasts")).to_contain_text("Conversation closed")
    assert alice.errors == []
    assert bob.errors == []


async def test_an_agent_chooses_and_orders_the_side_panel_widgets_and_it_is_remembered(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")
    await accept_new_customer(hub, page)
    side = page.locator(".side-panel")
    order = side.locator(":scope > section.widget[data-widget]")

    async def shown() -> list[str | None]:
        return [await w.get_attribute("data-widget") for w in await order.all()]

    await expect(order.first).to_have_attribute("data-widget", "contact")
    default = await shown()
    assert default[:3] == ["contact", "activities", "ticket"]  # then the other registered widgets

    # hide the past conversations, move the ticket above the contact
    await side.get_by_test_id("layout-button").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("Show Past conversations").uncheck()
    await dialog.get_by_role("button", name="Move Ticket up").click()
    await dialog.get_by_role("button", name="Move Ticket up").click()
    await page.screenshot(path=str(screenshots / "widget-layout.png"))
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    expected = ["ticket", "contact", *default[3:]]
    await expect(order).to_have_count(len(expected))
    assert await shown() == expected

    # remembered by the hub for this agent: a new session shows the same layout
    await page.reload()
    await page.get_by_role("tab", name=re.compile(JANA[1])).click()
    await expect(order).to_have_count(len(expected))
    assert await shown() == expected
    layout = await page.evaluate("fetch('/api/v1/me/layout').then((r) => r.json())")
    assert layout["widgets"] == expected
    assert alice.errors == []


async def test_send_a_new_message_from_the_contact_and_the_ticket_and_start_a_chat_without_one(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")
    await accept_new_customer(hub, page)

    # pair a CRM contact; the contact widget offers "Send a new message" with Jana's identity preselected
    contact = page.locator(".contact-widget")
    await contact.get_by_role("button", name="Add new contact").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_role("button", name="Create and pair").click()
    await expect(dialog).to_be_hidden()
    await contact.get_by_test_id("contact-new-message").click()
    dialog = page.locator("dialog[data-dialog=outbound]")
    identities = dialog.get_by_test_id("outbound-identities")
    await expect(identities).to_contain_text(JANA[0])
    await expect(identities.get_by_role("radio")).to_be_checked()
    await expect(dialog.locator(".chosen")).to_contain_text(JANA[1])
    await expect(dialog.get_by_test_id("outbound-channel")).to_have_value("whatsapp")
    await expect(dialog.get_by_test_id("outbound-allowed")).to_contain_text("Free text until")
    await dialog.get_by_test_id("outbound-restrictions").locator("summary").click()
    await expect(dialog.get_by_test_id("outbound-restrictions")).to_contain_text("customer-service window")
    await page.screenshot(path=str(screenshots / "send-new-message-from-contact.png"))
    # "Start chat" with no message: Jana's open conversation is alice's, so it simply opens it
    await dialog.get_by_role("button", name="Start chat").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator(".message-widget .history")).to_contain_text("my parcel did not arrive")

    # the ticket widget: a new ticket for this contact, then "Send a new message" from it
    tickets = page.locator(".ticket-widget")
    await tickets.get_by_role("button", name="New ticket").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("Title").fill("Jana Novak: parcel lost")
    await dialog.get_by_role("button", name="Create").click()
    await expect(dialog).to_be_hidden()
    await expect(tickets.locator(".assigned-ticket")).to_contain_text("parcel lost")
    await tickets.get_by_test_id("ticket-new-message").click()
    dialog = page.locator("dialog[data-dialog=outbound]")
    await expect(dialog.get_by_test_id("outbound-identities").get_by_role("radio")).to_be_checked()
    await expect(dialog.locator(".chosen")).to_contain_text(JANA[0])
    await dialog.get_by_role("button", name="Close", exact=True).click()

    # "Start chat" without a message for a customer whose window closed: no error, the chat opens,
    # and the window rules wait for the first message (the badge says so in the refusal code's words)
    number, name = OLD_CUSTOMER
    await page.get_by_role("button", name="+ WhatsApp").click()
    dialog = page.locator("dialog[data-dialog=outbound]")
    await expect(dialog.get_by_label("Message", exact=True)).to_have_attribute("placeholder", re.compile("optional"))
    await dialog.get_by_label("Customer", exact=True).fill("Petr")
    await dialog.get_by_role("option", name=re.compile(name)).click()
    rule = dialog.get_by_test_id("outbound-rule")
    await expect(rule).to_have_attribute("data-rule", "window_closed")
    await expect(rule).to_contain_text("customer-service window is closed")
    await dialog.get_by_role("button", name="Start chat").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("tab", name=re.compile(name))).to_be_visible()
    badge = page.get_by_test_id("window-state")
    await expect(badge).to_have_attribute("data-rule", "window_closed")
    await expect(badge).to_contain_text("Templates only")
    await page.screenshot(path=str(screenshots / "start-chat-without-message.png"))
    assert [s for s in await hub.sent() if number in str(s.get("recipient"))] == []  # nothing was sent
    assert alice.errors == []


async def test_logging_out_with_an_offer_open_passes_it_to_a_colleague_and_leaves_the_agent_offline(
    hub: RunningHub, browser: Any
) -> None:
    """An agent who logs out is no longer at the desk: the offer in front of them goes to a ready colleague at
    once (not after the offer time, with them paused for missing it), and they come back offline."""
    alice = await open_console(browser, hub, "alice")
    bob = await open_console(browser, hub, "bob")
    page = alice.page
    await set_presence(page, "ready")
    number, name = JANA
    await hub.say(number, "Is anyone there?", name=name)
    await expect(page.locator(".offer-card")).to_contain_text(name)
    await set_presence(bob.page, "ready")

    await page.wait_for_load_state("networkidle")
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()

    # the queue's offer time is two minutes: the colleague's offer comes well within the test's timeout
    bob_offer = bob.page.locator(".offer-card")
    await expect(bob_offer).to_contain_text(name)
    await bob_offer.get_by_role("button", name="Accept").click()
    await expect(bob.page.locator(".message-widget .history")).to_contain_text("Is anyone there?")

    again = await open_console(browser, hub, "alice")
    await expect(again.page.get_by_test_id("presence-badge")).to_contain_text("Offline")
    assert alice.errors == []
    assert bob.errors == []
    assert again.errors == []


async def test_a_message_offered_to_a_colleague_is_in_the_waiting_list_and_can_be_accepted_from_there(
    hub: RunningHub, browser: Any
) -> None:
    """The manual: "You may be able to answer messages even if you don't receive a black notification (e.g.
    ... because the message is being routed to one of your colleagues). Click the Waiting activities button
    and Accept the message." """
    alice = await open_console(browser, hub, "alice")
    bob = await open_console(browser, hub, "bob")
    await set_presence(alice.page, "ready")
    number, name = JANA
    await hub.say(number, "Can somebody help?", name=name)
    await expect(alice.page.locator(".offer-card")).to_contain_text(name)

    # bob is not ready and gets no offer, but the message is among his waiting activities, marked as offered
    page = bob.page
    await expect(page.locator(".offer-card")).to_have_count(0)
    await expect(page.get_by_test_id("waiting-count")).to_have_text("1")
    await page.get_by_role("button", name=re.compile("^Waiting")).click()
    dialog = page.locator("dialog[open]")
    row = dialog.locator(".list-row", has_text=name)
    await expect(row).to_contain_text("offered")
    # the open list follows the queue: a customer who starts waiting now appears without reopening it
    await hub.say("+420600111333", "Me too, please", name="Petr Dvorak")
    await expect(dialog.locator(".list-row", has_text="Petr Dvorak")).to_be_visible()
    await row.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("tab", name=re.compile(name))).to_be_visible()
    await expect(page.locator(".message-widget .history")).to_contain_text("Can somebody help?")
    # the colleague's offer of it is withdrawn
    await expect(alice.page.locator(".offer-card", has_text=name)).to_have_count(0)
    assert alice.errors == []
    assert bob.errors == []


async def _as(hub: RunningHub, login: str) -> tuple[aiohttp.ClientSession, dict[str, str]]:
    session = aiohttp.ClientSession(base_url=hub.url, timeout=aiohttp.ClientTimeout(total=10))
    async with session.post("/api/v1/auth/login", json={"login": login, "password": PASSWORDS[login]}) as response:
        token = (await response.json())["token"]
    return session, {"Authorization": f"Bearer {token}"}


async def test_send_a_new_message_from_the_contacts_screen(hub: RunningHub, browser: Any) -> None:
    """The manual's "From the CRM module": open Contacts in the main menu, find the contact, click the channel
    next to their name, and the Send message window opens for them; a contact who never wrote has no button."""
    number, name = OLD_CUSTOMER
    session, auth = await _as(hub, "admin")
    async with session:
        async with session.get("/api/v1/identities", params={"q": number, "contacted": "1"}, headers=auth) as found:
            identity = (await found.json())["items"][0]["id"]
        body = {"name": name, "company": "Stary Transport"}
        async with session.post(f"/api/v1/identities/{identity}/contact", json=body, headers=auth) as paired:
            assert paired.status in (200, 201), await paired.text()
        async with session.post("/api/v1/contacts", json={"name": "Petra Stara"}, headers=auth) as created:
            assert created.status == 201, await created.text()

    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await page.get_by_role("button", name="Contacts", exact=True).click()
    await page.get_by_label("Search contacts").fill("Star")
    rows = page.get_by_test_id("contacts-list")
    petr = rows.locator(".list-row", has_text=name)
    await expect(petr).to_contain_text("Stary Transport")
    await expect(rows.locator(".list-row", has_text="Petra Stara")).to_contain_text("no channel")
    await petr.get_by_role("button", name=f"Send a new message to {name} on WhatsApp").click()

    dialog = page.locator("dialog[data-dialog=outbound]")
    await expect(dialog.get_by_test_id("outbound-identities").get_by_role("radio")).to_be_checked()
    await expect(dialog.locator(".chosen")).to_contain_text(number)
    await expect(dialog.get_by_test_id("outbound-channel")).to_have_value("whatsapp")
    await dialog.get_by_role("button", name="Start chat").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("tab", name=re.compile(name))).to_be_visible()
    assert alice.errors == []


async def test_send_a_new_message_from_the_tickets_screen(hub: RunningHub, browser: Any) -> None:
    """The manual's "From a ticket": open Tickets in the main menu, find the ticket, and the Send message window
    opens for its contact's number that wrote to us."""
    number, name = OLD_CUSTOMER
    session, auth = await _as(hub, "admin")
    async with session:
        async with session.get("/api/v1/identities", params={"q": number, "contacted": "1"}, headers=auth) as found:
            identity = (await found.json())["items"][0]["id"]
        async with session.post(f"/api/v1/identities/{identity}/contact", json={"name": name}, headers=auth) as paired:
            contact = (await paired.json())["contact"]
            contact_id = contact["id"] if isinstance(contact, dict) else contact
        body = {"title": "Parcel lost in transit", "contact": contact_id}
        async with session.post("/api/v1/tickets", json=body, headers=auth) as created:
            assert created.status == 201, await created.text()
            ticket = (await created.json())["id"]
        async with session.post("/api/v1/tickets", json={"title": "Parcel without a contact"}, headers=auth) as other:
            assert other.status == 201, await other.text()

    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await page.get_by_role("button", name="Tickets", exact=True).click()
    await page.get_by_label("Search tickets").fill("parcel")
    rows = page.get_by_test_id("tickets-list")
    await expect(rows.locator(".list-row", has_text="without a contact")).to_contain_text("no contact")
    row = rows.locator(".list-row", has_text="lost in transit")
    await expect(row).to_contain_text(name)
    await row.get_by_role("button", name=f"Send a new message about ticket #{ticket}").click()

    dialog = page.locator("dialog[data-dialog=outbound]")
    await expect(dialog.get_by_test_id("outbound-identities").get_by_role("radio")).to_be_checked()
    await expect(dialog.locator(".chosen")).to_contain_text(number)
    assert alice.errors == []


async def test_a_past_conversation_opens_from_the_past_conversations_widget(hub: RunningHub, browser: Any) -> None:
    """The manual's Activities tab: "view the contact's past activities" and "Open activity detail". The earlier
    conversation opens where the history already runs on into it, brought into view."""
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")
    await accept_new_customer(hub, page, "Where is my parcel?")
    first = await page.locator(".conversation").get_attribute("data-conversation")
    contact = page.locator(".contact-widget")
    await contact.get_by_role("button", name="Add new contact").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_role("button", name="Create and pair").click()
    await expect(dialog).to_be_hidden()
    widget = page.locator(".message-widget")
    await widget.get_by_test_id("status").select_option("resolved")
    await widget.get_by_role("button", name="Close").click()
    await expect(page.get_by_role("tab", name=re.compile(JANA[1]))).to_have_count(0)

    await accept_new_customer(hub, page, "It came, thank you.")
    past = page.locator(".widget-activities")
    await past.get_by_role("button", name=f"Open conversation #{first}").click()
    start = widget.locator(".history .shown-earlier")
    await expect(start).to_have_text(f"Earlier conversation #{first}")
    await expect(start).to_be_in_viewport()
    assert alice.errors == []
