"""The CRM record pages in a real browser against a real hub: a contact's record opened from the Contacts
screen (edited, its conversation opened, and back again from the conversation's Contact widget) and a ticket's
page opened from the Tickets screen (its contact, its conversation, edited, a favourite, kept across a reload)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.browser.conftest import OLD_CUSTOMER, PASSWORDS, RunningHub
from tests.browser.test_console import WIDE, open_console

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def _seed(hub: RunningHub) -> tuple[int, int, int]:
    """The old customer paired with a contact, a ticket for them assigned to their (closed) conversation."""
    number, name = OLD_CUSTOMER
    async with aiohttp.ClientSession(base_url=hub.url, timeout=aiohttp.ClientTimeout(total=10)) as session:
        login = {"login": "admin", "password": PASSWORDS["admin"]}
        async with session.post("/api/v1/auth/login", json=login) as response:
            auth = {"Authorization": f"Bearer {(await response.json())['token']}"}
        async with session.get("/api/v1/identities", params={"q": number}, headers=auth) as found:
            identity = (await found.json())["items"][0]["id"]
        async with session.post(f"/api/v1/identities/{identity}/contact", json={"name": name}, headers=auth) as paired:
            contact = (await paired.json())["contact"]
            contact_id = int(contact["id"] if isinstance(contact, dict) else contact)
        async with session.get(f"/api/v1/contacts/{contact_id}/conversations", headers=auth) as listed:
            conversation = int((await listed.json())["items"][0]["id"])
        body = {"title": "Parcel lost in transit", "contact": contact_id}
        async with session.post("/api/v1/tickets", json=body, headers=auth) as created:
            ticket = int((await created.json())["id"])
        assign = {"ticket": ticket}
        async with session.post(f"/api/v1/conversations/{conversation}/ticket", json=assign, headers=auth) as done:
            assert done.status == 200, await done.text()
    return contact_id, conversation, ticket


async def _open_record(page: Any, name: str) -> Any:
    """The Contacts screen, a search for the old customer, and their record opened from the list."""
    await page.get_by_role("button", name="Contacts", exact=True).click()
    await page.get_by_label("Search contacts").fill("Stary")
    await page.get_by_role("link", name=f"Open the record of {name}").click()
    record = page.get_by_test_id("contact-page")
    await expect(record.get_by_role("heading", level=1)).to_have_text(name)
    return record


async def _screenshot(page: Any, path: Path) -> None:
    """The whole record: the console scrolls its main pane, not the page, so a taller window shows every section."""
    await page.set_viewport_size({**WIDE, "height": 950})
    await page.screenshot(path=str(path))
    await page.set_viewport_size(WIDE)


async def test_a_contacts_record_and_a_tickets_page(hub: RunningHub, browser: Any, screenshots: Path) -> None:
    number, name = OLD_CUSTOMER
    contact_id, conversation, ticket = await _seed(hub)
    admin = await open_console(browser, hub, "admin")
    page = admin.page

    # Contacts -> the contact's name opens the record: fields, channels, conversations, tickets
    record = await _open_record(page, name)
    await expect(page).to_have_url(re.compile(f"#contact/{contact_id}$"))
    await expect(record.get_by_test_id("contact-identities")).to_contain_text(number)
    await expect(record.get_by_test_id("contact-identities")).to_contain_text("wrote to us")
    await expect(record.get_by_role("button", name=f"Send a new message to {name} on WhatsApp")).to_be_visible()
    await expect(record.get_by_test_id("contact-tickets")).to_contain_text("Parcel lost in transit")

    # a refusal is shown in the hub's words, on its field; a good value is saved
    await record.get_by_label("E-mail").fill("not an address")
    await record.get_by_role("button", name="Save").click()
    await expect(record.get_by_role("alert")).to_contain_text("email")
    await expect(record.get_by_label("E-mail")).to_have_attribute("aria-invalid", "true")
    await record.get_by_label("E-mail").fill("")
    await record.get_by_label("Company").fill("Stary Transport")
    await record.get_by_role("button", name="Save").click()
    await expect(page.locator("#toasts")).to_contain_text("Contact saved.")
    await _screenshot(page, screenshots / "contact-record.png")
    await page.get_by_role("button", name="Contacts", exact=True).click()
    row = page.get_by_test_id("contacts-list").locator(".list-row", has_text=name)
    await expect(row).to_contain_text("Stary Transport")

    # its conversation opens on the conversation screen; the Contact widget leads back to the record
    await page.get_by_role("link", name=f"Open the record of {name}").click()
    await record.get_by_role("button", name=f"Open conversation #{conversation}").click()
    await expect(page.locator(".message-widget .history")).to_contain_text("Thanks, that is all.")
    # the line of the assigned ticket (the widget's ticket list, filled a moment later, has a link to it too)
    assigned = page.locator(".ticket-widget").get_by_role("paragraph").filter(has_text=f"Assigned: ticket #{ticket}")
    await expect(assigned.get_by_role("link", name=f"Open ticket #{ticket}")).to_be_visible()
    await page.get_by_role("link", name=f"Open the CRM record of {name}").click()
    await expect(record.get_by_role("heading", level=1)).to_have_text(name)

    # Tickets -> the title opens the ticket's page: its contact, its conversation, edited, a favourite
    await page.get_by_role("button", name="Tickets", exact=True).click()
    await page.get_by_label("Search tickets").fill("parcel")
    await page.get_by_test_id("tickets-list").get_by_role("link", name=re.compile("Parcel lost in transit")).click()
    ticket_page = page.get_by_test_id("ticket-page")
    await expect(ticket_page.get_by_role("heading", level=1)).to_have_text(f"#{ticket} Parcel lost in transit")
    await expect(ticket_page.get_by_role("link", name=f"Open the record of {name}")).to_be_visible()
    await expect(ticket_page.get_by_test_id("record-conversations")).to_contain_text(f"#{conversation}")
    channels = ticket_page.get_by_test_id("ticket-channels")
    await expect(channels.get_by_role("button", name=f"Send a new message to {name} on WhatsApp")).to_be_visible()
    await ticket_page.get_by_label("State").select_option("pending")
    await ticket_page.get_by_role("button", name="Save").click()
    await expect(page.locator("#toasts")).to_contain_text("Ticket saved.")
    await _screenshot(page, screenshots / "ticket-page.png")
    await ticket_page.get_by_role("button", name="Add to my favourites").click()
    favourite = ticket_page.get_by_role("button", name="Remove from my favourites")
    await expect(favourite).to_have_attribute("aria-pressed", "true")

    # the address names the page: a reload opens it again, as saved
    await page.reload()
    await expect(ticket_page.get_by_label("State")).to_have_value("pending")
    await expect(favourite).to_be_visible()
    assert admin.errors == []


async def test_an_agent_sees_why_a_conversation_on_a_record_does_not_open(hub: RunningHub, browser: Any) -> None:
    """A record lists every conversation of its contact; one the agent may not see (closed, never theirs) is refused
    by the hub with 403, and the page says so where the agent clicked instead of leaving them on a blank screen."""
    _, name = OLD_CUSTOMER
    contact_id, conversation, _ = await _seed(hub)
    alice = await open_console(browser, hub, "alice")
    page = alice.page

    record = await _open_record(page, name)
    conversations = record.locator("section", has=page.get_by_test_id("record-conversations"))
    await conversations.get_by_role("button", name=f"Open conversation #{conversation}").click()

    refusal = conversations.get_by_role("alert")
    await expect(refusal).to_contain_text(f"Conversation #{conversation}:")
    await expect(page).to_have_url(re.compile(f"#contact/{contact_id}$"))
    await expect(record.get_by_role("heading", level=1)).to_have_text(name)
    # the browser logs the refused request itself; nothing else went wrong on the page
    refused = [e for e in alice.errors if "status of 403" in e]
    assert len(refused) == 1, alice.errors
    assert [e for e in alice.errors if e not in refused] == []
