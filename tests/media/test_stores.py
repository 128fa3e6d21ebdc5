"""What each store does beyond the shared contract: where the bytes go, and that a failed put leaves nothing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from hub.media import BlobNotFound, BlobTooLarge, LocalBlobStore, S3BlobStore

MiB = 1024 * 1024


class SenderGone(Exception):
    pass


async def broken_after(data: bytes, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]
    raise SenderGone


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_local_blobs_fan_out_by_the_first_byte_of_their_hash(local_store: LocalBlobStore) -> None:
    blob = await local_store.put(one(b"photo of the parcel"))
    key = blob.key
    assert local_store.path(key) == local_store.root / "blobs" / key[:2] / key
    assert local_store.path(key).read_bytes() == b"photo of the parcel"
    assert await local_store.locate(key) == local_store.path(key)
    # the store's first blob made every fan-out folder: no later blob makes (and syncs) one
    assert sorted(p.name for p in (local_store.root / "blobs").iterdir()) == [f"{n:02x}" for n in range(256)]


def kept_by_an_older_store(store: LocalBlobStore, data: bytes) -> str:
    """The blob as stores before the one-level fan-out wrote it: ``blobs/ab/cd/<key>``."""
    key = hashlib.sha256(data).hexdigest()
    old = store.root / "blobs" / key[:2] / key[2:4] / key
    old.parent.mkdir(parents=True)
    old.write_bytes(data)
    return key


async def test_a_blob_in_the_old_two_level_layout_is_still_read_found_and_deleted(local_store: LocalBlobStore) -> None:
    data = b"%PDF-1.4\n" + os.urandom(1000)
    key = kept_by_an_older_store(local_store, data)
    newer = await local_store.put(one(b"stored since"))
    async with await local_store.open(key, 0, 7) as stream:
        assert await stream.read_all() == b"%PDF-1.4"
    assert (await local_store.stat(key)).size == len(data)
    assert await local_store.locate(key) == local_store.legacy_path(key)
    assert sorted([stat.key async for stat in local_store.scan()]) == sorted([key, newer.key])
    again = await local_store.put(one(data))  # the same content again: still one copy, where it was
    assert (again.key, again.mime) == (key, "application/pdf")
    assert not local_store.path(key).exists()
    await local_store.sync([key, newer.key])
    assert await local_store.delete(key)
    assert not local_store.legacy_path(key).exists()
    assert [stat.key async for stat in local_store.scan()] == [newer.key]
    with pytest.raises(BlobNotFound):
        await local_store.locate(key)
    assert not await local_store.delete(key)


async def test_a_local_put_left_to_sync_is_in_place_at_once(local_store: LocalBlobStore) -> None:
    blob = await local_store.put(one(b"synced with its round"), sync=False)
    assert local_store.path(blob.key).read_bytes() == b"synced with its round"  # renamed into place already
    assert list((local_store.root / "incoming").iterdir()) == []
    await local_store.sync([blob.key, hashlib.sha256(b"never stored").hexdigest()])  # no folder yet: nothing to do
    await local_store.sync([])


# the sender goes away after the last chunk; with a limit, the store gives up first
FAILURES = pytest.mark.parametrize(("max_bytes", "error"), [(None, SenderGone), (11 * MiB, BlobTooLarge)])


@FAILURES
async def test_a_failed_local_put_leaves_no_file(
    local_store: LocalBlobStore, max_bytes: int | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await local_store.put(broken_after(os.urandom(12 * MiB), MiB), max_bytes=max_bytes)
    assert list((local_store.root / "incoming").iterdir()) == []
    assert [stat async for stat in local_store.scan()] == []


async def test_a_local_scan_skips_what_is_not_a_blob(local_store: LocalBlobStore) -> None:
    blob = await local_store.put(one(b"kept"))
    (local_store.path(blob.key).parent / ".DS_Store").write_bytes(b"")
    assert [stat.key async for stat in local_store.scan()] == [blob.key]


async def incoming_and_uploads(store: S3BlobStore) -> tuple[list[str], list[str]]:
    s3 = await store._s3()
    listed = await s3.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}incoming/")
    uploads = await s3.list_multipart_uploads(Bucket=store.bucket)
    return [o["Key"] for o in listed.get("Contents", [])], [u["Key"] for u in uploads.get("Uploads", [])]


async def test_s3_blobs_are_objects_named_by_their_hash_with_their_type(s3_store: S3BlobStore) -> None:
    data = b"%PDF-1.4\n" + os.urandom(12 * MiB)
    blob = await s3_store.put(one(data))
    assert blob.key == hashlib.sha256(data).hexdigest()
    s3 = await s3_store._s3()
    head = await s3.head_object(Bucket=s3_store.bucket, Key=f"hub/media/blobs/{blob.key}")
    assert head["ContentType"] == "application/pdf"
    assert head["ContentLength"] == len(data)
    assert await incoming_and_uploads(s3_store) == ([], [])


@FAILURES
async def test_a_failed_multipart_put_leaves_no_upload(
    s3_store: S3BlobStore, max_bytes: int | None, error: type[Exception]
) -> None:
    with pytest.raises(error):  # two parts of 5 MiB are sent before the failure
        await s3_store.put(broken_after(os.urandom(12 * MiB), MiB), max_bytes=max_bytes)
    assert await incoming_and_uploads(s3_store) == ([], [])
    assert [stat async for stat in s3_store.scan()] == []


async def test_a_small_put_over_the_limit_leaves_no_file(local_store: LocalBlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        await local_store.put(one(b"more than ten bytes"), max_bytes=10)
    assert list((local_store.root / "incoming").iterdir()) == []
    assert [stat async for stat in local_store.scan()] == []
