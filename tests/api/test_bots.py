"""Bots as actors, end to end on both engines: a real bot server on loopback answers each customer message
(its Standard Webhooks signature checked with the ``standardwebhooks`` package), and the conversation
moves between the bot and people as issue 18 says."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from hub.api.keys import HUB, INGESTOR
from hub.events import ConversationClosedByBot, unwrapped
from hub.model import Channel, InboundMessage
from hub.store.tables import bot_conversations
from tests.api.conftest import Api, MakeApi, eventually

FAQ_BOT = Path(__file__).resolve().parents[2] / "examples" / "faq_bot.py"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BOT_TOKEN = "bot-token-0123456789abcdef"


@dataclass
class BotServer:
    """A webhook bot on loopback: answers from ``script`` in order (then ``otherwise``), records what it got."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    script: list[tuple[int, Any]] = field(default_factory=list)
    otherwise: tuple[int, Any] = (200, {"actions": []})
    hold: asyncio.Event | None = None  # set: the bot answers only once it is set ("thinking" until then)
    asked: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        # raises WebhookVerificationError (a 500 here, and the test fails) when the signature is wrong
        payload = Webhook(SECRET).verify(body, dict(request.headers))
        self.received.append(payload)
        self.asked.set()
        if self.hold is not None:
            await self.hold.wait()
        status, answer = self.script.pop(0) if self.script else self.otherwise
        if answer is None:
            return web.Response(status=status)
        return web.json_response(answer, status=status)


@pytest.fixture
async def bot_server(aiohttp_server: Any) -> BotServer:
    server = BotServer()
    app = web.Application()
    app.router.add_post("/bot", server.handle)
    running = await aiohttp_server(app)
    server.url = str(running.make_url("/bot"))
    return server


def bot_config(url: str, **extra: str) -> str:
    lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
    return f"""
[[bots]]
id = "faq"
kind = "webhook"
queues = ["support"]
url = "{url}"
secret = "{SECRET}"
token = "{BOT_TOKEN}"
{lines}
"""


async def conversation(api: Api, conversation_id: int) -> dict[str, Any]:
    admin = getattr(api, "_bots_admin", None)
    if admin is None:
        admin = await api.agent("boss", role="admin", queues=())
        api._bots_admin = admin  # type: ignore[attr-defined]
    found: dict[str, Any] = await admin.json("GET", f"/api/v1/conversations/{conversation_id}")
    return found


async def history(api: Api, conversation_id: int) -> list[dict[str, Any]]:
    await conversation(api, conversation_id)
    admin = api._bots_admin  # type: ignore[attr-defined]
    body = await admin.json("GET", f"/api/v1/conversations/{conversation_id}/messages?limit=200")
    items: list[dict[str, Any]] = body["items"]
    return items


async def state_is(api: Api, conversation_id: int, state: str) -> bool:
    return (await conversation(api, conversation_id))["state"] == state


def bot_messages(items: list[dict[str, Any]]) -> list[str]:
    return [i["text"] for i in items if i["type"] == "message" and i["author"] == "bot"]


def handoffs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["type"] == "event" and i["kind"] == "handed_off"]


def as_bot(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {BOT_TOKEN}"}


# ------------------------------------------------------------------ scenarios


async def test_the_bot_answers_first_then_hands_off_with_its_transcript(
    make_api: MakeApi, bot_server: BotServer
) -> None:
    bot_server.script = [
        (200, {"actions": [{"type": "message", "text": "Hi! I am the FAQ bot."}]}),
        (200, {"actions": [{"type": "handoff", "reason": "bot_asked", "note": "wants a refund"}]}),
    ]
    api = await make_api(bot_config(bot_server.url))
    agent = await api.agent("ann", ready=True)
    conversation_id = await api.customer_writes(text="hello")
    assert (await conversation(api, conversation_id))["state"] == "bot"
    await api.sweep()
    assert await state_is(api, conversation_id, "bot"), "a bot's conversation is not offered to people"

    await eventually(lambda: _has_bot_message(api, conversation_id), "the bot's answer")
    delivered = bot_server.received[0]
    assert delivered["type"] == "message.created"
    assert delivered["conversation"]["id"] == conversation_id
    assert delivered["conversation"]["state"] == "bot"
    assert delivered["message"]["text"] == "hello"

    await api.customer_writes(text="I want my money back")
    # handed off, it enters its queue and is offered at once to the ready agent
    await eventually(lambda: state_is(api, conversation_id, "offered"), "the hand-off")
    items = await history(api, conversation_id)
    assert bot_messages(items) == ["Hi! I am the FAQ bot."]
    (event,) = handoffs(items)
    assert event["data"]["reason"] == "bot_asked"
    assert event["data"]["note"] == "wants a refund"
    view = await conversation(api, conversation_id)
    assert view["bot"] == "faq"
    assert view["handoff"]["reason"] == "bot_asked"
    assert view["offered_to"] == agent.id


async def _has_bot_message(api: Api, conversation_id: int) -> bool:
    return bool(bot_messages(await history(api, conversation_id)))


async def test_a_webhook_bot_is_told_what_may_be_sent_now(make_api: MakeApi, bot_server: BotServer) -> None:
    """Each message's body says what may be sent now, as the console's window badge does (the same JSON as
    ``GET /api/v1/identities/{id}/eligibility``): free text until the WhatsApp customer-service window closes,
    and nothing but templates once it has (here a message the provider delivered 25 hours late). The templates
    it names are read with the turn's conversation: one the admin has just saved is among them."""
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url))
    admin = await api.agent("root", role="admin", queues=())
    await admin.json("POST", "/api/v1/templates", {"name": "bot-greeting", "body": "Hello {{ contact.name }}"}, 201)
    wrote_at = api.clock()
    open_window = await api.customer_writes(text="hello")
    await eventually(lambda: _awaited(api, open_window), "the bot was asked")
    (body,) = bot_server.received
    identity = body["conversation"]["identity"]["id"]
    console = await admin.json("GET", f"/api/v1/identities/{identity}/eligibility")
    assert body["eligibility"] == console
    assert body["eligibility"]["free_text"] is True
    assert body["eligibility"]["free_text_until"] == (wrote_at + timedelta(hours=24)).isoformat()
    assert body["eligibility"]["rule"] is None
    assert "bot-greeting" in body["eligibility"]["templates"]

    late = InboundMessage(
        channel=Channel.WHATSAPP,
        account_id="wa-test",
        sender_id="+420600000055",
        provider_message_id="late-1",
        sent_at=api.clock(),
        text="are you there?",
    )
    api.clock.advance(25 * 3600)
    await api.app[INGESTOR].submit([late])
    closed_window = await api.open_conversation("wa-test", "+420600000055")
    await eventually(lambda: _awaited(api, closed_window), "the bot was asked")
    told = bot_server.received[-1]["eligibility"]
    assert (told["free_text"], told["free_text_until"]) == (False, None)
    assert told["rule"]
    assert told["window_closed_at"] == (late.sent_at + timedelta(hours=24)).isoformat()
    closed_identity = bot_server.received[-1]["conversation"]["identity"]["id"]
    later = await api.agent("root-again", role="admin", queues=())  # the first one's session has expired
    assert told == await later.json("GET", f"/api/v1/identities/{closed_identity}/eligibility")


async def test_the_bot_is_named_from_the_moment_the_conversation_is_its_own(
    make_api: MakeApi, bot_server: BotServer
) -> None:
    """The conversation's ``bot`` names its bot as soon as it is in state ``bot``: before the bot's first
    answer, and in the first message's body the bot is sent; reopened with the bot, the last part's hand-off is
    no longer shown as this part's."""
    reopening = """
[[accounts]]
id = "wa-again"
channel = "whatsapp"
provider = "twilio"
queue = "support"
after_close = "reopen"
api_base = "http://127.0.0.1:9"
account_sid = "ACagain"
auth_token = "again-auth-token"
from_number = "+15550003333"
"""
    bot_server.hold = asyncio.Event()
    api = await make_api(bot_config(bot_server.url) + reopening, fake_adapter=True)
    conversation_id = await api.customer_writes(text="hello")
    await asyncio.wait_for(bot_server.asked.wait(), 10)
    view = await conversation(api, conversation_id)
    assert (view["state"], view["bot"], view["handoff"]) == ("bot", "faq", None)
    assert bot_server.received[0]["conversation"]["bot"] == "faq"
    bot_server.hold.set()

    bot_server.hold = None
    bot_server.otherwise = (200, {"actions": [{"type": "handoff", "reason": "bot_asked"}]})
    again = await api.customer_writes(account_id="wa-again", sender="+420600000066", text="hi")
    assert (await conversation(api, again))["bot"] == "faq"
    await eventually(lambda: state_is(api, again, "waiting"), "the hand-off")
    agent = await api.agent("ann")
    await agent.json("POST", f"/api/v1/conversations/{again}/take")
    await agent.json("POST", f"/api/v1/conversations/{again}/close", {"status": "resolved"})
    bot_server.otherwise = (202, None)
    reopened = await api.customer_writes(account_id="wa-again", sender="+420600000066", text="me again")
    assert reopened == again
    view = await conversation(api, again)
    assert (view["state"], view["bot"], view["handoff"]) == ("bot", "faq", None)


async def test_a_customer_who_asks_for_a_person_is_handed_off(make_api: MakeApi, bot_server: BotServer) -> None:
    api = await make_api(bot_config(bot_server.url, handoff_keywords='{ en = ["agent"], de = ["mitarbeiter"] }'))
    conversation_id = await api.customer_writes(text="Ich möchte einen Mitarbeiter sprechen")
    await eventually(lambda: state_is(api, conversation_id, "waiting"), "the hand-off")
    (event,) = handoffs(await history(api, conversation_id))
    assert event["data"]["reason"] == "customer_asked"
    again = await api.client.post(
        f"/api/v1/conversations/{conversation_id}/handoff", json={"reason": "bot_asked"}, headers=as_bot(api)
    )
    assert again.status == 403
    assert (await again.json())["error"]["code"] == "not_with_bot"
    assert bot_server.received == [], "the bot is not asked what to do with a customer who wants a person"


async def test_a_silent_bot_hands_off_after_handoff_after_seconds(make_api: MakeApi, bot_server: BotServer) -> None:
    bot_server.otherwise = (202, None)  # "I will answer later" - and it never does
    api = await make_api(bot_config(bot_server.url, handoff_after="30"))
    runner = api.app[HUB].bots
    conversation_id = await api.customer_writes(text="hello?")
    await eventually(lambda: _awaited(api, conversation_id), "the bot was asked")
    api.clock.advance(29)
    assert await runner.check_silence() == []
    assert await state_is(api, conversation_id, "bot")
    api.clock.advance(2)
    assert await runner.check_silence() == [conversation_id]
    assert await state_is(api, conversation_id, "waiting")
    (event,) = handoffs(await history(api, conversation_id))
    assert event["data"]["reason"] == "bot_silent"


async def _awaited(api: Api, conversation_id: int) -> bool:
    async with api.store.read() as connection:
        row = (
            await connection.execute(
                select(bot_conversations.c.awaiting_since).where(bot_conversations.c.conversation_id == conversation_id)
            )
        ).first()
    return row is not None and row.awaiting_since is not None


async def test_a_bot_that_answers_later_through_the_api_stops_the_silence_clock(
    make_api: MakeApi, bot_server: BotServer
) -> None:
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url, handoff_after="30"))
    conversation_id = await api.customer_writes(text="hello?")
    await eventually(lambda: _awaited(api, conversation_id), "the bot was asked")
    response = await api.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Let me check."}, headers=as_bot(api)
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["author"] == "bot"
    api.clock.advance(31)
    assert await api.app[HUB].bots.check_silence() == []
    assert await state_is(api, conversation_id, "bot")


async def test_a_bot_error_is_retried_and_the_bot_recovers(make_api: MakeApi, bot_server: BotServer) -> None:
    bot_server.script = [(500, {"error": "boom"}), (200, {"actions": [{"text": "Sorry, back now."}]})]
    api = await make_api(bot_config(bot_server.url))
    api.app[HUB].bots.retry_delays = (0.01, 0.01)
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: _has_bot_message(api, conversation_id), "the bot's answer after its error")
    assert len(bot_server.received) == 2
    assert await state_is(api, conversation_id, "bot")
    async with api.store.read() as connection:
        failures = (
            await connection.execute(
                select(bot_conversations.c.failures).where(bot_conversations.c.conversation_id == conversation_id)
            )
        ).scalar_one()
    assert failures == 0, "an answer forgives the failures before it"


async def test_a_bot_that_keeps_failing_hands_off(make_api: MakeApi, bot_server: BotServer) -> None:
    bot_server.otherwise = (500, {"error": "down"})
    api = await make_api(bot_config(bot_server.url))
    api.app[HUB].bots.retry_delays = (0.01, 0.01)
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: state_is(api, conversation_id, "waiting"), "the hand-off")
    (event,) = handoffs(await history(api, conversation_id))
    assert event["data"]["reason"] == "bot_failed"
    assert len(bot_server.received) == 3


async def test_an_agent_takes_over_mid_bot_and_hands_it_back(make_api: MakeApi, bot_server: BotServer) -> None:
    bot_server.otherwise = (200, {"actions": [{"text": "bot here"}]})
    api = await make_api(bot_config(bot_server.url))
    agent = await api.agent("ann")
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: _has_bot_message(api, conversation_id), "the bot's answer")
    listed = await agent.json("GET", "/api/v1/conversations?state=bot")
    assert [c["id"] for c in listed["items"]] == [conversation_id]

    taken = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    assert taken["state"] == "active"
    assert taken["owner"] == agent.id
    asked = len(bot_server.received)
    await api.customer_writes(text="are you a person?")
    await agent.json(
        "POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "Yes, Ann here."}, status=201
    )
    assert len(bot_server.received) == asked, "the bot is no longer asked"

    back = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/bot", {"bot": "faq"})
    assert back["state"] == "bot"
    assert back["participants"] == []
    await api.customer_writes(text="thanks")
    await eventually(lambda: _asked(bot_server, asked + 1), "the bot is asked again")

    refused = await agent.post(f"/api/v1/conversations/{conversation_id}/bot", json={"bot": "nobody"})
    assert refused.status in (403, 409, 422)


async def test_an_agent_who_takes_over_while_the_bot_thinks_gets_the_conversation_without_its_answer(
    make_api: MakeApi, bot_server: BotServer
) -> None:
    """The turn read the conversation before asking the bot; the answer is checked where it is written."""
    bot_server.otherwise = (200, {"actions": [{"text": "bot here, too late"}]})
    bot_server.hold = asyncio.Event()
    api = await make_api(bot_config(bot_server.url, handoff_after="30"))
    agent = await api.agent("ann")
    conversation_id = await api.customer_writes(text="hello")
    await asyncio.wait_for(bot_server.asked.wait(), timeout=5)
    taken = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    assert taken["state"] == "active"

    bot_server.hold.set()
    await api.app[HUB].bots.idle()
    assert bot_messages(await history(api, conversation_id)) == [], "no bot message once an agent has it"
    view = await conversation(api, conversation_id)
    assert (view["state"], view["owner"]) == ("active", agent.id)
    assert handoffs(await history(api, conversation_id)) == []


async def _asked(server: BotServer, times: int) -> bool:
    return len(server.received) >= times


async def test_a_hand_off_to_a_queue_with_nobody_ready_waits_until_someone_is(
    make_api: MakeApi, bot_server: BotServer
) -> None:
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url))
    agent = await api.agent("sam", queues=("sales",))
    conversation_id = await api.customer_writes(text="I want to buy")
    await eventually(lambda: _awaited(api, conversation_id), "the bot was asked")
    handed = await api.client.post(
        f"/api/v1/conversations/{conversation_id}/handoff",
        json={"reason": "bot_asked", "queue": "sales", "note": "a buyer"},
        headers=as_bot(api),
    )
    assert handed.status == 200, await handed.text()
    body = await handed.json()
    assert body["state"] == "waiting"
    assert body["queue"] == "sales"
    await api.sweep()
    assert (await conversation(api, conversation_id))["offered_to"] is None
    await agent.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    await api.sweep()
    assert (await conversation(api, conversation_id))["offered_to"] == agent.id
    again = await api.client.post(
        f"/api/v1/conversations/{conversation_id}/handoff", json={"reason": "bot_asked"}, headers=as_bot(api)
    )
    assert again.status == 404, "handed to another queue, it is out of the bot's sight"


async def test_a_bot_never_sees_a_conversation_outside_its_queues(make_api: MakeApi, bot_server: BotServer) -> None:
    extra = """
[[accounts]]
id = "wa-sales"
channel = "whatsapp"
provider = "twilio"
queue = "sales"
api_base = "http://127.0.0.1:9"
account_sid = "ACsales"
auth_token = "sales-auth-token"
from_number = "+15550002222"
"""
    api = await make_api(bot_config(bot_server.url) + extra, fake_adapter=True)
    other = await api.customer_writes(account_id="wa-sales", sender="+420600000002", text="hi sales")
    assert (await conversation(api, other))["state"] == "waiting"
    for path, payload in (("messages", {"text": "hello"}), ("handoff", {"reason": "bot_asked"})):
        response = await api.client.post(f"/api/v1/conversations/{other}/{path}", json=payload, headers=as_bot(api))
        assert response.status == 404, (path, await response.text())


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_reason"),
        ({"reason": "tired"}, "invalid_reason"),
        ({"reason": "bot_asked", "queue": 5}, "invalid_field"),
        ({"reason": "bot_asked", "colour": "red"}, "unknown_field"),
        ({"reason": "bot_asked", "queue": "nowhere"}, "unknown_queue"),
    ],
)
async def test_a_bad_hand_off_is_a_clear_422_and_changes_nothing(
    make_api: MakeApi, bot_server: BotServer, body: dict[str, Any], code: str
) -> None:
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url))
    conversation_id = await api.customer_writes(text="hello")
    response = await api.client.post(
        f"/api/v1/conversations/{conversation_id}/handoff", data=json.dumps(body), headers=as_bot(api)
    )
    assert response.status == 422, await response.text()
    assert (await response.json())["error"]["code"] == code
    assert await state_is(api, conversation_id, "bot")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_field"),
        ({"bot": 7}, "invalid_field"),
        ({"bot": "faq", "colour": "red"}, "unknown_field"),
        ({"bot": "nobody"}, "unknown_bot"),
    ],
)
async def test_a_bad_return_to_bot_is_a_clear_422_and_changes_nothing(
    make_api: MakeApi, bot_server: BotServer, body: dict[str, Any], code: str
) -> None:
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url))
    agent = await api.agent("ann")
    conversation_id = await api.customer_writes(text="hello")
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    response = await agent.post(f"/api/v1/conversations/{conversation_id}/bot", json=body)
    assert response.status == 422, await response.text()
    assert (await response.json())["error"]["code"] == code
    view = await conversation(api, conversation_id)
    assert (view["state"], view["owner"]) == ("active", agent.id)


NIGHT = """
[[queues]]
id = "night"
name = "Night desk"
number = 300

[queues.hours]
time_zone = "UTC"
mon = "12:00-17:00"
message = "We are closed; we open {opening}."

[[accounts]]
id = "wa-night"
channel = "whatsapp"
provider = "twilio"
queue = "night"
api_base = "http://127.0.0.1:9"
account_sid = "ACnight"
auth_token = "night-auth-token"
from_number = "+15550009999"
"""


async def test_out_of_hours_the_bot_answers_and_the_conversation_waits_for_the_opening(
    make_api: MakeApi, bot_server: BotServer
) -> None:
    bot_server.script = [
        (200, {"actions": [{"text": "Hello from the night bot."}]}),
        (200, {"actions": [{"type": "handoff", "reason": "bot_asked"}]}),
    ]
    config = NIGHT + bot_config(bot_server.url).replace('queues = ["support"]', 'queues = ["night"]')
    api = await make_api(config, fake_adapter=True)  # the clock: Monday 09:00 UTC, before the 12:00 opening
    supervisor = await api.agent("sue", role="supervisor", queues=("night",))
    conversation_id = await api.customer_writes(account_id="wa-night", sender="+420600000009", text="hi")
    await eventually(lambda: _has_bot_message(api, conversation_id), "the bot's answer")
    queues = {q["id"]: q for q in (await supervisor.json("GET", "/api/v1/queues"))["items"]}
    assert queues["night"]["figures"]["bot"] == 1
    assert queues["night"]["hours"] == {"open": False, "opens_at": "2026-03-02T12:00:00+00:00", "time_zone": "UTC"}
    assert queues["support"]["hours"] is None

    await api.customer_writes(account_id="wa-night", sender="+420600000009", text="can someone help?")
    await eventually(lambda: state_is(api, conversation_id, "waiting"), "the hand-off")
    items = await history(api, conversation_id)
    assert bot_messages(items) == ["Hello from the night bot.", "We are closed; we open Mon 02 Mar 12:00."]
    queues = {q["id"]: q for q in (await supervisor.json("GET", "/api/v1/queues"))["items"]}
    assert queues["night"]["figures"]["bot"] == 0
    assert queues["night"]["figures"]["waiting"] == 1


async def test_a_bot_that_hands_off_to_a_closed_queue_through_the_api_has_the_customer_told_when_it_opens(
    make_api: MakeApi, bot_server: BotServer
) -> None:
    """As when it hands off in its answer: the customer hears when the queue opens, then it waits there."""
    bot_server.otherwise = (202, None)
    api = await make_api(NIGHT + bot_config(bot_server.url), fake_adapter=True)  # Monday 09:00, night opens 12:00
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: _awaited(api, conversation_id), "the bot was asked")
    handed = await api.client.post(
        f"/api/v1/conversations/{conversation_id}/handoff",
        json={"reason": "bot_asked", "queue": "night"},
        headers=as_bot(api),
    )
    assert handed.status == 200, await handed.text()
    assert (await handed.json())["state"] == "waiting"
    assert bot_messages(await history(api, conversation_id)) == ["We are closed; we open Mon 02 Mar 12:00."]


async def test_the_example_faq_bot_answers_and_hands_off_on_agent(make_api: MakeApi, aiohttp_server: Any) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("faq_bot", FAQ_BOT)
    assert spec is not None
    assert spec.loader is not None
    faq_bot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faq_bot)
    running = await aiohttp_server(faq_bot.make_app(SECRET))
    api = await make_api(bot_config(str(running.make_url("/bot")), handoff_keywords="[]"))
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: _has_bot_message(api, conversation_id), "the menu")
    (menu,) = bot_messages(await history(api, conversation_id))
    assert menu.endswith("1. Opening hours\n2. Delivery\n3. Returns")
    await api.customer_writes(text="2")
    await eventually(lambda: _bot_said(api, conversation_id, 2), "the answer to the choice")
    assert bot_messages(await history(api, conversation_id))[-1].startswith("Parcels arrive in 2 to 4 working days")
    await api.customer_writes(text="I want an agent")
    await eventually(lambda: state_is(api, conversation_id, "waiting"), "the hand-off")
    (event,) = handoffs(await history(api, conversation_id))
    assert event["data"]["reason"] == "bot_asked"


async def _bot_said(api: Api, conversation_id: int, count: int) -> bool:
    return len(bot_messages(await history(api, conversation_id))) >= count


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("take", {}),
        ("accept", {}),
        ("leave", {}),
        ("important", {}),
        ("transfer", {"queue": "sales"}),
        ("bot", {"bot": "faq"}),
    ],
)
async def test_a_bot_on_an_agents_action_is_refused_not_a_fault(
    make_api: MakeApi, bot_server: BotServer, path: str, body: dict[str, Any]
) -> None:
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url))
    conversation_id = await api.customer_writes(text="hello")
    response = await api.client.post(f"/api/v1/conversations/{conversation_id}/{path}", json=body, headers=as_bot(api))
    assert response.status == 403, await response.text()
    assert await state_is(api, conversation_id, "bot")


@pytest.mark.parametrize("closed", [False, True])
async def test_a_bot_that_writes_to_a_customer_as_a_new_message_is_refused_not_a_fault(
    make_api: MakeApi, bot_server: BotServer, closed: bool
) -> None:
    """``POST /api/v1/outbound`` starts a conversation an agent owns: a bot's token there is a 403, never a
    500, whether the customer's conversation is still the bot's or closed already, and nothing is queued."""
    bot_server.otherwise = (200, {"actions": [{"type": "close", "status": "resolved"}]} if closed else None)
    api = await make_api(bot_config(bot_server.url))
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: state_is(api, conversation_id, "closed" if closed else "bot"), "the bot's turn")
    await api.app[HUB].bots.idle()
    identity = (await conversation(api, conversation_id))["identity"]["id"]
    before = await history(api, conversation_id)
    response = await api.client.post(
        "/api/v1/outbound", json={"identity": identity, "text": "Hello again"}, headers=as_bot(api)
    )
    assert response.status == 403, await response.text()
    assert (await response.json())["error"]["code"] == "agents_only"
    assert await history(api, conversation_id) == before


async def test_the_audit_log_names_the_bot_that_acted(make_api: MakeApi, bot_server: BotServer) -> None:
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url))
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: _awaited(api, conversation_id), "the bot was asked")
    for path, body in (("messages", {"text": "One moment."}), ("handoff", {"reason": "bot_asked"})):
        response = await api.client.post(
            f"/api/v1/conversations/{conversation_id}/{path}", json=body, headers=as_bot(api)
        )
        assert response.status in (200, 201), await response.text()
    await conversation(api, conversation_id)
    admin = api._bots_admin  # type: ignore[attr-defined]
    entries = (await admin.json("GET", f"/api/v1/audit?conversation={conversation_id}"))["items"]
    by_bot = {e["action"]: e["actor"] for e in entries if e["actor_kind"] == "bot"}
    assert by_bot == {"message.sent": "faq", "conversation.handed_off": "faq"}, entries


async def test_a_bot_that_retries_with_its_idempotency_key_sends_once(make_api: MakeApi, bot_server: BotServer) -> None:
    """``Idempotency-Key`` holds for a bot's token as for an agent's: the retry gets the first answer again."""
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url))
    conversation_id = await api.customer_writes(text="hello")
    await eventually(lambda: _awaited(api, conversation_id), "the bot was asked")
    headers = {**as_bot(api), "Idempotency-Key": "reply-1"}
    path = f"/api/v1/conversations/{conversation_id}/messages"
    first = await api.client.post(path, json={"text": "Only once, please."}, headers=headers)
    assert first.status == 201, await first.text()
    again = await api.client.post(path, json={"text": "Only once, please."}, headers=headers)
    assert again.status == 201, await again.text()
    assert again.headers.get("Idempotency-Replayed") == "true"
    assert (await again.json())["id"] == (await first.json())["id"]
    assert bot_messages(await history(api, conversation_id)) == ["Only once, please."]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/conversations"),
        ("GET", "/api/v1/conversations/{id}"),
        ("GET", "/api/v1/conversations/{id}/messages"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/contacts"),
    ],
)
async def test_a_bot_on_an_agents_reading_route_is_told_so_not_that_its_token_is_unknown(
    make_api: MakeApi, bot_server: BotServer, method: str, path: str
) -> None:
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url))
    conversation_id = await api.customer_writes(text="hello")
    response = await api.client.request(method, path.format(id=conversation_id), headers=as_bot(api))
    assert response.status == 403, await response.text()
    assert (await response.json())["error"]["code"] == "agents_only"


async def test_a_bot_closes_with_a_status_its_queue_allows(make_api: MakeApi, bot_server: BotServer) -> None:
    bot_server.script = [
        (200, {"actions": [{"text": "Glad I could help."}, {"type": "close", "status": "resolved"}]}),
        (200, {"actions": [{"type": "close", "status": "nonsense"}]}),
    ]
    api = await make_api(bot_config(bot_server.url))
    async with api.app[HUB].bus.subscribe() as heard:
        closed = await api.customer_writes(text="thanks, that was all")
        await eventually(lambda: state_is(api, closed, "closed"), "the bot's close")
        published = [unwrapped(heard.get_nowait()) for _ in range(heard.qsize())]
    # the consoles and the integrations hear of it (conversation.closed, by the bot)
    assert (
        ConversationClosedByBot(conversation_id=closed, queue_id="support", bot="faq", status="resolved") in published
    )
    view = await conversation(api, closed)
    assert view["status"] == "resolved"
    events = [i for i in await history(api, closed) if i["type"] == "event" and i["kind"] == "closed"]
    assert events[0]["data"] == {"status": "resolved", "bot": "faq"}

    refused = await api.customer_writes(sender="+420600000077", text="close it please")
    await eventually(lambda: state_is(api, refused, "waiting"), "the hand-off after a refused close")
    (event,) = handoffs(await history(api, refused))
    assert event["data"]["reason"] == "bot_failed"
    assert event["data"]["note"].startswith("status_not_allowed")


async def test_a_bot_closes_its_conversation_through_the_api_with_a_status(
    make_api: MakeApi, bot_server: BotServer
) -> None:
    """``POST /api/v1/conversations/{id}/close`` with the bot's token closes a conversation the bot holds, as
    the ``close`` action of its answer does (the same use case): the status checked against its queue, the
    timeline naming the bot; outside its queues it is a 404, and no longer with a bot a 403."""
    extra = """
[[accounts]]
id = "wa-sales"
channel = "whatsapp"
provider = "twilio"
queue = "sales"
api_base = "http://127.0.0.1:9"
account_sid = "ACsales"
auth_token = "sales-auth-token"
from_number = "+15550002222"
"""
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url) + extra, fake_adapter=True)
    conversation_id = await api.customer_writes(text="thanks, that was all")
    await eventually(lambda: _awaited(api, conversation_id), "the bot was asked")
    path = f"/api/v1/conversations/{conversation_id}/close"

    wrong = await api.client.post(path, json={"status": "nonsense"}, headers=as_bot(api))
    assert wrong.status == 422, await wrong.text()
    assert (await wrong.json())["error"]["code"] == "status_not_allowed"
    assert await state_is(api, conversation_id, "bot"), "a refused close changes nothing"

    async with api.app[HUB].bus.subscribe() as heard:
        response = await api.client.post(path, json={"status": "resolved"}, headers=as_bot(api))
        assert response.status == 200, await response.text()
        published = [unwrapped(heard.get_nowait()) for _ in range(heard.qsize())]
    body = await response.json()
    assert (body["state"], body["status"], body["bot"]) == ("closed", "resolved", "faq")
    assert (
        ConversationClosedByBot(conversation_id=conversation_id, queue_id="support", bot="faq", status="resolved")
        in published
    )
    events = [i for i in await history(api, conversation_id) if i["type"] == "event" and i["kind"] == "closed"]
    assert [e["data"] for e in events] == [{"status": "resolved", "bot": "faq"}]
    admin = api._bots_admin  # type: ignore[attr-defined]
    entries = (await admin.json("GET", f"/api/v1/audit?conversation={conversation_id}"))["items"]
    assert [(e["action"], e["actor"]) for e in entries if e["actor_kind"] == "bot"] == [("conversation.closed", "faq")]

    again = await api.client.post(path, json={"status": "resolved"}, headers=as_bot(api))
    assert again.status == 403, await again.text()
    assert (await again.json())["error"]["code"] == "not_with_bot"
    other = await api.customer_writes(account_id="wa-sales", sender="+420600000002", text="hi sales")
    outside = await api.client.post(
        f"/api/v1/conversations/{other}/close", json={"status": "resolved"}, headers=as_bot(api)
    )
    assert outside.status == 404, await outside.text()
    assert await state_is(api, other, "waiting")


async def test_a_late_failing_turn_of_a_former_bot_does_not_take_the_conversation_from_its_new_bot(
    make_api: MakeApi, bot_server: BotServer, aiohttp_server: Any
) -> None:
    """Handed to people and then to another queue's bot while its first bot was still thinking: the first bot's
    failures that come in afterwards neither make the conversation its own again nor show it that bot."""
    triage = BotServer(otherwise=(500, {"error": "down"}), hold=asyncio.Event())
    bot_server.otherwise = (202, None)
    api = await _triage_then_faq(make_api, bot_server, triage, aiohttp_server, retry_delays=(0.01, 0.01))
    supervisor = await api.agent("sue", role="supervisor", queues=("sales", "support"))
    agent = await api.agent("ann")
    conversation_id = await api.customer_writes(account_id="wa-sales", sender="+420600000005", text="hi")
    await asyncio.wait_for(triage.asked.wait(), timeout=5)  # the triage bot is thinking

    handed = {"reason": "bot_asked", "queue": "support"}
    await supervisor.json("POST", f"/api/v1/conversations/{conversation_id}/handoff", handed)
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    back = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/bot", {"bot": "faq"})
    assert (back["state"], back["bot"]) == ("bot", "faq")

    triage.hold.set()  # the triage bot fails now, three times
    await api.app[HUB].bots.idle()
    view = await conversation(api, conversation_id)
    assert (view["state"], view["bot"]) == ("bot", "faq"), "the former bot's failures took it back"

    asked = len(triage.received)
    await api.customer_writes(account_id="wa-sales", sender="+420600000005", text="still there?")
    await eventually(lambda: _asked(bot_server, 1), "the new bot is asked")
    await api.app[HUB].bots.idle()
    assert len(triage.received) == asked, "a bot never sees a conversation outside its queues"


async def _triage_then_faq(
    make_api: MakeApi,
    bot_server: BotServer,
    triage: BotServer,
    aiohttp_server: Any,
    *,
    retry_delays: tuple[float, ...] = (30.0, 30.0),
) -> Api:
    """The hub with a triage bot on ``sales`` (served by ``triage``) and the faq bot on ``support``; retries wait
    ``retry_delays`` (by default half a minute, as a slow bot's call can)."""
    app = web.Application()
    app.router.add_post("/bot", triage.handle)
    triage.url = str((await aiohttp_server(app)).make_url("/bot"))
    sales = f"""
[[bots]]
id = "triage"
kind = "webhook"
queues = ["sales"]
url = "{triage.url}"
secret = "{SECRET}"

[[accounts]]
id = "wa-sales"
channel = "whatsapp"
provider = "twilio"
queue = "sales"
api_base = "http://127.0.0.1:9"
account_sid = "ACsales"
auth_token = "sales-auth-token"
from_number = "+15550002222"
"""
    api = await make_api(bot_config(bot_server.url) + sales, fake_adapter=True)
    api.app[HUB].bots.retry_delays = retry_delays
    return api


@pytest.mark.parametrize("triage_is", ["failing", "thinking"])
async def test_a_former_bots_retries_do_not_hold_up_the_bot_the_conversation_went_to(
    make_api: MakeApi, bot_server: BotServer, aiohttp_server: Any, triage_is: str
) -> None:
    """The triage bot fails and waits to retry (or is still thinking) when its conversation is handed to people
    and on to the faq bot: the faq bot is asked at the customer's next message, not after the triage bot's
    back-offs, and the triage bot is not asked again."""
    hold = asyncio.Event() if triage_is == "thinking" else None
    triage = BotServer(otherwise=(500, {"error": "down"}), hold=hold)
    bot_server.otherwise = (200, {"actions": [{"text": "faq here"}]})
    api = await _triage_then_faq(make_api, bot_server, triage, aiohttp_server)
    supervisor = await api.agent("sue", role="supervisor", queues=("sales", "support"))
    agent = await api.agent("ann")
    conversation_id = await api.customer_writes(account_id="wa-sales", sender="+420600000006", text="hi")
    await asyncio.wait_for(triage.asked.wait(), timeout=5)

    handed = {"reason": "bot_asked", "queue": "support"}
    await supervisor.json("POST", f"/api/v1/conversations/{conversation_id}/handoff", handed)
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/bot", {"bot": "faq"})
    await api.customer_writes(account_id="wa-sales", sender="+420600000006", text="still there?")
    await asyncio.wait_for(bot_server.asked.wait(), timeout=2)  # not after the triage bot's 30 s back-off
    await asyncio.wait_for(api.app[HUB].bots.idle(), timeout=2)
    assert bot_messages(await history(api, conversation_id)) == ["faq here"]
    assert len(triage.received) == 1, "the former bot's retry is dropped"
    view = await conversation(api, conversation_id)
    assert (view["state"], view["bot"]) == ("bot", "faq")
    assert handoffs(await history(api, conversation_id))[-1]["data"]["reason"] == "bot_asked", "no bot_failed"
    if hold is not None:
        hold.set()


MESSENGER_PAGE = """
[[accounts]]
id = "fb-test"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9"
page_id = "100"
app_secret = "app-secret"
verify_token = "verify"
page_access_token = "page-token"
"""


async def test_a_bot_cannot_send_with_the_human_agent_tag(make_api: MakeApi, bot_server: BotServer) -> None:
    """Meta prohibits automated messages with HUMAN_AGENT (a person's reply up to 7 days after the customer's last
    message): outside the 24-hour window a bot is refused with ``tag_human_only`` and told the tags it may use,
    nothing is queued, and what it is told may be sent never offers the tag."""
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url, handoff_after="10000000") + MESSENGER_PAGE, fake_adapter=True)
    conversation_id = await api.customer_writes("fb-test", "psid-1", "my parcel?")
    await eventually(lambda: _awaited(api, conversation_id), "the bot was asked")
    api.clock.advance(2 * 24 * 3600)
    before = await history(api, conversation_id)
    response = await api.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "Still looking into it.", "tag": "HUMAN_AGENT"},
        headers=as_bot(api),
    )
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "tag_human_only"
    assert "HUMAN_AGENT" not in [a.get("name") for a in error["alternatives"]]
    assert {"kind": "tag", "name": "POST_PURCHASE_UPDATE", "until": None} in error["alternatives"]
    assert await history(api, conversation_id) == before
    tagged = await api.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "Your parcel left the depot.", "tag": "POST_PURCHASE_UPDATE"},
        headers=as_bot(api),
    )
    assert tagged.status == 201, await tagged.text()
    told = bot_server.received[0]["eligibility"]
    assert "HUMAN_AGENT" not in [t["tag"] for t in told["tags"]]
