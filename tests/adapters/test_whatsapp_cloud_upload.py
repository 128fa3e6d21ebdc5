"""WhatsAppCloudAdapter sends an agent's file by media upload (``POST /{phone-number-id}/media``, then the id)
when the hub gives it the bytes, against a mocked Graph API (aioresponses); the link otherwise."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.whatsapp_cloud import WhatsAppCloudAdapter
from hub.errors import ProviderRejected, ProviderUnavailable
from hub.model import Attachment, Channel, ChannelAccount, MessageKind, OutboundMessage
from hub.ports import FileUploader, StoredFile

API = "https://graph.example.test/v21.0"
NUMBER = "106540352242922"
SEND_URL = f"{API}/{NUMBER}/messages"
UPLOAD_URL = f"{API}/{NUMBER}/media"
OK = {"messaging_product": "whatsapp", "messages": [{"id": "wamid.sent1"}]}
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"  # more than one chunk
LINK = "https://hub.example/media/tok-1"


class Shelf:
    """The hub's side of the port, in memory: files by link token, streamed in chunks; counts what it opened
    and closed (the adapter must close every stream it opens)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        self.opened = 0
        self.closed = 0

    def __call__(self, attachment: Attachment) -> Any:
        return self._open(attachment)

    @asynccontextmanager
    async def _open(self, attachment: Attachment) -> AsyncIterator[StoredFile | None]:
        found = self.files.get(attachment.link_token or "")
        if found is None:
            yield None
            return
        data, mime, name = found
        self.opened += 1

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 4096):
                yield data[start : start + 4096]

        try:
            yield StoredFile(
                key=hashlib.sha256(data).hexdigest(), mime=mime, size=len(data), file_name=name, chunks=chunks()
            )
        finally:
            self.closed += 1


class Sink:
    """Where a multipart body is written to be read back (what aiohttp would put on the wire)."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += bytes(chunk)


async def form_fields(form: aiohttp.MultipartWriter) -> dict[str, tuple[str, bytes]]:
    """name -> (part headers as text, body) of a multipart body."""
    sink = Sink()
    await form.write(sink)
    fields = {}
    for raw in bytes(sink.data).split(f"--{form.boundary}".encode())[1:-1]:
        head, _, body = raw[2:-2].partition(b"\r\n\r\n")  # each part sits between CRLFs
        text = head.decode()
        name = text.split('name="', 1)[1].split('"', 1)[0]
        fields[name] = (text, body)
    return fields


@pytest.fixture
def shelf() -> Shelf:
    found = Shelf()
    found.files["tok-1"] = (PDF, "application/pdf", "invoice.pdf")
    return found


@pytest.fixture
async def adapter(shelf: Shelf) -> AsyncIterator[WhatsAppCloudAdapter]:
    account = ChannelAccount(
        id="wa-cloud",
        channel=Channel.WHATSAPP,
        provider="cloud",
        queue="support",
        api_base=API,
        credentials={"phone_number_id": NUMBER, "app_secret": "s", "verify_token": "v", "access_token": "tok"},
    )
    async with aiohttp.ClientSession() as session:
        found = WhatsAppCloudAdapter(account, session)
        assert isinstance(found, FileUploader)
        found.use_files(shelf)
        yield found


@pytest.fixture
def graph() -> Any:
    with aioresponses() as mocked:
        yield mocked


def calls(graph: Any, url: str) -> list[Any]:
    return [call for (method, called), found in graph.requests.items() if str(called) == url for call in found]


def document(token: str = "tok-1", text: str | None = "here it is") -> OutboundMessage:
    attachment = Attachment(
        kind=MessageKind.FILE, url=LINK, file_name="invoice.pdf", mime_type="application/pdf", link_token=token
    )
    return OutboundMessage(account_id="wa-cloud", recipient_id="+16505551234", text=text, attachments=(attachment,))


async def test_the_file_is_uploaded_then_sent_by_its_media_id(
    adapter: WhatsAppCloudAdapter, graph: Any, shelf: Shelf
) -> None:
    forms: list[dict[str, tuple[str, bytes]]] = []

    async def keep_form(url: Any, **kwargs: Any) -> None:
        forms.append(await form_fields(kwargs["data"]))

    graph.post(UPLOAD_URL, payload={"id": "1288899"}, callback=keep_form)
    graph.post(SEND_URL, payload=OK)
    receipt = await adapter.send(document())
    assert receipt.provider_message_id == "wamid.sent1"
    [upload] = calls(graph, UPLOAD_URL)
    assert upload.kwargs["headers"]["Authorization"] == "Bearer tok"
    [fields] = forms
    assert fields["messaging_product"][1] == b"whatsapp"
    assert fields["type"][1] == b"application/pdf"
    head, data = fields["file"]
    assert data == PDF
    assert 'filename="invoice.pdf"' in head
    assert "Content-Type: application/pdf" in head
    [send] = calls(graph, SEND_URL)
    assert send.kwargs["json"]["type"] == "document"
    assert send.kwargs["json"]["document"] == {"id": "1288899", "caption": "here it is", "filename": "invoice.pdf"}
    assert (shelf.opened, shelf.closed) == (1, 1)


async def test_a_file_the_hub_does_not_keep_goes_by_its_link(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    graph.post(SEND_URL, payload=OK)
    await adapter.send(document(token="not-kept", text=None))
    assert calls(graph, UPLOAD_URL) == []
    [send] = calls(graph, SEND_URL)
    assert send.kwargs["json"]["document"] == {"link": LINK, "filename": "invoice.pdf"}


async def test_an_upload_server_error_is_transient_and_the_retry_uploads_again(
    adapter: WhatsAppCloudAdapter, graph: Any, shelf: Shelf
) -> None:
    error = {"error": {"message": "An unexpected error has occurred.", "type": "OAuthException", "code": 2}}
    graph.post(UPLOAD_URL, status=500, payload=error)
    with pytest.raises(ProviderUnavailable):
        await adapter.send(document())
    assert calls(graph, SEND_URL) == []  # nothing was sent without its file
    graph.post(UPLOAD_URL, payload={"id": "777"})
    graph.post(SEND_URL, payload=OK)
    await adapter.send(document())
    assert calls(graph, SEND_URL)[0].kwargs["json"]["document"]["id"] == "777"
    assert (shelf.opened, shelf.closed) == (2, 2)


async def test_an_upload_refused_by_meta_is_permanent(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    refused = {"error": {"message": "(#131053) Media upload error", "type": "OAuthException", "code": 131053}}
    graph.post(UPLOAD_URL, status=400, payload=refused)
    with pytest.raises(ProviderRejected) as caught:
        await adapter.send(document())
    assert "could not upload the media" in str(caught.value)
    assert calls(graph, SEND_URL) == []


async def test_a_send_retried_after_the_upload_reuses_the_media_id(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    graph.post(UPLOAD_URL, payload={"id": "555"})
    graph.post(SEND_URL, status=503, payload={"error": {"message": "busy", "type": "OAuthException", "code": 2}})
    with pytest.raises(ProviderUnavailable):
        await adapter.send(document())
    graph.post(SEND_URL, payload=OK)
    await adapter.send(document())
    assert len(calls(graph, UPLOAD_URL)) == 1
    assert [c.kwargs["json"]["document"]["id"] for c in calls(graph, SEND_URL)] == ["555", "555"]


async def test_a_refused_send_forgets_the_media_id(adapter: WhatsAppCloudAdapter, graph: Any) -> None:
    graph.post(UPLOAD_URL, payload={"id": "555"})
    bad = {"error": {"message": "(#131009) Parameter value is not valid", "type": "OAuthException", "code": 131009}}
    graph.post(SEND_URL, status=400, payload=bad)
    with pytest.raises(ProviderRejected):
        await adapter.send(document())
    graph.post(UPLOAD_URL, payload={"id": "556"})
    graph.post(SEND_URL, payload=OK)
    await adapter.send(document())
    assert [c.kwargs["json"]["document"]["id"] for c in calls(graph, SEND_URL)] == ["555", "556"]
