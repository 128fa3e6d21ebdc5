"""A hub whose media live in an S3-compatible store (moto's server on loopback) serves them through its routes:
whole, by byte range, and 416 past the end; with the same security headers as from a local store."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from hub.api.keys import HUB
from hub.api.server import create_app
from hub.settings import Settings
from tests.media._serving import ACCOUNT, stored_video
from tests.media.conftest import S3_CREDENTIALS, make_bucket


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
    token = await stored_video(hub, settings, key=blob.key, size=blob.size)
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
