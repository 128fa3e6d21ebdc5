"""Blobs in a directory on local disk: ``blobs/ab/<sha256>`` (fan-out by the first byte of the hash: 256 folders,
so none grows huge; all made with the store's first blob), written to ``incoming/`` first and renamed into place
once complete and synced (a file that a process stopped mid-write left there goes with the orphan walk,
``drop_unfinished``). Stores written before kept ``blobs/ab/cd/<sha256>``: a blob is looked for there too, and
the old folders are left as they are. Every blocking call runs in a worker thread, never on the event loop. A
blob's time stored is its file's modification time, renewed by a put of the same content.

A blob is durable once its file is synced (before the rename) and its folder is synced (after the rename, so that
the folder keeps its name). ``put`` does both, unless told ``sync=False``: then the folder's sync waits for
``sync(keys)``, which syncs each folder once for all the blobs renamed into it meanwhile (the fetcher calls it
once per round, before it records the round's files as stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
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
        """Where the blob ``key`` is written (a checked key: no path tricks). A blob of an older store may be at
        ``legacy_path`` instead: ``locate`` finds either."""
        check_key(key)
        return self._blobs / key[:2] / key

    def legacy_path(self, key: str) -> Path:
        """Where stores written before the one-level fan-out kept the blob ``key``: ``blobs/ab/cd/<key>``."""
        check_key(key)
        return self._blobs / key[:2] / key[2:4] / key

    async def locate(self, key: str) -> Path:
        """The file that holds the blob ``key``, in either layout (for a response that sends the file itself).
        BlobNotFound."""
        path, legacy = self.path(key), self.legacy_path(key)
        found = await asyncio.to_thread(_first_file, path, legacy)
        if found is None:
            raise BlobNotFound(key)
        return found

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None, sync: bool = True) -> StoredBlob:
        digest = Digest(max_bytes)
        incoming: _Incoming | None = None  # created by the first write: a blob smaller than one has one trip
        try:
            parts: list[bytes] = []  # the chunks as they came (no copy), up to about one write's worth
            gathered = 0
            async for chunk in chunks:
                parts.append(chunk)
                gathered += len(chunk)
                if gathered >= _WRITE_BYTES:
                    incoming = await asyncio.to_thread(self._write, incoming, digest, parts)
                    parts, gathered = [], 0
            # the last write, the fsync and the rename in one trip to a worker thread
            return await asyncio.to_thread(self._finish, incoming, digest, parts, sync)
        except BaseException:
            if incoming is not None:
                await asyncio.to_thread(incoming.discard)
            raise

    async def sync(self, keys: Iterable[str]) -> None:
        folders = {os.path.dirname(self.path(key)) for key in keys}
        if folders:
            await asyncio.to_thread(_sync_directories, sorted(folders))

    async def open(self, key: str, start: int | None = None, end: int | None = None) -> BlobStream:
        path, legacy = self.path(key), self.legacy_path(key)
        file = await asyncio.to_thread(_open_first, path, legacy)
        if file is None:
            raise BlobNotFound(key)
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
        path, legacy = self.path(key), self.legacy_path(key)
        info = await asyncio.to_thread(_stat_first, path, legacy)
        if info is None:
            raise BlobNotFound(key)
        return _blob_stat(key, info)

    async def delete(self, key: str) -> bool:
        path, legacy = self.path(key), self.legacy_path(key)
        return await asyncio.to_thread(_unlink_both, path, legacy)

    async def scan(self) -> AsyncIterator[BlobStat]:
        if not await asyncio.to_thread(self._blobs.is_dir):
            return
        for first in sorted(await asyncio.to_thread(os.listdir, self._blobs)):
            for stat in await asyncio.to_thread(_stats_under, self._blobs / first):
                yield stat

    async def drop_unfinished(self, before: datetime) -> int:
        return await asyncio.to_thread(_unlink_older, str(self._incoming), before.timestamp())

    async def check(self) -> None:
        return None  # the directory is made on the first write; a disk fault is the operating system's to say

    async def close(self) -> None:
        return None

    def _write(self, incoming: _Incoming | None, digest: Digest, parts: list[bytes]) -> _Incoming:
        """Hash and write ``parts`` to the incoming file, created first if there is none yet."""
        if incoming is None:
            incoming = self._create_incoming()
        for part in parts:
            digest.update(part)
            incoming.write(part)
        return incoming

    def _finish(self, incoming: _Incoming | None, digest: Digest, parts: list[bytes], sync: bool) -> StoredBlob:
        """The last write, the fsync, and the rename into place (where the folder is synced, now or by ``sync``)."""
        if incoming is None:
            incoming = self._create_incoming()
        try:
            self._write(incoming, digest, parts)
            incoming.sync_and_close()
            blob = digest.result()
            self._move_into_place(incoming.path, blob.key, sync)
        except BaseException:
            incoming.discard()
            raise
        return blob

    # The calls below run in a worker thread, and every system call there hands the interpreter's lock to the
    # event loop and back: they use plain file descriptors and string paths, one system call per step.

    def _create_incoming(self) -> _Incoming:
        folder = str(self._incoming)
        try:
            fd, name = tempfile.mkstemp(dir=folder, suffix=".part")
        except FileNotFoundError:  # the first blob of this store
            os.makedirs(folder, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, suffix=".part")
        return _Incoming(fd, name)

    def _move_into_place(self, temp: str, key: str, sync: bool) -> None:
        final = str(self.path(key))
        folder = os.path.dirname(final)
        # the same content is here already: keep one copy, its time renewed (the orphan walk goes by it)
        if _renewed(final):
            os.unlink(temp)
        elif _renewed(legacy := str(self.legacy_path(key))):  # kept by an older store, in the old layout
            os.unlink(temp)
            _sync_directory(os.path.dirname(legacy))  # a rare path: synced now, ``sync`` looks in the new layout
            return
        else:
            try:
                os.replace(temp, final)
            except FileNotFoundError:  # the first blob of the store
                self._make_folders()
                os.replace(temp, final)
        if sync:
            _sync_directory(folder)

    def _make_folders(self) -> None:
        """Make every fan-out folder at once, and sync them into ``blobs/`` (and ``blobs/`` into the root): once in
        a store's life, rather than a new folder, and its sync, for most of the first few hundred blobs."""
        made_blobs = not os.path.isdir(self._blobs)
        for first in range(256):
            os.makedirs(self._blobs / f"{first:02x}", exist_ok=True)
        _sync_directory(self._blobs)
        if made_blobs:
            _sync_directory(self.root)


class _Incoming:
    """A blob being written: the open file descriptor of its file in ``incoming/``, and that file's path."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def sync_and_close(self) -> None:
        os.fsync(self.fd)
        self._close()

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _sync_directory(path: str | Path) -> None:
    """Make a rename in ``path`` durable (POSIX: the directory entry is data of the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directories(paths: list[str]) -> None:
    """``_sync_directory`` for each of ``paths`` (one still missing has nothing to sync: no blob went there)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            _sync_directory(path)


def _renewed(path: str) -> bool:
    """Whether the file ``path`` exists, its modification time set to now if so."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _unlink_older(folder: str, cutoff: float) -> int:
    """Remove the files of ``folder`` last modified before ``cutoff`` (a POSIX time); how many went. A write
    under way touches its file with every write, so only one that stopped long ago is that old."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:  # no blob was ever written here
        return 0
    removed = 0
    for name in names:
        path = os.path.join(folder, name)
        with contextlib.suppress(FileNotFoundError):  # finished (renamed) or removed while we look
            info = os.lstat(path)
            if S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                os.unlink(path)
                removed += 1
    return removed


def _first_file(*paths: Path) -> Path | None:
    return next((path for path in paths if path.is_file()), None)


def _open_first(*paths: Path) -> BinaryIO | None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            return path.open("rb")
    return None


def _stat_first(*paths: Path) -> os.stat_result | None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            return path.stat()
    return None


def _unlink_both(*paths: Path) -> bool:
    removed = False
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed = True
    return removed


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
