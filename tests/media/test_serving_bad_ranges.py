"""A byte range the hub cannot serve is answered the same way from a directory and from S3: 416 with the JSON
error ``range_not_satisfiable`` (with ``size``) and ``Content-Range: bytes */<size>``, never an empty body or a
500; a good range is still 206."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.api.keys import HUB
from hub.api.server import create_app
from hub.settings import Settings
from tests.media._serving import ACCOUNT, stored_video
from tests.media.conftest import S3_CREDENTIALS, make_bucket

VIDEO = b"\x00\x00\x00\x18ftypmp42" + secrets.token_bytes(5000)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _media_section(where: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if where == "local":
        return f'\n[media]\npath = "{tmp_path / "media"}"\n'
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = await make_bucket(endpoint)
    return (
        f'\n[media]\nurl = "s3://{bucket}/hub"\nendpoint_url = "{endpoint}"\n'
        f'access_key = "{S3_CREDENTIALS["access_key"]}"\nsecret_key = "{S3_CREDENTIALS["secret_key"]}"\n'
    )


@pytest.mark.parametrize("where", ["local", "s3"])
async def test_bad_ranges_are_416_with_a_code_from_either_store(
    where: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_url: str,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
) -> None:
    settings = make_settings(ACCOUNT + await _media_section(where, request, tmp_path), database_url=sqlite_url)
    app = create_app(settings)
    client = await aiohttp_client(app)
    hub = app[HUB]
    blob = await hub.blobs.put(_chunks(VIDEO))
    token = await stored_video(hub, settings, key=blob.key, size=blob.size)

    good = await client.get(f"/media/{token}", headers={"Range": "bytes=10-19"})
    assert good.status == 206
    assert await good.read() == VIDEO[10:20]
    for bad in ("bytes=20-10", f"bytes={len(VIDEO)}-", "bytes=abc", "bytes=0-1,5-6"):
        response = await client.get(f"/media/{token}", headers={"Range": bad})
        assert response.status == 416, bad
        assert response.headers["Content-Range"] == f"bytes */{len(VIDEO)}", bad
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        error = (await response.json())["error"]
        assert (error["code"], error["size"]) == ("range_not_satisfiable", len(VIDEO)), bad
