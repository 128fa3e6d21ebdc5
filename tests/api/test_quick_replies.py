"""Quick replies through the API on both engines: within a channel's limits they reach the adapter as
buttons; past them the policy answers 422 naming the rule; a channel without them gets numbered text."""

from __future__ import annotations

import pytest

from hub.api.keys import ADAPTERS
from tests.api.conftest import MakeApi, delivered

VIBER = """
[[accounts]]
id = "vb"
channel = "viber"
queue = "support"
api_base = "http://127.0.0.1:9"
auth_token = "viber-token"
name = "Shop"
"""

WHATSAPP_CLOUD = """
[[accounts]]
id = "wa-cloud"
channel = "whatsapp"
provider = "cloud"
queue = "support"
api_base = "http://127.0.0.1:9"
phone_number_id = "1065"
app_secret = "s"
verify_token = "v"
access_token = "cloud-token"
"""


async def test_buttons_within_the_limits_reach_the_adapter(make_api: MakeApi) -> None:
    api = await make_api(VIBER, fake_adapter=True)
    agent = await api.agent("ann", ready=True)
    conversation_id = await api.customer_writes(account_id="vb", sender="viber-user==", text="hi")
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    buttons = [{"title": "Yes", "payload": "yes"}, {"title": "No"}]
    body = {"text": "Shall we call you?", "buttons": buttons}
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/messages", body, status=201)
    await delivered(api)
    (sent,) = api.app[ADAPTERS]["vb"].sent
    assert sent.text == "Shall we call you?"
    assert [(b.title, b.payload) for b in sent.buttons] == [("Yes", "yes"), ("No", "No")]


async def test_too_many_buttons_is_a_422_naming_the_rule(make_api: MakeApi) -> None:
    api = await make_api(VIBER, fake_adapter=True)
    agent = await api.agent("ann", ready=True)
    conversation_id = await api.customer_writes(account_id="vb", sender="viber-user==", text="hi")
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    body = {"text": "Pick", "buttons": [{"title": f"Option {i}"} for i in range(13)]}
    refused = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/messages", body, status=422)
    assert refused["error"]["code"] == "too_many_buttons"
    await delivered(api)
    assert api.app[ADAPTERS]["vb"].sent == []


async def test_a_channel_without_buttons_gets_them_as_numbered_text(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)  # wa-test: WhatsApp through Twilio
    agent = await api.agent("ann", ready=True)
    conversation_id = await api.customer_writes(text="hi")
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    body = {"text": "Shall we call you?", "buttons": [{"title": "Yes"}, {"title": "No"}]}
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/messages", body, status=201)
    await delivered(api)
    (sent,) = api.adapter.sent
    assert sent.text == "Shall we call you?\n\n1. Yes\n2. No"
    assert sent.buttons == ()


@pytest.mark.parametrize("titles", [("Yes", "Yes"), ("Call me", "Write to me", "Call me")])
async def test_whatsapp_reply_buttons_with_the_same_title_are_a_422_naming_the_rule(
    make_api: MakeApi, titles: tuple[str, ...]
) -> None:
    """WhatsApp Cloud's reply buttons (up to three) need titles unique within the message (docs/channels.md):
    two alike are refused before anything is queued, whatever their payloads."""
    api = await make_api(WHATSAPP_CLOUD, fake_adapter=True)
    agent = await api.agent("ann", ready=True)
    conversation_id = await api.customer_writes(account_id="wa-cloud", sender="420600000001", text="hi")
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    buttons = [{"title": t, "payload": f"p{i}"} for i, t in enumerate(titles)]
    body = {"text": "Pick", "buttons": buttons}
    refused = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/messages", body, status=422)
    assert refused["error"]["code"] == "button_title_not_unique"
    assert titles[-1] in refused["error"]["message"]
    await delivered(api)
    assert api.app[ADAPTERS]["wa-cloud"].sent == []
    distinct = {"text": "Pick", "buttons": [{"title": "Yes", "payload": "y"}, {"title": "No", "payload": "n"}]}
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/messages", distinct, status=201)
