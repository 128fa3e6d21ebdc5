"""MessengerAdapter.send / check / profile against a mocked Graph API (aioresponses)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.messenger import MessengerAdapter
from hub.errors import ProviderRejected, ProviderUnavailable
from hub.model import Attachment, Channel, ChannelAccount, MessageKind, OutboundMessage, ProfileUpdate

API = "https://graph.example.test/v21.0"
PAGE = "104729435879226"
SEND_URL = re.compile(rf"^{re.escape(API)}/{PAGE}/messages\?access_token=page-token$")


@pytest.fixture
async def adapter() -> AsyncIterator[MessengerAdapter]:
    account = ChannelAccount(
        id="fb-main",
        channel=Channel.MESSENGER,
        provider="messenger",
        queue="support",
        api_base=API,
        credentials={"page_id": PAGE, "app_secret": "s", "verify_token": "v", "page_access_token": "page-token"},
    )
    async with aiohttp.ClientSession() as session:
        yield MessengerAdapter(account, session)


@pytest.fixture
def graph() -> Any:
    with aioresponses() as mocked:
        yield mocked


def sent_json(graph: Any) -> dict[str, Any]:
    calls = [call for key, calls in graph.requests.items() for call in calls]
    assert len(calls) == 1
    body: dict[str, Any] = calls[0].kwargs["json"]
    return body


def text(body: str = "Hello") -> OutboundMessage:
    return OutboundMessage(account_id="fb-main", recipient_id="6284512397351040", text=body)


async def test_text_reply_is_a_response_and_returns_the_message_id(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload={"recipient_id": "6284512397351040", "message_id": "m_sent_1"})
    receipt = await adapter.send(text())
    assert receipt.provider_message_id == "m_sent_1"
    assert sent_json(graph) == {
        "recipient": {"id": "6284512397351040"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hello"},
    }


async def test_tagged_message_sends_message_tag_and_tag(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload={"message_id": "m_sent_2"})
    message = OutboundMessage(
        account_id="fb-main",
        recipient_id="1",
        text="Your refund is approved.",
        messaging_type="MESSAGE_TAG",
        tag="HUMAN_AGENT",
    )
    await adapter.send(message)
    body = sent_json(graph)
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


async def test_update_messaging_type_is_passed_through(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload={"message_id": "m_sent_3"})
    await adapter.send(OutboundMessage(account_id="fb-main", recipient_id="1", text="Hi", messaging_type="UPDATE"))
    assert sent_json(graph)["messaging_type"] == "UPDATE"


async def test_attachment_is_sent_by_url(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload={"message_id": "m_sent_4"})
    message = OutboundMessage(
        account_id="fb-main",
        recipient_id="1",
        kind=MessageKind.FILE,
        attachments=(Attachment(kind=MessageKind.FILE, url="https://files.example/invoice.pdf"),),
    )
    await adapter.send(message)
    assert sent_json(graph)["message"] == {
        "attachment": {"type": "file", "payload": {"url": "https://files.example/invoice.pdf", "is_reusable": True}}
    }


async def test_text_over_the_limit_is_refused_before_calling(adapter: MessengerAdapter, graph: Any) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await adapter.send(text("x" * 2001))
    assert caught.value.provider_code == "text_too_long"
    assert not graph.requests


def graph_error(code: int, subcode: int | None = None, message: str = "error") -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@pytest.mark.parametrize(
    ("code", "subcode", "provider_code", "words"),
    [
        (10, 2018278, "10/2018278", "24-hour messaging window has closed"),
        (551, None, "551", "blocked the page"),
        (190, None, "190", "access token"),
        (100, 2018001, "100/2018001", "cannot be reached"),
        (200, 1545041, "200/1545041", "Another app controls"),
    ],
)
async def test_permanent_refusals_carry_code_and_an_agent_sentence(
    adapter: MessengerAdapter, graph: Any, code: int, subcode: int | None, provider_code: str, words: str
) -> None:
    graph.post(SEND_URL, status=400, payload=graph_error(code, subcode, "Meta's own words"))
    with pytest.raises(ProviderRejected) as caught:
        await adapter.send(text())
    assert caught.value.provider_code == provider_code
    assert words in caught.value.reason
    assert caught.value.detail == "Meta's own words"


@pytest.mark.parametrize(("code", "subcode"), [(4, None), (613, None), (4, 2018022)])
async def test_rate_limits_are_transient_with_retry_after(
    adapter: MessengerAdapter, graph: Any, code: int, subcode: int | None
) -> None:
    graph.post(SEND_URL, status=400, payload=graph_error(code, subcode))
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.send(text())
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    assert caught.value.provider_code is not None
    assert caught.value.provider_code.startswith(str(code))


async def test_retry_after_header_wins(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, status=429, payload=graph_error(613), headers={"Retry-After": "7"})
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.send(text())
    assert caught.value.retry_after == 7.0


async def test_temporary_send_failure_is_transient(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, status=500, payload=graph_error(1200))
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.send(text())
    assert caught.value.provider_code == "1200"


async def test_server_error_without_json_is_transient(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, status=503, body="<html>busy</html>")
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.send(text())
    assert caught.value.provider_code == "http_503"


async def test_timeout_is_transient(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, exception=TimeoutError())
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.send(text())
    assert caught.value.provider_code == "timeout"


async def test_connection_error_is_transient(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, exception=aiohttp.ClientConnectionError("refused"))
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.send(text())
    assert caught.value.provider_code == "network"


async def test_unknown_code_marked_transient_by_meta_is_retried(adapter: MessengerAdapter, graph: Any) -> None:
    error = graph_error(9999)
    error["error"]["is_transient"] = True
    graph.post(SEND_URL, status=400, payload=error)
    with pytest.raises(ProviderUnavailable):
        await adapter.send(text())


async def test_check_reads_the_page_name(adapter: MessengerAdapter, graph: Any) -> None:
    graph.get(f"{API}/{PAGE}?access_token=page-token&fields=name", payload={"name": "Acme Support", "id": PAGE})
    assert "Acme Support" in await adapter.check()


async def test_check_with_a_bad_token_is_rejected(adapter: MessengerAdapter, graph: Any) -> None:
    graph.get(re.compile(rf"^{re.escape(API)}/{PAGE}\?"), status=400, payload=graph_error(190))
    with pytest.raises(ProviderRejected):
        await adapter.check()


async def test_profile_returns_name_and_picture(adapter: MessengerAdapter, graph: Any) -> None:
    graph.get(
        re.compile(rf"^{re.escape(API)}/6284512397351040\?"),
        payload={"first_name": "Peter", "last_name": "Chang", "profile_pic": "https://pics.example/p.jpg", "id": "1"},
    )
    assert await adapter.profile("6284512397351040") == ProfileUpdate(
        channel=Channel.MESSENGER,
        account_id="fb-main",
        external_id="6284512397351040",
        display_name="Peter Chang",
        avatar="https://pics.example/p.jpg",
    )


async def test_profile_failure_is_none_not_an_error(adapter: MessengerAdapter, graph: Any) -> None:
    graph.get(re.compile(rf"^{re.escape(API)}/6284512397351040\?"), status=400, payload=graph_error(100))
    assert await adapter.profile("6284512397351040") is None


async def test_text_with_a_file_goes_out_as_two_messages_text_first(adapter: MessengerAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload={"message_id": "m_caption"})
    graph.post(SEND_URL, payload={"message_id": "m_file"})
    message = OutboundMessage(
        account_id="fb-main",
        recipient_id="1",
        kind=MessageKind.IMAGE,
        text="Here is the label",
        attachments=(Attachment(kind=MessageKind.IMAGE, url="https://files.example/label.png"),),
    )
    receipt = await adapter.send(message)
    assert receipt.provider_message_id == "m_file"
    bodies = [call.kwargs["json"]["message"] for calls in graph.requests.values() for call in calls]
    assert bodies == [
        {"text": "Here is the label", "metadata": "channelhub:part"},
        {"attachment": {"type": "image", "payload": {"url": "https://files.example/label.png", "is_reusable": True}}},
    ]


async def test_unsendable_attachment_is_refused_before_any_call(adapter: MessengerAdapter, graph: Any) -> None:
    message = OutboundMessage(
        account_id="fb-main",
        recipient_id="1",
        text="caption",
        attachments=(Attachment(kind=MessageKind.LOCATION, url="https://maps.example/x"),),
    )
    with pytest.raises(ProviderRejected) as caught:
        await adapter.send(message)
    assert caught.value.provider_code == "unsupported_content"
    assert not graph.requests
