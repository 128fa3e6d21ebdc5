"""A hub whose media live in an S3-compatible store (moto's server on loopback) serves them through its routes:
whole, by byte range, and 416 past the end; with the same security headers as from a local store."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from hub.api.keys import HUB
from hub.api.server import create_app
from hub.model import Attachment, InboundMessage, MessageKind
from hub.settings import Settings
from hub.store.ingest import store_group
from hub.store.tables import attachments, messages
from tests.media.conftest import S3_CREDENTIALS, make_bucket

ACCOUNT = """
[[accounts]]
id = "fb"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9/graph"
page_id = "1047"
app_secret = "s"
verify_token = "v"
page_access_token = "t"
"""


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_video_in_s3_is_served_whole_and_by_range(
    s3_endpoint: str, sqlite_url: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    bucket = await make_bucket(s3_endpoint)
    media = (
        f'\n[media]\nurl = "s3://{bucket}/hub"\nendpoint_url = "{s3_endpoint}"\n'
        f'access_key = "{S3_CREDENTIALS["access_key"]}"\nsecret_key = "{S3_CREDENTIALS["secret_key"]}"\n'
    )
    settings = make_settings(ACCOUNT + media, database_url=sqlite_url)
    app = create_app(settings)
    client = await aiohttp_client(app)
    hub = app[HUB]
    video = b"\x00\x00\x00\x18ftypmp42" + secrets.token_bytes(300_000)
    blob = await hub.blobs.put(_chunks(video))
    now = hub.clock()
    event = InboundMessage(
        channel=settings.account("fb").channel,
        account_id="fb",
        sender_id="psid-1",
        provider_message_id="m-video",
        sent_at=now,
        kind=MessageKind.VIDEO,
        attachments=(Attachment(kind=MessageKind.VIDEO, url="https://cdn.test/v.mp4"),),
    )
    await store_group(hub.store, [[event]], {a.id: a for a in settings.accounts}, now)
    token = secrets.token_urlsafe(32)
    async with hub.store.write() as connection:
        message_id = (await connection.execute(select(messages.c.id))).scalar_one()
        await connection.execute(
            update(attachments)
            .where(attachments.c.message_id == message_id)
            .values(
                state="stored",
                blob_key=blob.key,
                sha256=blob.key,
                size=blob.size,
                mime="video/mp4",
                link_token=token,
                link_expires_at=now + timedelta(days=1),
                stored_at=now,
                locked_until=None,
                next_attempt_at=None,
            )
        )
    whole = await client.get(f"/media/{token}")
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Content-Disposition"].startswith("inline;")
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert await whole.read() == video
    part = await client.get(f"/media/{token}", headers={"Range": "bytes=1000-1999"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(video)}"
    assert await part.read() == video[1000:2000]
    past = await client.get(f"/media/{token}", headers={"Range": f"bytes={len(video)}-"})
    assert past.status == 416
    assert (await past.json())["error"]["code"] == "range_not_satisfiable"
