"""Quick replies and buttons, one model, each provider's own shape (against mocked provider APIs, as the
other send tests); and the policy's limits per channel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.messenger import MessengerAdapter
from adapters.twilio_whatsapp import TwilioWhatsAppAdapter
from adapters.viber import ViberAdapter
from adapters.whatsapp_cloud import WhatsAppCloudAdapter
from hub.model import Button, Channel, ChannelAccount, OutboundMessage
from hub.policy import button_refusal

API = "https://graph.example.test/v21.0"


def buttons(count: int) -> tuple[Button, ...]:
    return tuple(Button(title=f"Choice {i}", payload=f"c{i}") for i in range(1, count + 1))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as found:
        yield found


def sent_json(mocked: Any) -> list[dict[str, Any]]:
    return [call.kwargs["json"] for calls in mocked.requests.values() for call in calls]


def messenger(session: aiohttp.ClientSession) -> MessengerAdapter:
    account = ChannelAccount(
        id="fb",
        channel=Channel.MESSENGER,
        provider="messenger",
        queue="support",
        api_base=API,
        credentials={"page_id": "PAGE", "app_secret": "s", "verify_token": "v", "page_access_token": "tok"},
    )
    return MessengerAdapter(account, session)


@pytest.mark.parametrize(("count", "shape"), [(3, "button_template"), (5, "quick_replies")])
async def test_messenger_shows_a_button_template_or_quick_replies(
    session: aiohttp.ClientSession, mocked: Any, count: int, shape: str
) -> None:
    mocked.post(f"{API}/PAGE/messages?access_token=tok", payload={"message_id": "m1"})
    message = OutboundMessage(account_id="fb", recipient_id="PSID", text="Pick one", buttons=buttons(count))
    await messenger(session).send(message)
    (body,) = sent_json(mocked)
    if shape == "button_template":
        payload = body["message"]["attachment"]["payload"]
        assert payload["template_type"] == "button"
        assert payload["text"] == "Pick one"
        assert payload["buttons"][0] == {"type": "postback", "title": "Choice 1", "payload": "c1"}
    else:
        assert body["message"]["text"] == "Pick one"
        assert len(body["message"]["quick_replies"]) == 5
        assert body["message"]["quick_replies"][4] == {"content_type": "text", "title": "Choice 5", "payload": "c5"}


@pytest.mark.parametrize(("count", "kind"), [(2, "button"), (7, "list")])
async def test_whatsapp_cloud_sends_reply_buttons_or_a_list(
    session: aiohttp.ClientSession, mocked: Any, count: int, kind: str
) -> None:
    account = ChannelAccount(
        id="wa",
        channel=Channel.WHATSAPP,
        provider="cloud",
        queue="support",
        api_base=API,
        credentials={"phone_number_id": "NUM", "app_secret": "s", "verify_token": "v", "access_token": "tok"},
    )
    mocked.post(f"{API}/NUM/messages", payload={"messages": [{"id": "wamid.1"}]})
    message = OutboundMessage(account_id="wa", recipient_id="+420600000001", text="Pick one", buttons=buttons(count))
    await WhatsAppCloudAdapter(account, session).send(message)
    (body,) = sent_json(mocked)
    interactive = body["interactive"]
    assert body["type"] == "interactive"
    assert interactive["type"] == kind
    assert interactive["body"] == {"text": "Pick one"}
    if kind == "button":
        assert interactive["action"]["buttons"][1] == {"type": "reply", "reply": {"id": "c2", "title": "Choice 2"}}
    else:
        rows = interactive["action"]["sections"][0]["rows"]
        assert [r["id"] for r in rows] == [f"c{i}" for i in range(1, 8)]


async def test_viber_sends_a_keyboard_whose_buttons_reply_with_the_payload(
    session: aiohttp.ClientSession, mocked: Any
) -> None:
    account = ChannelAccount(
        id="vb",
        channel=Channel.VIBER,
        provider="viber",
        queue="support",
        api_base="https://viber.example.test/pa",
        credentials={"auth_token": "tok", "name": "Shop"},
    )
    mocked.post("https://viber.example.test/pa/send_message", payload={"status": 0, "message_token": 5})
    message = OutboundMessage(account_id="vb", recipient_id="user==", text="Pick one", buttons=buttons(2))
    await ViberAdapter(account, session).send(message)
    (body,) = sent_json(mocked)
    assert body["text"] == "Pick one"
    keyboard = body["keyboard"]
    assert keyboard["Type"] == "keyboard"
    assert keyboard["Buttons"][0]["ActionType"] == "reply"
    assert keyboard["Buttons"][0]["ActionBody"] == "c1"
    assert keyboard["Buttons"][0]["Text"] == "Choice 1"


@pytest.mark.parametrize(
    ("adapter", "most", "title"),
    [(MessengerAdapter, 13, 20), (WhatsAppCloudAdapter, 10, 20), (ViberAdapter, 12, 250)],
)
def test_each_provider_declares_its_limits_and_the_policy_keeps_them(adapter: Any, most: int, title: int) -> None:
    limits = adapter.facts.buttons
    assert (limits.most, limits.title_length) == (most, title)
    assert button_refusal(buttons(most), limits) is None
    refused = button_refusal(buttons(most + 1), limits)
    assert refused is not None
    assert refused.rule == "too_many_buttons"
    long_title = (Button(title="x" * (title + 1), payload="p"),)
    refused = button_refusal(long_title, limits)
    assert refused is not None
    assert refused.rule == "button_title_too_long"


def test_whatsapp_cloud_reply_buttons_need_titles_unique_within_the_message() -> None:
    limits = WhatsAppCloudAdapter.facts.buttons
    alike = (Button(title="Yes", payload="a"), Button(title="Yes", payload="b"))
    refused = button_refusal(alike, limits)
    assert refused is not None
    assert refused.rule == "button_title_not_unique"
    # four or more go as a list, whose rows the rule (documented for reply buttons) does not cover
    assert button_refusal((*alike, *buttons(2)), limits) is None
    assert button_refusal(alike, MessengerAdapter.facts.buttons) is None


def test_twilio_shows_no_buttons_so_they_go_as_text() -> None:
    assert TwilioWhatsAppAdapter.facts.buttons is None
    assert button_refusal(buttons(30), None) is None
    refused = button_refusal((Button(title=" ", payload="p"),), None)
    assert refused is not None
    assert refused.rule == "button_title_empty"


def test_buttons_round_trip_through_json() -> None:
    button = Button(title="Yes", payload="confirm_yes")
    assert json.loads(json.dumps(button.to_json())) == {"title": "Yes", "payload": "confirm_yes"}
