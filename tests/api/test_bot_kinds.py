"""The Rasa and rules kinds of bot, on both engines: a Rasa REST channel on loopback that answers as Rasa
documents it (a list of messages with text, buttons, image or custom), and the demo's rules flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hub.api.keys import HUB
from tests.api.conftest import Api, MakeApi, eventually

DEMO_FLOW = Path(__file__).resolve().parents[2] / "deploy" / "demo-flow.toml"


async def items(api: Api, conversation_id: int) -> list[dict[str, Any]]:
    admin = await _admin(api)
    body = await admin.json("GET", f"/api/v1/conversations/{conversation_id}/messages?limit=200")
    found: list[dict[str, Any]] = body["items"]
    return found


async def _admin(api: Api) -> Any:
    admin = getattr(api, "_kinds_admin", None)
    if admin is None:
        admin = await api.agent("boss", role="admin", queues=())
        api._kinds_admin = admin  # type: ignore[attr-defined]
    return admin


async def view(api: Api, conversation_id: int) -> dict[str, Any]:
    found: dict[str, Any] = await (await _admin(api)).json("GET", f"/api/v1/conversations/{conversation_id}")
    return found


def said(found: list[dict[str, Any]]) -> list[str]:
    return [i["text"] for i in found if i["type"] == "message" and i["author"] == "bot"]


async def bot_said(api: Api, conversation_id: int, count: int) -> bool:
    return len(said(await items(api, conversation_id))) >= count


async def state_is(api: Api, conversation_id: int, *states: str) -> bool:
    return (await view(api, conversation_id))["state"] in states


# ------------------------------------------------------------------ Rasa


class Rasa:
    """Rasa's REST channel: POST /webhooks/rest/webhook {"sender", "message"} -> [{"recipient_id", ...}]."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        sender, text = body["sender"], body["message"]
        if text == "/human":
            return web.json_response([{"recipient_id": sender, "custom": {"handoff": True, "note": "asked Rasa"}}])
        if text == "/complaint":  # an intent whose response says something, then asks for a person
            return web.json_response(
                [
                    {"recipient_id": sender, "text": "Sorry to hear that. A colleague will take over."},
                    {"recipient_id": sender, "custom": {"handoff": True, "note": "complaint"}},
                    {"recipient_id": sender, "text": "never sent: the conversation is people's by now"},
                ]
            )
        if text == "/pricing":
            return web.json_response(
                [
                    {"recipient_id": sender, "text": "Our plans start at 10 EUR."},
                    {"recipient_id": sender, "image": "https://example.com/plans.png"},
                ]
            )
        return web.json_response(
            [
                {
                    "recipient_id": sender,
                    "text": "Hello! What would you like?",
                    "buttons": [
                        {"title": "Pricing", "payload": "/pricing"},
                        {"title": "Talk to someone", "payload": "/human"},
                    ],
                }
            ]
        )


@pytest.fixture
async def rasa(aiohttp_server: Any) -> tuple[Rasa, str]:
    server = Rasa()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", server.webhook)
    running = await aiohttp_server(app)
    return server, str(running.make_url("")).rstrip("/")


async def test_a_rasa_assistant_answers_with_buttons_and_hands_off_on_its_custom_payload(
    make_api: MakeApi, rasa: tuple[Rasa, str]
) -> None:
    server, url = rasa
    api = await make_api(f'[[bots]]\nid = "rasa"\nkind = "rasa"\nqueues = ["support"]\nurl = "{url}"\n')
    conversation_id = await api.customer_writes(text="hi")
    await eventually(lambda: bot_said(api, conversation_id, 1), "Rasa's greeting")
    (greeting,) = said(await items(api, conversation_id))
    assert greeting == "Hello! What would you like?\n\n1. Pricing\n2. Talk to someone", "buttons as numbered text"
    assert server.received[0]["message"] == "hi"
    assert server.received[0]["sender"].startswith("identity-")

    await api.customer_writes(text="1")  # the customer answers with the button's number
    await eventually(lambda: bot_said(api, conversation_id, 3), "Rasa's answer to the button")
    assert server.received[1]["message"] == "/pricing", "the button's payload comes back as the choice"
    assert said(await items(api, conversation_id))[1:] == [
        "Our plans start at 10 EUR.",
        "https://example.com/plans.png",
    ]

    await api.customer_writes(text="/human")
    await eventually(lambda: state_is(api, conversation_id, "waiting"), "the hand-off Rasa asked for")
    found = await items(api, conversation_id)
    (event,) = [i for i in found if i["type"] == "event" and i["kind"] == "handed_off"]
    assert event["data"]["reason"] == "bot_asked"
    assert event["data"]["note"] == "asked Rasa"


async def test_a_rasa_answer_says_what_comes_before_its_hand_off_and_nothing_after(
    make_api: MakeApi, rasa: tuple[Rasa, str]
) -> None:
    _, url = rasa
    api = await make_api(f'[[bots]]\nid = "rasa"\nkind = "rasa"\nqueues = ["support"]\nurl = "{url}"\n')
    conversation_id = await api.customer_writes(text="/complaint")
    await eventually(lambda: state_is(api, conversation_id, "waiting"), "the hand-off Rasa's response asked for")
    found = await items(api, conversation_id)
    assert said(found) == ["Sorry to hear that. A colleague will take over."]
    (event,) = [i for i in found if i["type"] == "event" and i["kind"] == "handed_off"]
    assert (event["data"]["reason"], event["data"]["note"]) == ("bot_asked", "complaint")


async def test_rasa_down_is_a_failed_bot(make_api: MakeApi) -> None:
    api = await make_api('[[bots]]\nid = "rasa"\nkind = "rasa"\nqueues = ["support"]\nurl = "http://127.0.0.1:9"\n')
    api.app[HUB].bots.retry_delays = (0.01,)
    conversation_id = await api.customer_writes(text="hi")
    await eventually(lambda: state_is(api, conversation_id, "waiting"), "the hand-off")
    found = await items(api, conversation_id)
    (event,) = [i for i in found if i["type"] == "event" and i["kind"] == "handed_off"]
    assert event["data"]["reason"] == "bot_failed"


# ------------------------------------------------------------------ rules


async def test_the_demo_rules_flow_answers_routes_collects_and_hands_off(make_api: MakeApi) -> None:
    api = await make_api(f'[[bots]]\nid = "desk"\nkind = "rules"\nqueues = ["support"]\nflow = "{DEMO_FLOW}"\n')
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: bot_said(api, conversation_id, 2), "the greeting and the menu")
    greeting, menu = said(await items(api, conversation_id))
    assert greeting == "Hello! I am the demo assistant."
    assert menu.splitlines()[0] == "What can we do for you?"
    assert "2. Buy something" in menu

    await api.customer_writes(text="how much is the price?")  # a keyword rule
    await eventually(lambda: bot_said(api, conversation_id, 3), "the keyword's answer")
    assert said(await items(api, conversation_id))[-1] == "Our price list is at https://example.com/prices."

    await api.customer_writes(text="Buy something")  # the choice, typed out: routes to sales
    await eventually(lambda: bot_said(api, conversation_id, 4), "the first question")
    assert said(await items(api, conversation_id))[-1] == "May I have your name?"
    await api.customer_writes(text="Jana Nováková")
    await eventually(lambda: bot_said(api, conversation_id, 5), "the second question")
    await api.customer_writes(text="12ab")
    await eventually(lambda: bot_said(api, conversation_id, 6), "the question again")
    assert said(await items(api, conversation_id))[-1].startswith("An order number is 4 to 10 digits.")
    await api.customer_writes(text="123456")
    await eventually(lambda: state_is(api, conversation_id, "waiting"), "the hand-off to sales")

    found = await items(api, conversation_id)
    assert said(found)[-1] == "Thank you, a colleague will be with you shortly."
    (event,) = [i for i in found if i["type"] == "event" and i["kind"] == "handed_off"]
    assert event["data"]["to_queue"] == "sales"
    assert event["data"]["note"] == "name: Jana Nováková; order: 123456"
    conversation = await view(api, conversation_id)
    assert conversation["queue"] == "sales"
    assert conversation["handoff"]["note"] == "name: Jana Nováková; order: 123456"
    assert conversation["variables"] == {"name": "Jana Nováková", "order": "123456"}
