"""Media over HTTP: agents upload files, read attachments, admins retry a failed fetch, and providers fetch an
agent's file by the public link the hub sent them.

Routes: ``POST /api/v1/uploads`` (multipart, field ``file``), ``GET /api/v1/media/{id}`` (``?thumbnail=1``),
``POST /api/v1/media/{id}/retry`` (admin), and the public ``GET /media/{token}`` (no login: the token is the
capability, valid for a few days). Bytes are streamed chunk by chunk in both directions, never read whole.
Every media response carries ``X-Content-Type-Options: nosniff`` and a CSP that lets nothing run; anything
but an image, audio or video is sent as an attachment (a download), never shown inline. From a local blob store
the kernel sends the file (``FileResponse``: sendfile, ranges); from S3 the chunks are relayed as they come.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from hub.api._fields import json_ok, path_id, query_flag
from hub.api._hub import actor, hub_of
from hub.api.errors import ApiError, error_response
from hub.api.openapi import documented, schema
from hub.errors import Invalid
from hub.media import BlobNotFound, LocalBlobStore, RangeNotSatisfiable, StoreUnavailable
from hub.media.blobs import CHUNK_BYTES
from hub.usecases.media import (
    AttachmentRecord,
    attachment_for,
    delete_contact_media,
    linked_attachment,
    retry_fetch,
    store_unavailable,
    upload_file,
)

__all__ = ["setup"]

routes = web.RouteTableDef()

UPLOAD = schema(
    "Upload",
    {
        "type": "object",
        "required": ["id", "mime", "size", "sha256", "file_name"],
        "properties": {
            "id": {"type": "string", "description": 'what a message\'s attachments name: {"upload": id}'},
            "mime": {"type": "string", "description": "the type sniffed from the bytes"},
            "size": {"type": "integer"},
            "sha256": {"type": "string"},
            "file_name": {"type": ["string", "null"]},
        },
    },
)
ATTACHMENT = schema(
    "Attachment",
    {
        "type": "object",
        "properties": {
            "id": {"type": ["integer", "null"]},
            "kind": {"type": "string", "description": "image, audio, video, file, sticker, ..."},
            "state": {"enum": ["pending", "stored", "failed"]},
            "mime": {"type": ["string", "null"]},
            "size": {"type": ["integer", "null"]},
            "sha256": {"type": ["string", "null"]},
            "file_name": {"type": ["string", "null"]},
            "url": {"type": ["string", "null"], "description": "the hub's own authenticated URL, once stored"},
            "error": {"type": ["string", "null"]},
        },
    },
)
CONTACT_DATA_DELETED = schema(
    "ContactDataDeleted",
    {
        "type": "object",
        "required": ["attachments", "blobs", "blobs_pending"],
        "properties": {
            "attachments": {"type": "integer", "description": "attachments whose media were removed"},
            "blobs": {"type": "integer", "description": "files deleted from the blob store"},
            "blobs_pending": {
                "type": "integer",
                "description": "files the blob store could not delete now (an outage): no attachment names them "
                "any more, so nobody gets them through the hub, and the orphan walk deletes them once the store "
                "is back",
            },
        },
    },
)

#: shown in the page (inline); everything else is a download
_INLINE = ("image/", "audio/", "video/")
#: types a browser would run as a document or script: always downloads, whatever they claim
_ACTIVE = frozenset({"text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml"})
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; media-src 'self'; img-src 'self'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
}


# ------------------------------------------------------------------ uploads


def _malformed_form() -> ApiError:
    return ApiError(400, "invalid_form", "the body is not a complete multipart/form-data form (a boundary is missing)")


async def _file_part(request: web.Request) -> BodyPartReader:
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "unsupported_media_type", "send the file as multipart/form-data, in the field 'file'")
    try:  # aiohttp's reader raises ValueError for a form without its boundary
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise ApiError(422, "missing_field", "the form has no field 'file'", field="file")
            if isinstance(part, BodyPartReader) and part.name == "file":
                return part
            if isinstance(part, BodyPartReader):
                await part.release()
    except (ValueError, BadHttpMessage):  # BadHttpMessage: a part's headers that are no headers
        raise _malformed_form() from None


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """The file's bytes; a body that ends before the part's closing boundary is refused (its file was cut
    short), so a truncated upload is never kept as if it were whole."""
    while True:
        try:
            chunk = await part.read_chunk(CHUNK_BYTES)
        except (ValueError, BadHttpMessage):
            raise _malformed_form() from None
        if chunk:
            yield chunk
        elif not part.at_eof():
            raise _malformed_form()
        else:
            return


@routes.post("/api/v1/uploads")
@documented(
    "Upload a file to attach to a message",
    description="multipart/form-data with the file in the field `file`. Up to `[media] max_bytes` (413 "
    "`file_too_large`). The type is sniffed from the bytes; a file whose bytes disagree with its name or "
    "declared type is refused (422 `type_mismatch`); a form cut short or without its boundary is 400 "
    "`invalid_form`; a media store that cannot be used now (unreachable, credentials refused, no bucket) is 503 "
    '`media_store_unavailable`, with nothing kept. Attach it with `"attachments": [{"upload": id}]`.',
    ok=(201, UPLOAD),
    errors=(400, 413, 415, 422, 503),
    tag="media",
)
async def post_upload(request: web.Request) -> web.Response:
    by = await actor(request)
    hub = hub_of(request)
    part = await _file_part(request)
    declared = part.headers.get("Content-Type")
    try:
        upload = await upload_file(hub, hub.blobs, by, _chunks(part), file_name=part.filename, declared_mime=declared)
    except Invalid as exc:
        if exc.code == "file_too_large":
            raise ApiError(413, exc.code, exc.message, **exc.fields) from None
        raise
    return json_ok(upload.to_json(), status=201)


# ------------------------------------------------------------------ reading media


@routes.get("/api/v1/media/{id}")
@documented(
    "An attachment's bytes",
    description="Streams a stored attachment of a conversation the caller may see. `?thumbnail=1`: an "
    "image's small WebP thumbnail. Audio and video answer `Range` requests (206). Anything but an image, "
    "audio or video comes as a download (`Content-Disposition: attachment`). 409 `media_not_stored` while "
    "the fetch is pending, or when it failed; 503 `media_store_unavailable` when the media store cannot be used "
    "now.",
    query={"thumbnail": {"type": "integer", "enum": [0, 1]}},
    ok=(200, None),
    errors=(403, 404, 409, 416, 503),
    tag="media",
)
async def get_media(request: web.Request) -> web.StreamResponse:
    by = await actor(request)
    hub = hub_of(request)
    record = await attachment_for(hub, by, path_id(request))
    if query_flag(request, "thumbnail"):
        if record.thumbnail_key is None:
            raise ApiError(404, "no_thumbnail", "this attachment has no thumbnail")
        return await _stream(request, record, key=record.thumbnail_key, mime="image/webp", thumbnail=True)
    return await _stream(request, record, key=record.blob_key or "", mime=record.mime or "application/octet-stream")


@routes.post("/api/v1/media/{id}/retry")
@documented(
    "Fetch a failed attachment again (admin)",
    description="The attachment goes back to `pending`, due now; consoles see it change.",
    ok=(200, ATTACHMENT),
    errors=(403, 404, 409),
    tag="media",
)
async def post_retry(request: web.Request) -> web.Response:
    by = await actor(request)
    hub = hub_of(request)
    found = await retry_fetch(hub, by, path_id(request))
    hub.media.kick()
    return json_ok(found)


async def public_media(request: web.Request) -> web.StreamResponse:
    """An agent's file, fetched by a provider (Twilio, Viber, ...) through the link the hub sent it."""
    token = request.match_info["token"]
    if not re.fullmatch(r"[A-Za-z0-9_-]{20,64}", token):
        raise ApiError(404, "not_found", "no such media link, or it expired")
    record = await linked_attachment(hub_of(request), token)
    return await _stream(request, record, key=record.blob_key or "", mime=record.mime or "application/octet-stream")


def _disposition(record: AttachmentRecord, mime: str, *, thumbnail: bool) -> str:
    inline = thumbnail or (mime.startswith(_INLINE) and mime not in _ACTIVE)
    name = record.file_name or f"attachment-{record.id}"
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"{'inline' if inline else 'attachment'}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


class _Unsatisfiable(Exception):
    """A Range header the hub cannot serve: malformed, several ranges, or starting past the end."""


def _asked_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The inclusive byte range the ``Range`` header asks for, read as aiohttp's ``FileResponse`` reads it (it
    sends a local file's ranges), so both stores answer alike; None without one. _Unsatisfiable otherwise."""
    if "Range" not in request.headers:
        return None
    try:
        asked = request.http_range
    except ValueError:
        raise _Unsatisfiable from None
    start, stop = asked.start, asked.stop
    if start is None:
        return None
    if start < 0:  # the last N bytes
        return max(size + start, 0), size - 1
    if start >= size:
        raise _Unsatisfiable
    return start, size - 1 if stop is None else min(stop, size) - 1


def _unsatisfiable(size: int) -> web.Response:
    response = error_response(
        416, "range_not_satisfiable", f"the range asked for is not within the file's {size} bytes", size=size
    )
    response.headers.update({**_SECURITY_HEADERS, "Content-Range": f"bytes */{size}"})
    return response


async def _stream(
    request: web.Request, record: AttachmentRecord, *, key: str, mime: str, thumbnail: bool = False
) -> web.StreamResponse:
    blobs = hub_of(request).blobs
    if mime in _ACTIVE:
        mime = "application/octet-stream"  # never run as a page, even when downloaded and opened
    ranged = not thumbnail and mime.startswith(("audio/", "video/"))
    headers = {
        **_SECURITY_HEADERS,
        "Content-Type": mime,
        "Content-Disposition": _disposition(record, mime, thumbnail=thumbnail),
        "Cache-Control": "private, max-age=86400, immutable",
    }
    if isinstance(blobs, LocalBlobStore):
        # a file on this machine: the kernel sends it (sendfile), ranges and all, with nothing read into memory
        try:
            path = await blobs.locate(key)
        except BlobNotFound:
            raise ApiError(404, "not_found", "the attachment's bytes are no longer kept") from None
        if "Range" in request.headers and request.if_range is None:
            size = (await asyncio.to_thread(path.stat)).st_size
            try:
                _asked_range(request, size)  # checked here: FileResponse's own 416 has no JSON body
            except _Unsatisfiable:
                return _unsatisfiable(size)
        return web.FileResponse(path, headers=headers)
    start = end = None
    try:
        if ranged:
            size = record.size if record.size is not None else (await blobs.stat(key)).size
            try:
                asked = _asked_range(request, size)
            except _Unsatisfiable:
                return _unsatisfiable(size)
            if asked is not None:
                start, end = asked
        stream = await blobs.open(key, start, end)
    except RangeNotSatisfiable as exc:
        return _unsatisfiable(exc.size)
    except BlobNotFound:
        raise ApiError(404, "not_found", "the attachment's bytes are no longer kept") from None
    except StoreUnavailable as exc:  # before the first byte: the answer can still say so
        raise store_unavailable(exc, "read") from None
    async with stream:
        response = web.StreamResponse(status=206 if start is not None else 200, headers=headers)
        response.content_length = stream.length
        if ranged:
            response.headers["Accept-Ranges"] = "bytes"
        if start is not None:
            response.headers["Content-Range"] = f"bytes {stream.start}-{stream.end}/{stream.size}"
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in stream:
                await response.write(chunk)
        await response.write_eof()
    return response


@routes.delete("/api/v1/contacts/{id}/data")
@documented(
    "Delete a contact's data (admin)",
    description="Removes the media of every conversation of the contact's identities: the bytes go from the "
    "blob store (unless another message still has the same file) and each attachment keeps only its place, "
    "`failed` with the reason. Answers how many attachments and blobs went. A blob store that cannot delete now "
    "(an outage) does not fail the deletion: its files are counted in `blobs_pending` and deleted by the "
    "media sweep's orphan walk once the store is back.",
    ok=(200, CONTACT_DATA_DELETED),
    errors=(403, 404),
    tag="contacts",
)
async def delete_contact_data(request: web.Request) -> web.Response:
    by = await actor(request)
    hub = hub_of(request)
    return json_ok(await delete_contact_media(hub, hub.blobs, by, path_id(request)))


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.router.add_get("/media/{token}", public_media)
