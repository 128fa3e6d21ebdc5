"""WhatsAppCloudAdapter.send / check against a mocked Graph API (aioresponses)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.whatsapp_cloud import WhatsAppCloudAdapter
from hub.errors import ProviderRejected, ProviderUnavailable
from hub.model import Attachment, Channel, ChannelAccount, MessageKind, OutboundMessage, TemplateBinding

API = "https://graph.example.test/v21.0"
NUMBER = "106540352242922"
SEND_URL = f"{API}/{NUMBER}/messages"
OK = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "16505551234", "wa_id": "16505551234"}],
    "messages": [{"id": "wamid.sent1"}],
}


@pytest.fixture
async def adapter() -> AsyncIterator[WhatsAppCloudAdapter]:
    account = ChannelAccount(
        id="wa-cloud",
        channel=Channel.WHATSAPP,
        provider="cloud",
        queue="support",
        api_base=API,
        credentials={"phone_number_id": NUMBER, "app_secret": "s", "verify_token": "v", "access_token": "tok"},
    )
    async with aiohttp.ClientSession() as session:
        yield WhatsAppCloudAdapter(account, session)


@pytest.fixture
def graph() -> Any:
    with aioresponses() as mocked:
        yield mocked


def only_call(graph: Any) -> Any:
    calls = [call for calls in graph.requests.values() for call in calls]
    assert len(calls) == 1
    return calls[0]


def text(body: str = "Your ticket #123 is being handled.") -> OutboundMessage:
    return OutboundMessage(account_id="wa-cloud", recipient_id="+16505551234", text=body)


async def test_text_is_sent_with_bearer_token(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload=OK)
    receipt = await adapter.send(text())
    assert receipt.provider_message_id == "wamid.sent1"
    call = only_call(graph)
    assert call.kwargs["headers"]["Authorization"] == "Bearer tok"
    assert call.kwargs["json"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "Your ticket #123 is being handled."},
    }


async def test_template_with_body_parameters(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload=OK)
    binding = TemplateBinding(name="order_update", language="en_US", parameters=("Jane", "#123"))
    await adapter.send(
        OutboundMessage(account_id="wa-cloud", recipient_id="16505551234", kind=MessageKind.TEMPLATE, template=binding)
    )
    body = only_call(graph).kwargs["json"]
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Jane"}, {"type": "text", "text": "#123"}]}
        ],
    }


async def test_document_by_link_with_caption_and_filename(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload=OK)
    attachment = Attachment(kind=MessageKind.FILE, url="https://files.example/i.pdf", file_name="invoice.pdf")
    await adapter.send(
        OutboundMessage(
            account_id="wa-cloud",
            recipient_id="1",
            kind=MessageKind.FILE,
            text="Your invoice",
            attachments=(attachment,),
        )
    )
    body = only_call(graph).kwargs["json"]
    assert body["type"] == "document"
    assert body["document"] == {
        "link": "https://files.example/i.pdf",
        "caption": "Your invoice",
        "filename": "invoice.pdf",
    }


async def test_reply_to_sets_context(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload=OK)
    await adapter.send(OutboundMessage(account_id="wa-cloud", recipient_id="1", text="yes", reply_to="wamid.in1"))
    assert only_call(graph).kwargs["json"]["context"] == {"message_id": "wamid.in1"}


def error(code: int, title: str = "error") -> dict[str, Any]:
    return {
        "error": {
            "message": title,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": "details from Meta"},
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
        }
    }


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (131047, "24-hour customer service window has closed"),
        (131026, "could not deliver"),
        (132001, "template does not exist"),
        (190, "access token"),
        (100, "invalid"),
    ],
)
async def test_permanent_refusals(adapter: WhatsAppCloudAdapter, graph: Any, code: int, words: str) -> None:
    graph.post(SEND_URL, status=400, payload=error(code, "Re-engagement message"))
    with pytest.raises(ProviderRejected) as caught:
        await adapter.send(text())
    assert caught.value.provider_code == str(code)
    assert words in caught.value.reason
    assert caught.value.detail == "Re-engagement message (details from Meta)"


@pytest.mark.parametrize("code", [130429, 4, 80007, 131056])
async def test_rate_limits_are_transient_with_retry_after(adapter: WhatsAppCloudAdapter, graph: Any, code: int) -> None:
    graph.post(SEND_URL, status=429 if code == 130429 else 400, payload=error(code))
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.send(text())
    assert caught.value.provider_code == str(code)
    assert caught.value.retry_after is not None


async def test_server_error_timeout_and_connection_error_are_transient(
    adapter: WhatsAppCloudAdapter, graph: Any
) -> None:
    graph.post(SEND_URL, status=502, body="bad gateway")
    graph.post(SEND_URL, exception=TimeoutError())
    graph.post(SEND_URL, exception=aiohttp.ClientConnectorError(None, OSError(111, "refused")))  # type: ignore[arg-type]
    codes = []
    for _ in range(3):
        with pytest.raises(ProviderUnavailable) as caught:
            await adapter.send(text())
        codes.append(caught.value.provider_code)
    assert codes == ["http_502", "timeout", "network"]


async def test_audio_cannot_take_a_caption(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    attachment = Attachment(kind=MessageKind.AUDIO, url="https://files.example/a.ogg")
    with pytest.raises(ProviderRejected):
        await adapter.send(
            OutboundMessage(account_id="wa-cloud", recipient_id="1", text="hi", attachments=(attachment,))
        )
    assert not graph.requests


async def test_check_reads_the_number(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    graph.get(
        f"{API}/{NUMBER}?fields=display_phone_number,verified_name",
        payload={"display_phone_number": "+1 555-078-3881", "verified_name": "Acme", "id": NUMBER},
    )
    assert "+1 555-078-3881" in await adapter.check()
