"""Blobs in a directory on local disk: ``blobs/ab/cd/<sha256>`` (fan-out by hash prefix, so no folder grows
huge), written to ``incoming/`` first and renamed into place once complete and synced. Every blocking call runs
in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from hub.media.blobs import (
    CHUNK_BYTES,
    BlobNotFound,
    BlobStat,
    BlobStream,
    Digest,
    StoredBlob,
    byte_range,
    check_key,
    is_key,
)

__all__ = ["LocalBlobStore"]

#: bytes gathered from the incoming stream before one write (fewer thread hops than one per chunk)
_WRITE_BYTES = 1024 * 1024


class LocalBlobStore:
    """A ``BlobStore`` in the directory ``root`` (created when missing). Several processes may share it: a blob
    appears under its key only whole (rename), and two writers of the same content write the same bytes."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._incoming = self.root / "incoming"

    def path(self, key: str) -> Path:
        """Where the blob ``key`` lives (a checked key: no path tricks)."""
        check_key(key)
        return self._blobs / key[:2] / key[2:4] / key

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None) -> StoredBlob:
        digest = Digest(max_bytes)
        file, temp = await asyncio.to_thread(self._create_temp)
        try:
            buffer = bytearray()
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= _WRITE_BYTES:
                    await asyncio.to_thread(_write, file, digest, bytes(buffer))
                    buffer.clear()
            # the last write, the fsync and the rename in one trip to a worker thread (small files: two in all)
            blob = await asyncio.to_thread(self._finish, file, digest, bytes(buffer), temp)
            del buffer
        except BaseException:
            await asyncio.to_thread(_discard, file, temp)
            raise
        return blob

    async def open(self, key: str, start: int | None = None, end: int | None = None) -> BlobStream:
        path = self.path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        try:
            size = os.fstat(file.fileno()).st_size
            first, last = byte_range(key, size, start, end)
        except BaseException:
            file.close()
            raise

        async def release() -> None:
            file.close()

        return BlobStream(key=key, size=size, start=first, end=last, chunks=_read(file, first, last), release=release)

    async def stat(self, key: str) -> BlobStat:
        path = self.path(key)
        try:
            info = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        return _blob_stat(key, info)

    async def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        return True

    async def scan(self) -> AsyncIterator[BlobStat]:
        if not await asyncio.to_thread(self._blobs.is_dir):
            return
        for first in sorted(await asyncio.to_thread(os.listdir, self._blobs)):
            for stat in await asyncio.to_thread(_stats_under, self._blobs / first):
                yield stat

    async def close(self) -> None:
        return None

    def _create_temp(self) -> tuple[BinaryIO, Path]:
        self._incoming.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._incoming, suffix=".part")
        return os.fdopen(fd, "wb"), Path(name)

    def _finish(self, file: BinaryIO, digest: Digest, data: bytes, temp: Path) -> StoredBlob:
        _write(file, digest, data)
        _sync_and_close(file)
        blob = digest.result()
        self._move_into_place(temp, blob.key)
        return blob

    def _move_into_place(self, temp: Path, key: str) -> None:
        final = self.path(key)
        if final.exists():  # the same content is here already: keep one copy
            temp.unlink()
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        _sync_directory(final.parent)


def _write(file: BinaryIO, digest: Digest, data: bytes) -> None:
    digest.update(data)
    file.write(data)


def _sync_and_close(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


def _discard(file: BinaryIO, temp: Path) -> None:
    file.close()
    temp.unlink(missing_ok=True)


def _sync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX: the directory entry is data of the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _read(file: BinaryIO, first: int, last: int) -> AsyncIterator[bytes]:
    try:
        if first:
            await asyncio.to_thread(file.seek, first)
        remaining = last - first + 1
        while remaining > 0:
            chunk = await asyncio.to_thread(file.read, min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        file.close()


def _stats_under(folder: Path) -> list[BlobStat]:
    stats = []
    for dirpath, _dirs, files in os.walk(folder):
        for name in filter(is_key, files):
            with contextlib.suppress(FileNotFoundError):  # deleted while we walk
                stats.append(_blob_stat(name, os.stat(os.path.join(dirpath, name))))
    return stats


def _blob_stat(key: str, info: os.stat_result) -> BlobStat:
    return BlobStat(key=key, size=info.st_size, stored_at=datetime.fromtimestamp(info.st_mtime, UTC))
