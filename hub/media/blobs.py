"""The blob store port: content-addressed bytes, streamed in chunks, never read whole into memory.

A blob's key is the SHA-256 of its bytes (64 lowercase hex digits), so identical content is stored once and a
key names exactly one content. The database keeps the metadata (who sent it, its file name, its kind); a store
keeps only bytes.

Our exception hierarchy:

* MediaError                 -- anything a blob store refuses
  + BlobNotFound             -- no blob under that key
  + RangeNotSatisfiable      -- a byte range that starts past the end (HTTP 416); carries the blob's size
  + BlobTooLarge             -- more bytes than the store's limit; nothing is kept
  + InvalidKey               -- not a SHA-256 hex digest (never reaches a path or an object name)
  + StoreUnavailable         -- the store cannot be used now (unreachable, credentials refused, no bucket)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from hub.errors import ChannelhubError
from hub.media.sniff import SNIFF_BYTES, sniff_mime

__all__ = [
    "CHUNK_BYTES",
    "BlobNotFound",
    "BlobStat",
    "BlobStore",
    "BlobStream",
    "BlobTooLarge",
    "InvalidKey",
    "MediaError",
    "RangeNotSatisfiable",
    "StoreUnavailable",
    "StoredBlob",
    "check_key",
    "is_key",
]

#: the size of the chunks a store hands out when it reads a blob
CHUNK_BYTES = 256 * 1024

_KEY = re.compile(r"^[0-9a-f]{64}$")


class MediaError(ChannelhubError):
    """Base of the blob store's refusals."""


class BlobNotFound(MediaError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no blob {key}")
        self.key = key


class RangeNotSatisfiable(MediaError):
    def __init__(self, key: str, start: int, size: int) -> None:
        super().__init__(f"blob {key}: range starts at byte {start}, past its end ({size} bytes)")
        self.key = key
        self.start = start
        self.size = size


class BlobTooLarge(MediaError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"blob is larger than {limit} bytes")
        self.limit = limit


class InvalidKey(MediaError):
    def __init__(self, key: str) -> None:
        super().__init__(f"{key!r} is not a blob key (a SHA-256 hex digest)")
        self.key = key


class StoreUnavailable(MediaError):
    """The store cannot be used now: its server cannot be reached, refuses the credentials, or has no such
    bucket. A fault of the store's state, not of the request: worth trying again later. ``reason`` in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_key(name: str) -> bool:
    """Whether ``name`` is a blob key (a scan skips anything else it finds)."""
    return bool(_KEY.match(name))


def check_key(key: str) -> str:
    """``key`` itself when it is a SHA-256 hex digest; InvalidKey otherwise (no path or object-name tricks)."""
    if not _KEY.match(key):
        raise InvalidKey(key)
    return key


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBlob:
    """What ``put`` kept: the key (SHA-256 hex), the size and the type sniffed from the bytes."""

    key: str
    size: int
    mime: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobStat:
    """A blob as the store sees it; ``stored_at`` (UTC) lets a retention sweep find orphans by age."""

    key: str
    size: int
    stored_at: datetime


class BlobStream:
    """An opened blob (or part of it): the sizes are known before the first byte, so a response can set
    ``Content-Length`` and ``Content-Range``; iterate for the chunks, and close it (``async with``) when done.

    ``start`` and ``end`` are the inclusive byte positions sent, as in HTTP's ``Content-Range``."""

    def __init__(
        self,
        *,
        key: str,
        size: int,
        start: int,
        end: int,
        chunks: AsyncIterator[bytes],
        release: Callable[[], Awaitable[None]],
    ) -> None:
        self.key = key
        self.size = size
        self.start = start
        self.end = end
        self._chunks = chunks
        self._release = release

    @property
    def length(self) -> int:
        """How many bytes the stream yields."""
        return self.end - self.start + 1 if self.size else 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aclose(self) -> None:
        """Stop reading and release the file or connection (also when no chunk was read)."""
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()
        await self._release()

    async def read_all(self) -> bytes:
        """Every byte of the stream: for small blobs and tests only."""
        return b"".join([chunk async for chunk in self])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class BlobStore(Protocol):
    """Bytes by content. Implementations: ``LocalBlobStore`` (a directory), ``S3BlobStore`` (a bucket)."""

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None, sync: bool = True) -> StoredBlob:
        """Keep the bytes, streamed: SHA-256 and type computed on the way, the blob visible under its key only
        once complete. The same content twice is kept once, its time stored renewed (S3: when older than a few
        minutes), so that the orphan walk, which goes by that time, never takes a blob just handed out again.
        BlobTooLarge (nothing kept) past ``max_bytes``.

        Returned, the blob survives a crash; with ``sync=False`` only once ``sync`` was called with its key
        (its bytes are written, the last step that makes it durable is left to ``sync``)."""

    async def sync(self, keys: Iterable[str]) -> None:
        """Make the blobs ``keys``, kept by ``put(..., sync=False)``, survive a crash: one call for many blobs
        costs about what one blob's last step does. Nothing to do for a blob already durable."""

    async def open(self, key: str, start: int | None = None, end: int | None = None) -> BlobStream:
        """The blob, or the inclusive byte range ``start``..``end`` of it (``end`` past the last byte means to
        the end, as in HTTP). BlobNotFound; RangeNotSatisfiable when ``start`` is past the last byte."""

    async def stat(self, key: str) -> BlobStat:
        """Size and time stored. BlobNotFound."""

    async def delete(self, key: str) -> bool:
        """Remove the blob; False when there was none."""

    def scan(self) -> AsyncIterator[BlobStat]:
        """Every blob, in no particular order: what a retention sweep walks to find orphans."""

    async def drop_unfinished(self, before: datetime) -> int:
        """Delete what writes left unfinished in the store's ``incoming/`` area (a process stopped mid-write:
        a temporary file, an S3 upload never completed) and last written before ``before``; how many went. A
        write still under way is never that old (the orphan walk passes ``ORPHAN_GRACE`` ago)."""

    async def check(self) -> None:
        """Return quietly if the store can be used now; StoreUnavailable (with the reason) otherwise. Asked
        once at start-up, so that a missing bucket is said before the first upload fails."""

    async def close(self) -> None:
        """Release connections; the store is not used after."""


class Digest:
    """The SHA-256, size and sniffed type of a stream, fed one chunk at a time (shared by the stores)."""

    def __init__(self, max_bytes: int | None) -> None:
        self._sha = hashlib.sha256()
        self._head = bytearray()
        self._max_bytes = max_bytes
        self.size = 0

    def update(self, chunk: bytes) -> None:
        """Count and hash ``chunk``; BlobTooLarge as soon as the limit is passed."""
        self.size += len(chunk)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise BlobTooLarge(self._max_bytes)
        if len(self._head) < SNIFF_BYTES:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
        self._sha.update(chunk)

    def result(self) -> StoredBlob:
        return StoredBlob(key=self._sha.hexdigest(), size=self.size, mime=sniff_mime(bytes(self._head)))


def byte_range(key: str, size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """The inclusive range to send, clamped to the blob as HTTP does; RangeNotSatisfiable if it starts past
    the end. A whole empty blob is (0, -1)."""
    if start is None and end is None:
        return 0, size - 1
    first = start or 0
    if first < 0 or (end is not None and end < first):
        raise ValueError(f"invalid byte range {start}-{end}")
    if first >= size:
        raise RangeNotSatisfiable(key, first, size)
    last = size - 1 if end is None else min(end, size - 1)
    return first, last
