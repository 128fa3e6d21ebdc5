"""The console in a real browser against a real hub and the provider emulators.

Each test follows what agents and admins do, and takes the screenshots of the
main screens; with ``CHANNELHUB_UPDATE_SCREENSHOTS=1`` they go into
docs/screenshots (committed; the README shows one), otherwise into a temporary
directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import OLD_CUSTOMER, PASSWORDS, RunningHub

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}
TIMEOUT = 20_000  # ms: offers and receipts travel hub -> emulator -> hub
expect.set_options(timeout=TIMEOUT)


class Session:
    """One person in one browser context, with what their console printed."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        # the browser logs every 4xx answer; the refusals these tests provoke on purpose are expected
        if re.search(r"status of (409|422)\b", text):
            return
        self.errors.append(text)


async def open_console(
    browser: Any, hub: RunningHub, login: str, viewport: dict[str, int] = WIDE, *, timezone_id: str | None = None
) -> Session:
    """A console logged in as ``login``; ``timezone_id`` (an IANA zone) is the browser's own, where it matters."""
    options: dict[str, Any] = {"timezone_id": timezone_id} if timezone_id is not None else {}
    context = await browser.new_context(viewport=viewport, base_url=hub.url, **options)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT)
    session = Session(page)
    await page.goto("/")
    await page.get_by_label("Login").fill(login)
    await page.get_by_label("Password").fill(PASSWORDS[login])
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator(".topbar")).to_be_visible()
    return session


async def set_presence(page: Page, state: str, reason: str | None = None) -> None:
    await page.get_by_test_id("presence").select_option(state)
    if state == "paused":
        await page.get_by_label("Pause reason").fill(reason or "Break")
        await page.get_by_role("button", name="Set", exact=True).click()
    expected = {"ready": "Ready", "offline": "Offline", "paused": "Paused"}[state]
    # shown only once the hub confirmed it
    await expect(page.get_by_test_id("presence-badge")).to_contain_text(expected)


async def test_customer_writes_agent_answers_hands_off_and_closes(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    bob = await open_console(browser, hub, "bob")
    page = alice.page
    await set_presence(page, "ready")

    # a customer writes on WhatsApp -> the offer appears top right
    await hub.say("+420600111222", "Hello, my parcel did not arrive.", name="Jana Novak")
    offer = page.locator(".offer-card")
    await expect(offer).to_be_visible()
    await expect(offer).to_contain_text("Jana Novak")
    await expect(offer).to_contain_text("100 Support")
    await expect(offer.locator(".countdown")).to_contain_text("Answer within")
    await page.screenshot(path=str(screenshots / "offer.png"))

    # accept -> a tab labelled with the customer's name and the message widget
    await offer.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("tab", name=re.compile("Jana Novak"))).to_be_visible()
    widget = page.locator(".message-widget")
    await expect(widget.locator(".widget-head")).to_contain_text("100")
    await expect(widget.locator(".widget-head")).to_contain_text("Support")
    await expect(widget.locator(".history")).to_contain_text("my parcel did not arrive")
    await expect(page.get_by_test_id("window-state")).to_contain_text("Free text until")

    # the contact panel: add a new CRM contact for this customer
    panel = page.locator(".contact-widget")
    await panel.get_by_role("button", name="Add new contact").click()
    dialog = page.locator("dialog[open]")
    await expect(dialog.get_by_label("Name")).to_have_value("Jana Novak")
    await dialog.get_by_label("Company").fill("Novak Logistics")
    await dialog.get_by_role("button", name="Create and pair").click()
    await expect(dialog).to_be_hidden()
    await expect(panel).to_contain_text("Novak Logistics")

    # reply with a template: previewed, then sent; the tick turns to delivered
    await widget.get_by_label("Template").select_option("greeting")
    await expect(page.get_by_test_id("template-rendered")).to_contain_text("How can I help you today?")
    await widget.get_by_role("button", name="Send template").click()
    tick = widget.locator(".msg-out [data-testid=tick]").last
    await expect(tick).to_have_attribute("data-state", re.compile("^(delivered|read)$"))
    await expect(widget.locator(".msg-out").last).to_contain_text("How can I help you today?")

    # a free-text reply: Enter sends, Shift+Enter is a new line
    box = widget.get_by_label("Message", exact=True)
    await box.fill("We are looking into it.")
    await box.press("Shift+Enter")
    await box.press_sequentially("One moment please.")
    await box.press("Enter")
    await expect(widget.locator(".msg-out .text").last).to_have_text("We are looking into it.\nOne moment please.")
    await expect(box).to_have_value("")

    # mark important (shown pressed only once the hub answered) and assign a new ticket
    important = widget.get_by_role("button", name="★ Important")
    await important.click()
    await expect(important).to_have_attribute("aria-pressed", "true")
    tickets = page.locator(".ticket-widget")
    await tickets.get_by_role("button", name="New ticket").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("Title").fill("Jana Novak: parcel lost")
    await dialog.get_by_role("button", name="Create").click()
    await expect(dialog).to_be_hidden()
    await expect(tickets.locator(".assigned-ticket")).to_contain_text("parcel lost")
    await expect(widget.locator(".history")).to_contain_text("Ticket")
    await page.screenshot(path=str(screenshots / "conversation.png"))

    # another screen is shown: a new message makes the tab flash
    await page.get_by_role("button", name="Desk", exact=True).click()
    await hub.say("+420600111222", "Any news?")
    tab = page.get_by_role("tab", name=re.compile("Jana Novak"))
    await expect(tab).to_have_class(re.compile("flash"))
    await tab.click()
    await expect(tab).not_to_have_class(re.compile("flash"))
    await expect(widget.locator(".history")).to_contain_text("Any news?")

    # invite a second agent (a second browser context): the conversation opens on their side
    await widget.get_by_role("button", name="Invite").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("Agent login").fill("bob")
    await dialog.get_by_role("button", name="Invite").click()
    await expect(dialog).to_be_hidden()
    await expect(widget.locator(".history")).to_contain_text("invited")
    await expect(bob.page.get_by_role("tab", name=re.compile("Jana Novak"))).to_be_visible()

    # transfer to a queue; alice pauses first so that the other agent gets the offer
    await set_presence(page, "paused", "Lunch")
    await set_presence(bob.page, "ready")
    await widget.get_by_role("button", name="Transfer").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_role("searchbox").fill("sales")
    await dialog.get_by_label(re.compile("200 Sales")).check()
    await dialog.get_by_role("button", name="Transfer").click()
    await expect(page.get_by_role("tab", name=re.compile("Jana Novak"))).to_have_count(0)

    # the other agent accepts the offer
    bob_offer = bob.page.locator(".offer-card")
    await expect(bob_offer).to_be_visible()
    await expect(bob_offer).to_contain_text("Sales")
    await bob_offer.get_by_role("button", name="Accept").click()
    bob_widget = bob.page.locator(".message-widget")
    await expect(bob_widget.locator(".widget-head")).to_contain_text("Sales")
    await expect(bob_widget.locator(".history")).to_contain_text("my parcel did not arrive")

    # close without a status is refused with the hub's reason; with a status it closes
    await bob_widget.get_by_role("button", name="Close").click()
    refusal = bob_widget.locator(".bottom-bar .error-text")
    await expect(refusal).to_be_visible()
    await expect(refusal).not_to_be_empty()
    await expect(bob.page.get_by_role("tab", name=re.compile("Jana Novak"))).to_be_visible()
    statuses = bob_widget.get_by_test_id("status")
    await expect(statuses).to_have_attribute("aria-invalid", "true")
    await statuses.select_option("resolved")
    await bob_widget.get_by_role("button", name="Close").click()
    await expect(bob.page.get_by_role("tab", name=re.compile("Jana Novak"))).to_have_count(0)
    await expect(bob.page.locator("#toasts")).to_contain_text("closed")

    assert alice.errors == []
    assert bob.errors == []


async def test_new_message_outside_the_window_is_refused_then_sent_as_a_template(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    number, name = OLD_CUSTOMER
    await page.get_by_role("button", name="+ WhatsApp").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("Customer", exact=True).fill("Petr")
    await dialog.get_by_role("option", name=re.compile(name)).click()
    await expect(dialog.get_by_test_id("outbound-allowed")).to_contain_text("Templates only")

    # the agent insists on free text: the hub refuses and offers what is allowed instead
    await dialog.get_by_label("Text", exact=True).check()
    await dialog.get_by_label("Message", exact=True).fill("Hello again, any news?")
    await dialog.get_by_label("Status", exact=True).select_option("resolved")
    await dialog.get_by_role("button", name="Send and close").click()
    await expect(dialog.locator(".error-text").first).to_contain_text(re.compile("window|template", re.I))
    alternative = dialog.get_by_role("button", name="Use template order_update")
    await expect(alternative).to_be_visible()
    await page.screenshot(path=str(screenshots / "send-new-message.png"))

    # take the alternative: the approved template, with its variables
    await alternative.click()
    await expect(dialog.get_by_label("Template to send")).to_have_value("order_update")
    await dialog.get_by_label("name", exact=True).fill("Petr")
    await dialog.get_by_label("order", exact=True).fill("A-2001")
    await dialog.get_by_label("status", exact=True).fill("shipped")
    await dialog.get_by_label("eta", exact=True).fill("2026-12-01")
    await dialog.get_by_role("button", name="Send and close").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toasts")).to_contain_text("sent")

    # the provider received the approved template (Twilio ContentSid), not free text
    for _ in range(50):
        sent = [s for s in await hub.sent() if number in str(s.get("recipient"))]
        if sent:
            break
        await page.wait_for_timeout(200)
    assert sent, "nothing reached the provider"
    assert "HX0123456789abcdef0123456789abcdef" in str(sent[-1])

    # the customer answers: the new conversation's history runs on into the earlier ones
    await set_presence(page, "ready")
    await hub.say(number, "Thanks for the update!", name=name)
    await page.locator(".offer-card").get_by_role("button", name="Accept").click()
    history = page.locator(".message-widget .history")
    await expect(history).to_contain_text("Thanks for the update!")
    await expect(history).to_contain_text("your order A-2001 is shipped")
    await expect(history.get_by_test_id("conversation-divider").first).to_contain_text("Earlier conversation")
    assert alice.errors == []


async def test_admin_edits_a_template_and_sees_the_preview_and_the_overview(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    admin = await open_console(browser, hub, "admin")
    page = admin.page
    await page.get_by_role("button", name="Templates", exact=True).click()
    await page.get_by_role("button", name=re.compile("^greeting")).click()
    body = page.get_by_label("Body (Jinja)")
    await expect(body).to_have_value(re.compile("How can I help you today"))

    # immediate validation of the draft, before saving
    await body.fill("Hello {{ customer }}, how can I help?")
    await expect(page.get_by_test_id("template-validation")).to_contain_text("not a declared variable")
    await body.fill(
        "Hello {{ contact.name | default('there') }}, this is {{ agent.display_name }}. "
        "How can I help you today? Have a nice day."
    )
    await expect(page.get_by_test_id("template-validation")).to_contain_text("No problem found")
    await expect(page.get_by_test_id("template-draft")).to_contain_text("Have a nice day.")

    # saved: a new version, rendered by the hub, per channel, with history and diff
    await page.get_by_role("button", name="Save new version").click()
    await expect(page.get_by_test_id("template-preview")).to_contain_text("Have a nice day.")
    await expect(page.locator(".history-box")).to_contain_text("v2")
    await page.get_by_label("Preview channel").select_option("viber")
    await expect(page.get_by_test_id("template-preview")).not_to_contain_text("Have a nice day.")
    await page.get_by_label("Preview channel").select_option("whatsapp")
    await expect(page.get_by_test_id("template-preview")).to_contain_text("Have a nice day.")
    await page.get_by_role("button", name="Show diff").click()
    await expect(page.get_by_test_id("template-diff")).to_contain_text("+Hello {{ contact.name | default('there') }}")
    await page.locator("#main").evaluate("main => main.scrollTo(0, 0)")
    await page.screenshot(path=str(screenshots / "template-editor.png"))

    # restore the first version: it becomes the current one (v3)
    await page.locator(".history-box li", has_text="v1").get_by_role("button", name="Restore").click()
    await expect(page.locator(".history-box")).to_contain_text("v3")
    await expect(body).to_have_value(re.compile("How can I help you today\\?$"))

    # the supervisor overview: per queue the waiting count and agents, live
    await page.get_by_role("button", name="Overview", exact=True).click()
    overview = page.get_by_test_id("overview")
    await expect(overview).to_contain_text("100 Support")
    await expect(page.get_by_test_id("waiting-support")).to_have_text("0")
    await hub.say("+420600333444", "Is anyone there?", name="Eva Waiting")
    await expect(page.get_by_test_id("waiting-support")).to_have_text("1")
    await page.screenshot(path=str(screenshots / "supervisor-overview.png"))

    # the admin screens: account health, queues, statuses, agents
    await page.get_by_role("button", name="Admin", exact=True).click()
    await expect(page.locator(".admin-body")).to_contain_text("wa-main")
    await expect(page.locator(".admin-body")).to_contain_text("Last webhook")
    await page.screenshot(path=str(screenshots / "admin-accounts.png"))
    await page.get_by_role("tab", name="Queues").click()
    await expect(page.locator(".admin-body")).to_contain_text("200")
    await page.get_by_role("button", name="Edit queue Sales").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("Offer timeout (seconds)").fill("45")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator(".admin-body")).to_contain_text("45 s")
    await page.get_by_role("tab", name="Statuses").click()
    await page.get_by_label("New status id").fill("callback")
    await page.get_by_label("New status name").fill("Call back later")
    await page.get_by_role("button", name="Add status").click()
    await expect(page.locator(".admin-body")).to_contain_text("Call back later")
    await page.get_by_role("tab", name="Agents").click()
    await expect(page.locator(".admin-body")).to_contain_text("alice")

    # a signed delivery the hub can never use: answered 200, listed for admins
    await page.get_by_role("tab", name="Rejected webhooks").click()
    await expect(page.get_by_test_id("rejected-empty")).to_be_visible()
    await post_unusable_twilio_form(hub)
    await page.get_by_role("tab", name="Rejected webhooks").click()
    rejected = page.get_by_test_id("rejected-webhooks")
    await expect(rejected).to_contain_text("missing_field")
    await expect(rejected).to_contain_text("wa-main")
    await rejected.locator("summary").first.click()
    await expect(rejected.locator(".raw-body").first).to_contain_text("Body=no+sid")
    assert admin.errors == []


async def post_unusable_twilio_form(hub: RunningHub) -> None:
    """Signed with wa-main's token, but without a MessageSid: Twilio gets its 200, the admin a dead letter."""
    from urllib.parse import parse_qsl

    from adapters.twilio_whatsapp import sign

    body = "Body=no+sid&From=whatsapp%3A%2B420600999000&To=whatsapp%3A%2B15550001111"
    url = f"{hub.url}/webhooks/twilio"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(url, parse_qsl(body), "twilio-test-auth-token"),
    }
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        assert response.status == 200, await response.text()


async def test_console_is_usable_on_a_narrow_screen_and_by_keyboard(
    hub: RunningHub, browser: Any, screenshots: Path
) -> None:
    alice = await open_console(browser, hub, "alice", viewport=NARROW)
    page = alice.page
    await set_presence(page, "ready")
    await hub.say("+420600555666", "Hi from a phone", name="Karel Maly")
    offer = page.locator(".offer-card")
    await expect(offer).to_be_visible()
    # keyboard only: focus the offer's Accept button and press Enter
    await offer.get_by_role("button", name="Accept").focus()
    await page.keyboard.press("Enter")
    widget = page.locator(".message-widget")
    await expect(widget.locator(".history")).to_contain_text("Hi from a phone")
    box = widget.get_by_label("Message", exact=True)
    await box.focus()
    await page.keyboard.type("Hello Karel")
    await page.keyboard.press("Enter")
    await expect(widget.locator(".msg-out .text").last).to_have_text("Hello Karel")

    # a file goes by link (the API takes attachments as URLs the provider fetches)
    await widget.get_by_role("button", name="Attach link").click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_label("File URL").fill("https://files.example.com/invoice-2001.pdf")
    await dialog.get_by_role("button", name="Attach").click()
    await expect(widget.get_by_role("list", name="Files to send")).to_contain_text("invoice-2001.pdf")
    await widget.get_by_role("button", name="Send", exact=True).click()
    await expect(widget.locator(".msg-out").last).to_contain_text("Attachment: invoice-2001.pdf")
    # nothing is wider than the screen
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    await page.screenshot(path=str(screenshots / "conversation-narrow.png"), full_page=True)
    assert alice.errors == []


async def test_a_missed_offer_pauses_the_agent_and_the_console_says_why(hub: RunningHub, browser: Any) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    await set_presence(page, "ready")
    await hub.say("+420600777888", "Please call me back", name="Olga Rychla", account="wa-callback")
    offer = page.locator(".offer-card")
    await expect(offer).to_be_visible()
    await expect(offer).to_contain_text("300 Call-backs")
    # nobody answers within the queue's 3 seconds: the hub withdraws the offer and pauses the agent
    await expect(offer).to_have_count(0)
    badge = page.get_by_test_id("presence-badge")
    await expect(badge).to_contain_text("missed offer")
    await expect(badge).to_contain_text("unpaid")
    await expect(page.get_by_test_id("presence")).to_have_value("paused")

    # the waiting badge counts it; the agent takes it from the waiting list anyway
    await expect(page.get_by_test_id("waiting-count")).not_to_have_text("0")
    await page.get_by_role("button", name=re.compile("^Waiting")).click()
    dialog = page.locator("dialog[open]")
    await expect(dialog).to_contain_text("Olga Rychla")
    await dialog.get_by_role("button", name="Accept").first.click()
    await expect(page.get_by_role("tab", name=re.compile("Olga Rychla"))).to_be_visible()

    # logout ends the session: the login form again (after the page's own reads settled, so that
    # none of them races the logout and gets a 401 the browser would log)
    await page.wait_for_load_state("networkidle")
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert alice.errors == []


async def test_a_lost_connection_reconnects_and_catches_up(hub: RunningHub, browser: Any) -> None:
    alice = await open_console(browser, hub, "alice")
    page = alice.page
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await set_presence(page, "ready")
    await hub.say("+420600121212", "First message", name="Tomas Ztraceny")
    await page.locator(".offer-card").get_by_role("button", name="Accept").click()
    widget = page.locator(".message-widget")
    await expect(widget.locator(".history")).to_contain_text("First message")

    # the link drops; meanwhile the customer writes twice
    await page.evaluate("import('/console/js/live.js').then((live) => live.suspend())")
    await expect(page.locator(".connection")).to_contain_text("Offline")
    await hub.say("+420600121212", "Are you still there?")
    await hub.say("+420600121212", "Hello?")
    await page.wait_for_timeout(500)
    await expect(widget.locator(".history")).not_to_contain_text("Hello?")

    # back online: the console asks for what it missed (since=<last seq>) and shows it
    await page.evaluate("import('/console/js/live.js').then((live) => live.resume())")
    await expect(page.locator(".connection")).to_have_text("Live")
    await expect(widget.locator(".history")).to_contain_text("Are you still there?")
    await expect(widget.locator(".history")).to_contain_text("Hello?")
    assert any("since=" in url for url in sockets), sockets
    assert alice.errors == []
