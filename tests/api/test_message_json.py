"""Every message JSON carries the provider's id, what it replies to, the referral and the forwarded flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from adapters._graph import sign as graph_sign
from adapters.twilio_whatsapp import sign as twilio_sign
from tests.api.conftest import AgentHandle, Api, MakeApi

FIXTURES = Path(__file__).parent.parent / "fixtures"
MESSENGER = """
[[accounts]]
id = "fb-main"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9"
page_id = "104729435879226"
app_secret = "messenger-app-secret"
verify_token = "verify-fb"
page_access_token = "page-token"
"""


async def _history(api: Api, reader: AgentHandle) -> list[dict[str, Any]]:
    conversations = (await reader.json("GET", "/api/v1/conversations?state=waiting"))["items"]
    found: list[dict[str, Any]] = []
    for conversation in conversations:
        page = await reader.json("GET", f"/api/v1/conversations/{conversation['id']}/messages")
        found += [item for item in page["items"] if item["type"] == "message"]
    return found


async def _twilio(api: Api, name: str) -> None:
    body = (FIXTURES / "twilio" / f"{name}.form").read_bytes().replace(b"%2B14155238886", b"%2B15550001111")
    url = api.settings.server.public_url.rstrip("/") + "/webhooks/twilio"
    signature = twilio_sign(url, parse_qsl(body.decode(), keep_blank_values=True), "test-auth-token")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    response = await api.client.post("/webhooks/twilio", data=body, headers=headers)
    assert response.status == 200, await response.text()


async def _messenger(api: Api, name: str) -> None:
    body = (FIXTURES / "messenger" / f"{name}.json").read_bytes()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": graph_sign(body, "messenger-app-secret")}
    response = await api.client.post("/webhooks/messenger", data=body, headers=headers)
    assert response.status == 200, await response.text()


async def test_history_gives_referral_forwarded_and_the_provider_id(make_api: MakeApi) -> None:
    api = await make_api()
    boss = await api.agent("boss", role="supervisor")
    await _twilio(api, "inbound_forwarded_referral")
    [message] = await _history(api, boss)
    assert message["provider_message_id"] == "SMbbabcdef0123456789abcdef01234567"
    assert message["forwarded"] is True
    assert message["reply_to"] is None
    assert message["referral"] == {
        "body": "Spring sale -20%",
        "headline": "Spring sale",
        "source_id": "120208",
        "source_type": "ad",
        "source_url": "https://fb.me/abc",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
        "num_media": "0",
    }


async def test_history_gives_what_a_message_replies_to(make_api: MakeApi) -> None:
    api = await make_api()
    boss = await api.agent("boss", role="supervisor")
    await _twilio(api, "inbound_reply")
    [message] = await _history(api, boss)
    assert message["reply_to"]
    assert (message["forwarded"], message["referral"]) == (False, None)


async def test_a_messenger_fallback_link_reaches_the_history(make_api: MakeApi) -> None:
    api = await make_api(MESSENGER)
    boss = await api.agent("boss", role="supervisor")
    await _messenger(api, "fallback_without_text")
    [message] = await _history(api, boss)
    assert "https://example.com/sale" in message["text"]
    assert message["provider_message_id"] == "m_fallback2"


async def test_a_postback_referral_reaches_the_history(make_api: MakeApi) -> None:
    api = await make_api(MESSENGER)
    boss = await api.agent("boss", role="supervisor")
    body = (FIXTURES / "messenger" / "postback.json").read_text()
    assert '"referral"' not in body
    await _messenger(api, "postback")
    [message] = await _history(api, boss)
    assert message["referral"] is None
    assert message["provider_message_id"]


async def test_a_messenger_message_from_an_ad_has_the_ad_in_its_referral(make_api: MakeApi) -> None:
    api = await make_api(MESSENGER)
    boss = await api.agent("boss", role="supervisor")
    await _messenger(api, "message_ad_referral")
    [message] = await _history(api, boss)
    assert message["referral"] == {
        "ref": "winter-kettles",
        "ad_id": "120210000000000077",
        "source": "ADS",
        "type": "OPEN_THREAD",
        "ad_title": "Kettles for winter",
        "photo_url": "https://scontent.example.net/v/kettle-ad.jpg",
        "post_id": "104729435879226_990001",
    }


async def test_a_sent_message_has_the_same_fields(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)
    alice = await api.agent("alice", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    sent = await alice.json(
        "POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "On its way"}, status=201
    )
    assert {"provider_message_id", "reply_to", "referral", "forwarded"} <= set(sent)
    assert (sent["reply_to"], sent["referral"], sent["forwarded"]) == (None, None, False)
