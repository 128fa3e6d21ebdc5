"""The opener the hub gives adapters that upload an agent's file (hub/media_send.py), on a real store and blob
store: a sent upload opens as its bytes, in chunks; a public ``url``, an expired link or removed bytes open as
nothing (the adapter then sends the link)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from hub.api.keys import HUB
from hub.media.blobs import CHUNK_BYTES
from hub.media_send import file_opener
from hub.model import Attachment, MessageKind
from tests.api.conftest import Api, MakeApi
from tests.api.test_media_api import _active, upload

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4096 + b"\n%%EOF\n"  # 1 MiB: several of the blob store's chunks


async def sent_attachment(api: Api) -> Attachment:
    """An agent replies with an upload; the attachment as the outbox hands it to the adapter."""
    alice = await api.agent("alice", ready=True)
    conversation_id = await _active(api, alice)
    pdf = await (await upload(alice, PDF, "invoice.pdf", "application/pdf")).json()
    await alice.json(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        {"attachments": [{"upload": pdf["id"]}]},
        status=201,
    )
    for _ in range(200):  # the outbox sends in the background: bounded wait
        if api.adapter.sent:
            break
        await asyncio.sleep(0.02)
    [message] = api.adapter.sent
    [attachment] = message.attachments
    assert isinstance(attachment, Attachment)
    return attachment


async def read(api: Api, attachment: Attachment) -> Any:
    hub = api.app[HUB]
    async with file_opener(hub.store, hub.blobs, api.clock)(attachment) as stored:
        if stored is None:
            return None
        chunks = [chunk async for chunk in stored.chunks]
        return stored, chunks


async def test_a_sent_upload_opens_as_its_bytes_in_chunks(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)
    attachment = await sent_attachment(api)
    stored, chunks = await read(api, attachment)
    assert b"".join(chunks) == PDF
    assert max(len(chunk) for chunk in chunks) <= CHUNK_BYTES < len(PDF)  # streamed, not read whole
    assert (stored.mime, stored.size, stored.file_name) == ("application/pdf", len(PDF), "invoice.pdf")
    assert stored.key == hashlib.sha256(PDF).hexdigest()


async def test_what_the_hub_keeps_no_bytes_for_opens_as_nothing(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)
    attachment = await sent_attachment(api)
    public = Attachment(kind=MessageKind.FILE, url="https://files.example/i.pdf")
    assert await read(api, public) is None
    api.clock.advance(8 * 24 * 3600)  # the link lives 7 days
    assert await read(api, attachment) is None


async def test_removed_bytes_open_as_nothing(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)
    attachment = await sent_attachment(api)
    assert await api.app[HUB].blobs.delete(hashlib.sha256(PDF).hexdigest())
    assert await read(api, attachment) is None
