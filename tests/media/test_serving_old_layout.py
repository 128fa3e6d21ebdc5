"""A hub whose local store was written before the one-level fan-out (``blobs/ab/cd/<sha256>``) still serves
those files through its routes, whole and by byte range."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.api.keys import HUB
from hub.api.server import create_app
from hub.media import LocalBlobStore
from hub.settings import Settings
from tests.media._serving import ACCOUNT, stored_video


async def test_a_file_kept_in_the_old_layout_is_served_whole_and_by_range(
    sqlite_url: str, make_settings: Callable[..., Settings], aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(ACCOUNT + f'\n[media]\npath = "{tmp_path / "media"}"\n', database_url=sqlite_url)
    app = create_app(settings)
    client = await aiohttp_client(app)
    hub = app[HUB]
    assert isinstance(hub.blobs, LocalBlobStore)
    video = b"\x00\x00\x00\x18ftypmp42" + secrets.token_bytes(300_000)
    key = hashlib.sha256(video).hexdigest()
    old = tmp_path / "media" / "blobs" / key[:2] / key[2:4] / key  # where an older hub put it
    old.parent.mkdir(parents=True)
    old.write_bytes(video)
    token = await stored_video(hub, settings, key=key, size=len(video))
    whole = await client.get(f"/media/{token}")
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "video/mp4"
    assert await whole.read() == video
    part = await client.get(f"/media/{token}", headers={"Range": "bytes=1000-1999"})
    assert part.status == 206
    assert await part.read() == video[1000:2000]
    old.unlink()
    gone = await client.get(f"/media/{token}")
    assert gone.status == 404
