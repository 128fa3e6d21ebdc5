"""GET /api/v1/conversations/{id}/iframe over real HTTP on both engines."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import update

from hub.store.tables import conversations, identities
from tests.api.conftest import Api, MakeApi

PAGES = """
[[queues]]
id = "pages"
name = "Pages"
number = 300
iframe_url = "https://crm.example.com/card?name={customer_name}&phone={phone}&conv={conversation_id}&q={queue}"
iframe_hosts = ["crm.example.com"]
"""


async def _conversation_in(api: Api, queue_id: str, display_name: str) -> int:
    conversation_id = await api.customer_writes(sender="+420600000009")
    async with api.store.write() as connection:
        await connection.execute(
            update(conversations).where(conversations.c.id == conversation_id).values(queue_id=queue_id)
        )
        await connection.execute(update(identities).values(display_name=display_name, phone="+420 600 000 009"))
    return conversation_id


async def test_the_page_address_is_built_from_the_conversation(make_api: MakeApi) -> None:
    api = await make_api(PAGES)
    agent = await api.agent("ann", queues=("pages",))
    conversation_id = await _conversation_in(api, "pages", "Ann&role=admin#x")
    answer = await agent.json("GET", f"/api/v1/conversations/{conversation_id}/iframe")
    url = urlsplit(answer["url"])
    assert (url.scheme, url.hostname, url.path, url.fragment) == ("https", "crm.example.com", "/card", "")
    assert parse_qs(url.query) == {
        "name": ["Ann&role=admin#x"],
        "phone": ["+420 600 000 009"],
        "conv": [str(conversation_id)],
        "q": ["pages"],
    }


async def test_a_queue_without_a_page_answers_404_with_a_code(make_api: MakeApi) -> None:
    api = await make_api(PAGES)
    boss = await api.agent("boss", role="supervisor")
    assert await boss.json("GET", "/api/v1/iframe/queues") == {"queues": ["pages"]}
    conversation_id = await api.customer_writes()
    refused = await boss.json("GET", f"/api/v1/conversations/{conversation_id}/iframe", status=404)
    assert refused["error"]["code"] == "iframe_not_configured"
    missing = await boss.json("GET", "/api/v1/conversations/999999/iframe", status=404)
    assert missing["error"]["code"] == "not_found"


async def test_an_agent_who_may_not_see_the_conversation_gets_no_address(make_api: MakeApi) -> None:
    api = await make_api(PAGES)
    outsider = await api.agent("sam", queues=("sales",))
    conversation_id = await _conversation_in(api, "pages", "Ann")
    await outsider.json("GET", f"/api/v1/conversations/{conversation_id}/iframe", status=403)
