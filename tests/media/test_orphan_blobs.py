"""Blobs that no row names (a deletion the store could not finish, a process stopped between forgetting a row and
deleting its blob, a fetch or an upload stopped before its row was written) are deleted by the orphan walk once
they are older than its grace, and never while a row names them. Deleting a contact's data while the S3 store is
down answers 200 with the blobs left pending, and the next walk deletes them once the store is back; the retention
sweep with the store down does not raise. On a directory and on moto's S3 server, the outage made by a TCP relay
on loopback that stops and starts again (the server keeps what it held); the hub's clock moves, nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from hub.api.keys import HUB
from hub.bus import EventBus
from hub.media import BlobNotFound, BlobStat, BlobStore, LocalBlobStore, S3BlobStore, StoreUnavailable
from hub.media_fetch import FetchPolicy, MediaFetcher
from hub.settings import Settings
from hub.store import Store
from hub.store.media import blobs_named
from hub.store.tables import attachments, messages
from hub.usecases import Parts
from hub.usecases import media as media_usecases
from hub.usecases.media import ORPHAN_GRACE, drop_orphan_blobs, sweep_media
from tests.api.conftest import Clock, MakeApi
from tests.media._serving import ACCOUNT, stored_video
from tests.media.conftest import S3_CREDENTIALS, make_bucket
from tests.ports import free_port

MINUTE = timedelta(minutes=1)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _put(blobs: BlobStore, data: bytes) -> str:
    return (await blobs.put(_chunks(data))).key


async def _exists(blobs: BlobStore, key: str) -> bool:
    try:
        await blobs.stat(key)
    except BlobNotFound:
        return False
    return True


class Relay:
    """A TCP relay on loopback in front of the S3 server: ``stop`` is an outage (every connection cut, nothing
    listening), ``start`` brings the store back as it was."""

    def __init__(self, target: str) -> None:
        self.target_port = int(target.rsplit(":", 1)[1])
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, upstream_writer}
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                end.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def relay(s3_endpoint: str) -> AsyncIterator[Relay]:
    found = Relay(s3_endpoint)
    await found.start()
    yield found
    if found._server is not None:
        await found.stop()


@pytest.fixture
async def parts(database_url: str, make_settings: Callable[..., Settings]) -> AsyncIterator[Parts]:
    """The hub's parts on a real database, its clock at the wall clock's now (the stores date blobs by theirs)."""
    store = Store(database_url)
    await store.migrate()
    clock = Clock(datetime.now(UTC))
    yield Parts(settings=make_settings(ACCOUNT), store=store, bus=EventBus(), clock=clock)
    await store.close()


def _clock(parts: Parts) -> Clock:
    assert isinstance(parts.clock, Clock)
    return parts.clock


async def _name_as_thumbnail(parts: Parts, key: str) -> None:
    async with parts.store.write() as connection:
        await connection.execute(update(attachments).values(thumbnail_key=key))


async def test_the_walk_deletes_an_orphan_once_older_than_the_grace_and_never_a_named_blob(
    store: BlobStore, parts: Parts
) -> None:
    started = parts.clock()
    orphan = await _put(store, b"the bytes of a fetch that stopped before its row was written")
    named = await _put(store, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 512)
    thumbnail = await _put(store, b"a thumbnail named by the same row")
    await stored_video(parts, parts.settings, key=named, size=528)
    await _name_as_thumbnail(parts, thumbnail)

    _clock(parts).now = started + ORPHAN_GRACE - MINUTE  # a fetch or an upload may still be writing its row
    assert await drop_orphan_blobs(parts, store) == 0
    assert await _exists(store, orphan)

    _clock(parts).now = started + ORPHAN_GRACE + MINUTE
    assert await drop_orphan_blobs(parts, store) == 1
    assert not await _exists(store, orphan)
    assert await _exists(store, named)
    assert await _exists(store, thumbnail)


async def test_a_local_put_of_content_already_kept_renews_its_time(local_store: LocalBlobStore) -> None:
    """A fetch that puts bytes a deletion left orphaned is not raced by the walk: the put renews the blob's
    time, and the walk looks at the blob again just before it deletes."""
    data = b"a sticker sent by many customers"
    key = await _put(local_store, data)
    long_ago = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    os.utime(local_store.path(key), (long_ago, long_ago))
    assert datetime.now(UTC) - (await local_store.stat(key)).stored_at > timedelta(days=2)
    await _put(local_store, data)
    assert datetime.now(UTC) - (await local_store.stat(key)).stored_at < MINUTE


async def test_an_s3_put_of_content_already_kept_renews_its_time(
    s3_store: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub.media.s3._RENEW_AFTER", timedelta(0))  # S3 dates objects itself: renew whatever their age
    data = b"a sticker sent by many customers"
    key = await _put(s3_store, data)
    first = (await s3_store.stat(key)).stored_at
    await asyncio.sleep(1.1)  # S3 says an object's time to the second
    await _put(s3_store, data)
    assert (await s3_store.stat(key)).stored_at > first
    assert [stat.key async for stat in s3_store.scan()] == [key]


async def test_names_are_looked_up_in_batches_across_their_boundaries(parts: Parts, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "media")
    keys = [(await blobs.put(_chunks(f"orphan {n}".encode()), sync=False)).key for n in range(450)]
    named = keys[321]
    await stored_video(parts, parts.settings, key=named, size=8)
    assert await blobs_named(parts.store, keys) == {named}
    _clock(parts).advance((ORPHAN_GRACE + MINUTE).total_seconds())
    assert await drop_orphan_blobs(parts, blobs) == 449
    assert [stat.key async for stat in blobs.scan()] == [named]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_a_sweep_with_the_store_down_does_not_raise_and_a_later_walk_deletes_what_it_left(
    relay: Relay,
    s3_endpoint: str,
    database_url: str,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bucket = await make_bucket(s3_endpoint)
    blobs = S3BlobStore(f"s3://{bucket}/hub", endpoint_url=relay.endpoint, **S3_CREDENTIALS)
    store = Store(database_url)
    await store.migrate()
    clock = Clock(datetime.now(UTC))
    parts = Parts(
        settings=make_settings(ACCOUNT + "\n[media]\nkeep_days = 1\n"), store=store, bus=EventBus(), clock=clock
    )
    try:
        key = await _put(blobs, b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 512)
        await stored_video(parts, parts.settings, key=key, size=528)
        clock.advance(timedelta(days=2).total_seconds())
        await relay.stop()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert await sweep_media(parts, blobs) == 0  # the row expired; its blob is left, and nothing raised
            assert await drop_orphan_blobs(parts, blobs) is None  # cut short: it walks again next time
        logged = _warnings(caplog)
        assert len(logged) == 2, logged
        assert "1 blobs left for the orphan walk" in logged[0]
        assert "cannot be reached" in logged[0]
        assert "orphan walk stopped" in logged[1]
        async with store.read() as connection:
            assert (await connection.execute(select(attachments.c.blob_key))).scalar_one() is None

        await relay.start()
        assert await drop_orphan_blobs(parts, blobs) == 1
        assert not await _exists(blobs, key)
    finally:
        await blobs.close()
        await store.close()


def _media_toml(bucket: str, endpoint: str) -> str:
    return (
        f'\n[media]\nurl = "s3://{bucket}/hub"\nendpoint_url = "{endpoint}"\n'
        f'access_key = "{S3_CREDENTIALS["access_key"]}"\nsecret_key = "{S3_CREDENTIALS["secret_key"]}"\n'
    )


async def test_deleting_a_contacts_data_with_the_store_down_answers_200_and_the_next_walk_deletes_the_blobs(
    relay: Relay, s3_endpoint: str, make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = await make_bucket(s3_endpoint)
    api = await make_api(ACCOUNT + _media_toml(bucket, relay.endpoint), clock=Clock(datetime.now(UTC)))
    hub = api.app[HUB]
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x02" * 4096
    blob = await hub.blobs.put(_chunks(video))
    token = await stored_video(hub, api.settings, key=blob.key, size=blob.size)
    async with api.store.read() as connection:
        identity_id = (await connection.execute(select(messages.c.identity_id))).scalar_one()
    admin = await api.agent("root", role="admin")
    paired = await admin.json("POST", f"/api/v1/identities/{identity_id}/contact", {"name": "Iva"}, status=201)
    contact_id = paired.get("contact_id") or paired["contact"]["id"]

    await relay.stop()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        outcome = await admin.json("DELETE", f"/api/v1/contacts/{contact_id}/data")
    assert outcome == {"attachments": 1, "blobs": 0, "blobs_pending": 1}
    assert any("1 blobs left for the orphan walk" in message for message in _warnings(caplog))
    audit = await admin.json("GET", "/api/v1/audit?action=contact.data_deleted")
    [entry] = audit["items"]
    assert entry["after"] == outcome
    assert (await api.client.get(f"/media/{token}")).status == 404  # nobody gets the bytes through the hub

    await relay.start()
    assert await _exists(hub.blobs, blob.key)
    api.clock.advance((ORPHAN_GRACE + MINUTE).total_seconds())
    assert await drop_orphan_blobs(hub, hub.blobs) == 1
    assert not await _exists(hub.blobs, blob.key)


class _OutageOnce(LocalBlobStore):
    """A directory whose first listing fails as a store in an outage does."""

    scans = 0

    async def scan(self) -> AsyncIterator[BlobStat]:
        self.scans += 1
        if self.scans == 1:
            raise StoreUnavailable("the S3 server cannot be reached")
        async for stat in super().scan():
            yield stat


async def test_the_sweeper_walks_at_start_again_after_an_outage_and_then_not_within_the_day(
    parts: Parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweeps = 0
    sweep = media_usecases.sweep_media

    async def counted(hub: Parts, blobs: BlobStore) -> int:
        nonlocal sweeps
        sweeps += 1
        return await sweep(hub, blobs)

    async def after_sweeps(count: int) -> None:
        target = sweeps + count
        for _ in range(2000):  # bounded: the sweeper runs every hundredth of a second here
            if sweeps >= target:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"the sweeper did not sweep {count} times")

    monkeypatch.setattr(media_usecases, "sweep_media", counted)
    blobs = _OutageOnce(tmp_path / "media")
    first = await _put(blobs, b"left by a process that stopped between a row and its blob")
    _clock(parts).advance((ORPHAN_GRACE + MINUTE).total_seconds())
    fetcher = MediaFetcher(
        parts.store, parts.bus, {}, blobs, parts.settings, clock=parts.clock, policy=FetchPolicy(sweep_seconds=0.01)
    )
    await fetcher.start(None)
    try:
        await after_sweeps(3)
        assert blobs.scans == 2  # at start, cut short by the store; walked again at the next sweep, and done
        assert not await _exists(blobs, first)
        second = await _put(blobs, b"another orphan, as old for the hub's clock")
        await after_sweeps(5)
        assert blobs.scans == 2  # not again within the day
        assert await _exists(blobs, second)
    finally:
        await fetcher.stop()


_CRASH_MID_WRITE = """
import asyncio, os, sys
from hub.media import LocalBlobStore

async def chunks():
    yield b"x" * (2 * 1024 * 1024)  # past one write: the incoming file is on disk
    os._exit(3)  # the process dies mid-write, before the blob is complete

asyncio.run(LocalBlobStore(sys.argv[1]).put(chunks()))
"""


async def _crash_mid_write(root: Path) -> list[Path]:
    """Run a process that dies while it writes a blob to the store in ``root``; what it left in ``incoming/``."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", _CRASH_MID_WRITE, str(root))
    assert await asyncio.wait_for(process.wait(), 60) == 3
    return sorted((root / "incoming").iterdir())


async def test_the_walk_removes_what_a_crash_left_in_incoming_once_older_than_the_grace(
    parts: Parts, tmp_path: Path
) -> None:
    root = tmp_path / "media"
    blobs = LocalBlobStore(root)
    named = await _put(blobs, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 512)
    await stored_video(parts, parts.settings, key=named, size=528)
    [left] = await _crash_mid_write(root)
    assert left.stat().st_size == 2 * 1024 * 1024
    started = parts.clock()

    _clock(parts).now = started + ORPHAN_GRACE - MINUTE  # as old as a write that may still be under way
    assert await drop_orphan_blobs(parts, blobs) == 0
    assert left.exists()

    _clock(parts).now = started + ORPHAN_GRACE + MINUTE
    assert await drop_orphan_blobs(parts, blobs) == 0  # no blob went: the leftover is not one
    assert list((root / "incoming").iterdir()) == []
    assert await _exists(blobs, named)
    assert [stat.key async for stat in blobs.scan()] == [named]


async def test_the_sweeper_removes_old_unfinished_writes_at_start(parts: Parts, tmp_path: Path) -> None:
    root = tmp_path / "media"
    [left] = await _crash_mid_write(root)
    _clock(parts).advance((ORPHAN_GRACE + MINUTE).total_seconds())
    blobs = LocalBlobStore(root)
    fetcher = MediaFetcher(
        parts.store, parts.bus, {}, blobs, parts.settings, clock=parts.clock, policy=FetchPolicy(sweep_seconds=60)
    )
    await fetcher.start(None)
    try:
        for _ in range(1000):  # bounded: the walk at start takes a moment
            if not left.exists():
                break
            await asyncio.sleep(0.01)
        assert not left.exists()
    finally:
        await fetcher.stop()
