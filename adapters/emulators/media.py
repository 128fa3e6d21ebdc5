"""Media in the emulators, as the providers handle it: a customer's file is kept and served by the emulated
provider (a CDN link for Messenger and Viber, a media URL for Twilio, a media id looked up through the Graph
API for WhatsApp Cloud), and a file the hub sends by link is fetched from the hub, the way a provider
downloads it, with the outcome kept on the sent record (``media_fetched``) for ``/_emulator/sent``.

Routes: ``GET /_emulator/media/{name}`` (the bytes), ``POST /_emulator/media`` (keep a file for a later
``say``: multipart field ``file``; answers its ``media_url``).
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from PIL import Image

__all__ = ["MEDIA_SHELF", "MediaShelf", "fetch_sent_media", "sample", "setup"]

_SAMPLE_TYPES = {
    "image": "image/png",
    "sticker": "image/png",
    "audio": "audio/ogg",
    "video": "video/mp4",
    "file": "application/pdf",
    "document": "application/pdf",
}


def sample(kind: str) -> tuple[bytes, str]:
    """A small file of the kind a customer sends in the demo: a real PNG for images, plausible bytes else."""
    if kind in ("image", "sticker"):
        out = io.BytesIO()
        Image.new("RGB", (320, 200), (58, 110, 165)).save(out, "PNG")
        return out.getvalue(), "image/png"
    if kind == "audio":
        return b"OggS\x00\x02" + bytes(4090), "audio/ogg"
    if kind == "video":
        return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4000), "video/mp4"
    return b"%PDF-1.4\n% an emulated document\n%%EOF\n", "application/pdf"


class MediaShelf:
    """The files the emulated providers hold, by name; ``base`` is where the emulator is reached."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.ids: dict[str, str] = {}  # WhatsApp Cloud media id -> its URL here
        self.uploads: dict[str, str | None] = {}  # a media id the hub uploaded -> the file name it gave
        self.base = ""

    def keep(self, data: bytes, mime: str, extension: str = "") -> str:
        """Keep ``data``; its URL on the emulator."""
        name = secrets.token_hex(8) + (f".{extension}" if extension else "")
        self.files[name] = (data, mime)
        return f"{self.base}/_emulator/media/{name}"

    def upload(self, data: bytes, mime: str, file_name: str | None) -> str:
        """Keep a file the hub uploaded (WhatsApp Cloud's ``/{phone-number-id}/media``); its media id, which
        ``GET /{media-id}`` also resolves, as Meta's."""
        media_id = str(secrets.randbelow(10**15) + 10**15)
        self.ids[media_id] = self.keep(data, mime)
        self.uploads[media_id] = file_name
        return media_id

    def uploaded_file(self, media_id: str) -> dict[str, Any] | None:
        """What a media id the hub uploaded holds, in the shape of ``media_fetched``; None if it is unknown."""
        if media_id not in self.uploads:
            return None
        data, mime = self.files[self.ids[media_id].rsplit("/", 1)[-1]]
        return {
            "id": media_id,
            "via": "upload",
            "status": 200,
            "bytes": len(data),
            "type": mime,
            "file_name": self.uploads[media_id],
        }

    def sample_url(self, kind: str) -> tuple[str, str]:
        """A sample file of ``kind``, kept; (its URL, its type)."""
        data, mime = sample(kind)
        return self.keep(data, mime, mime.rsplit("/", 1)[-1]), mime


#: the ``say`` kinds that carry a file, and the sample each gets when the caller gives no ``media_url``
SAMPLE_KINDS = {
    "image": "image",
    "picture": "image",
    "audio": "audio",
    "video": "video",
    "file": "file",
    "document": "file",
}


MEDIA_SHELF = web.AppKey("emulator_media", MediaShelf)
"""The shelf the media routes serve from (``setup`` puts it on the emulator app)."""


def shelf_of(state: Any) -> MediaShelf:
    found = getattr(state, "media", None)
    if not isinstance(found, MediaShelf):
        found = MediaShelf()
        state.media = found
    return found


async def _serve(request: web.Request) -> web.Response:
    found = request.app[MEDIA_SHELF].files.get(request.match_info["name"])
    if found is None:
        return web.Response(status=404, text="no such media")
    data, mime = found
    return web.Response(body=data, content_type=mime)


def _refused(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def _keep(request: web.Request) -> web.Response:
    """Keep the form's ``file``; a body that is not a whole multipart form is a 4xx saying how to send one,
    never a 500 (aiohttp's reader asserts on another type and raises ValueError without a boundary)."""
    shelf = request.app[MEDIA_SHELF]
    shelf.base = shelf.base or str(request.url.origin())
    if not request.content_type.startswith("multipart/"):
        return _refused(415, "unsupported_media_type", "send the file as multipart/form-data, in the field 'file'")
    try:
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, aiohttp.BodyPartReader) and part.name == "file":
                data = await part.read(decode=False)
                mime = part.headers.get("Content-Type") or "application/octet-stream"
                return web.json_response({"media_url": shelf.keep(bytes(data), mime), "mime": mime})
    except (ValueError, BadHttpMessage):
        return _refused(400, "invalid_form", "the body is not a complete multipart/form-data form")
    return _refused(400, "missing_field", "no field 'file'")


def media_urls(body: dict[str, Any]) -> list[str]:
    """The links a send asks the provider to fetch: Twilio's ``MediaUrl``, Viber's ``media``, Messenger's
    attachment ``payload.url``, WhatsApp Cloud's ``link``."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key in ("MediaUrl", "media", "url", "link") and value.startswith("http"):
            found.append(value)

    walk(body)
    return found


async def fetch_sent_media(session: aiohttp.ClientSession, urls: Iterable[str]) -> list[dict[str, Any]]:
    """Download each link as the provider would (no credentials); what each fetch gave."""
    results = []
    for url in urls:
        try:
            async with session.get(url) as response:
                data = await response.read()
                results.append(
                    {"url": url, "status": response.status, "bytes": len(data), "type": response.content_type}
                )
        except (aiohttp.ClientError, OSError) as exc:
            results.append({"url": url, "status": 0, "error": str(exc)})
    return results


def setup(app: web.Application, shelf: MediaShelf) -> None:
    """The media routes, serving ``shelf`` (the emulator state's: ``shelf_of(state)``)."""
    app[MEDIA_SHELF] = shelf
    app.router.add_get("/_emulator/media/{name}", _serve)
    app.router.add_post("/_emulator/media", _keep)
