"""The blob store contract, run against the local directory and the S3 store (moto's server on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from hub.media import (
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    InvalidKey,
    LocalBlobStore,
    RangeNotSatisfiable,
    S3BlobStore,
    StoredBlob,
)

MiB = 1024 * 1024


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def put(store: BlobStore, data: bytes, **options: int) -> StoredBlob:
    return await store.put(chunks_of(data), **options)


async def read(store: BlobStore, key: str, start: int | None = None, end: int | None = None) -> bytes:
    async with await store.open(key, start, end) as stream:
        return await stream.read_all()


async def keys(store: BlobStore) -> list[str]:
    return sorted([stat.key async for stat in store.scan()])


async def test_a_blob_comes_back_as_it_went_in_under_its_sha256(store: BlobStore) -> None:
    data = b"%PDF-1.4\n" + os.urandom(300_000)
    blob = await put(store, data)
    assert blob == StoredBlob(key=hashlib.sha256(data).hexdigest(), size=len(data), mime="application/pdf")
    assert await read(store, blob.key) == data
    stat = await store.stat(blob.key)
    assert (stat.key, stat.size) == (blob.key, len(data))
    assert stat.stored_at.tzinfo is not None


async def test_an_empty_blob_is_kept_too(store: BlobStore) -> None:
    blob = await put(store, b"")
    assert blob.key == hashlib.sha256(b"").hexdigest()
    assert blob.size == 0
    assert await read(store, blob.key) == b""


async def test_a_blob_larger_than_one_part_round_trips(store: BlobStore) -> None:
    data = os.urandom(11 * MiB + 17)
    blob = await put(store, data)
    assert blob.key == hashlib.sha256(data).hexdigest()
    assert await read(store, blob.key) == data
    assert await keys(store) == [blob.key]


async def test_the_same_content_is_kept_once(store: BlobStore) -> None:
    data = os.urandom(1000)
    first = await put(store, data)
    second = await store.put(chunks_of(data, size=7))  # other chunking, same bytes
    assert first == second
    assert await keys(store) == [first.key]


async def test_concurrent_puts_of_the_same_content_keep_one_blob(store: BlobStore) -> None:
    data = os.urandom(6 * MiB)
    blobs = await asyncio.gather(*(put(store, data) for _ in range(4)))
    assert {blob.key for blob in blobs} == {hashlib.sha256(data).hexdigest()}
    assert await keys(store) == [blobs[0].key]
    assert await read(store, blobs[0].key) == data


async def test_a_blob_put_without_sync_is_readable_and_synced_with_others_later(store: BlobStore) -> None:
    first, second = os.urandom(2000), os.urandom(3000)
    kept = [await store.put(chunks_of(data), sync=False) for data in (first, second)]
    assert [await read(store, blob.key) for blob in kept] == [first, second]
    await store.sync([blob.key for blob in kept])
    await store.sync([])
    assert await keys(store) == sorted(blob.key for blob in kept)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 0, slice(0, 1)),  # first byte
        (299_999, 299_999, slice(299_999, 300_000)),  # last byte
        (299_999, None, slice(299_999, 300_000)),  # last byte, open-ended
        (1000, 280_000, slice(1000, 280_001)),  # middle, across read chunks
        (250_000, 10_000_000, slice(250_000, 300_000)),  # an end past the last byte means to the end
        (None, 99, slice(0, 100)),
    ],
)
async def test_a_byte_range_yields_exactly_those_bytes(
    store: BlobStore, start: int | None, end: int | None, expected: slice
) -> None:
    data = os.urandom(300_000)
    blob = await put(store, data)
    async with await store.open(blob.key, start, end) as stream:
        assert (stream.start, stream.end, stream.size) == (expected.start, expected.stop - 1, len(data))
        assert stream.length == expected.stop - expected.start
        assert await stream.read_all() == data[expected]


async def test_a_range_starting_past_the_end_is_refused_with_the_size(store: BlobStore) -> None:
    blob = await put(store, b"0123456789")
    with pytest.raises(RangeNotSatisfiable) as caught:
        await store.open(blob.key, 10, None)
    assert (caught.value.start, caught.value.size) == (10, 10)
    assert "past its end" in str(caught.value)


async def test_a_missing_blob_is_not_found(store: BlobStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(BlobNotFound):
        await store.open(missing)
    with pytest.raises(BlobNotFound):
        await store.stat(missing)
    assert await store.delete(missing) is False


async def test_a_deleted_blob_is_gone(store: BlobStore) -> None:
    kept = await put(store, b"kept")
    gone = await put(store, b"gone")
    assert await store.delete(gone.key) is True
    with pytest.raises(BlobNotFound):
        await store.open(gone.key)
    assert await keys(store) == [kept.key]


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "ab/" + "0" * 61, "", "0" * 63])
async def test_a_key_that_is_not_a_sha256_is_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        await store.open(key)
    with pytest.raises(InvalidKey):
        await store.delete(key)


async def test_a_blob_over_the_limit_is_refused_and_nothing_is_kept(store: BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        await put(store, os.urandom(7 * MiB), max_bytes=6 * MiB)
    assert await put(store, b"x" * 100, max_bytes=100)
    assert len(await keys(store)) == 1


async def test_closing_an_unread_stream_releases_it(store: BlobStore) -> None:
    blob = await put(store, os.urandom(600_000))
    stream = await store.open(blob.key)
    await stream.aclose()  # filterwarnings=error turns a leaked file or connection into a failure
    async with await store.open(blob.key) as stream:
        async for _chunk in stream:
            break


@pytest.mark.slow
async def test_a_100_mib_blob_streams_in_and_out_with_flat_memory(store: BlobStore) -> None:
    chunk = os.urandom(64 * 1024)
    total = 100 * MiB

    async def source() -> AsyncIterator[bytes]:
        for _ in range(total // len(chunk)):
            yield chunk

    await put(store, b"warm-up")  # a client's first call loads its service model: not what is measured here
    tracemalloc.start()
    try:
        blob = await store.put(source())
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        sha = hashlib.sha256()
        async with await store.open(blob.key) as stream:
            async for part in stream:
                sha.update(part)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blob.size == total
    assert sha.hexdigest() == blob.key
    # a whole-file read would be 100 MiB; a store holds at most a few parts of 5 MiB
    assert put_peak < 24 * MiB, put_peak
    assert read_peak < 8 * MiB, read_peak


async def _leave_unfinished(store: BlobStore) -> int:
    """What a process that stopped mid-write leaves in the store's ``incoming/`` area; how many things."""
    if isinstance(store, LocalBlobStore):
        incoming = store.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        (incoming / "tmp1x2y3z.part").write_bytes(os.urandom(1000))
        return 1
    assert isinstance(store, S3BlobStore)
    s3 = await store._s3()
    await s3.put_object(Bucket=store.bucket, Key=f"{store.prefix}incoming/completed-never-moved", Body=b"bytes")
    return 1


async def _leave_an_upload_never_completed(store: BlobStore) -> int:
    """S3: a multipart upload under ``incoming/`` never completed nor aborted. Our S3 test server dates every
    multipart upload in 2010, so this one is old to any cutoff."""
    if not isinstance(store, S3BlobStore):
        return 0
    s3 = await store._s3()
    await s3.create_multipart_upload(Bucket=store.bucket, Key=f"{store.prefix}incoming/never-completed")
    return 1


async def test_unfinished_writes_go_once_older_than_the_cutoff_and_blobs_stay(store: BlobStore) -> None:
    blob = await put(store, os.urandom(2000))
    left = await _leave_unfinished(store)
    now = datetime.now(UTC)
    assert await store.drop_unfinished(now - timedelta(hours=1)) == 0  # younger than that: may be under way
    left += await _leave_an_upload_never_completed(store)
    assert await store.drop_unfinished(now + timedelta(minutes=1)) == left
    assert await store.drop_unfinished(now + timedelta(minutes=1)) == 0
    assert await keys(store) == [blob.key]
    assert len(await read(store, blob.key)) == 2000
    if isinstance(store, S3BlobStore):
        listed = await (await store._s3()).list_multipart_uploads(Bucket=store.bucket)
        assert listed.get("Uploads", []) == []


async def test_a_store_never_written_has_nothing_unfinished(store: BlobStore) -> None:
    assert await store.drop_unfinished(datetime.now(UTC) + timedelta(minutes=1)) == 0
