"""Customers' attachments are fetched after the webhook, per provider, durably: retried through transient
failures, failed with a reason for good, taken up again after a crash, stored once per content."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from PIL import Image
from sqlalchemy import func, select

from hub import media_fetch
from hub.bus import EventBus
from hub.events import AttachmentChanged, MessageCreated
from hub.media import LocalBlobStore, S3BlobStore, StoredBlob
from hub.media_fetch import FetchPolicy, MediaFetcher
from hub.model import Attachment, InboundMessage, MessageKind
from hub.ports import ChannelAdapter
from hub.registry import build_adapter
from hub.settings import Settings
from hub.store import Store
from hub.store.ingest import store_group
from hub.store.media import any_fetch_due, claim_fetches, record_and_claim_fetches
from hub.store.tables import attachments, messages
from tests.adapters.conftest import _aioresponses_compat  # noqa: F401 -- aioresponses on aiohttp 3.14 (autouse)
from tests.media.conftest import S3_CREDENTIALS

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GRAPH = "http://graph.test/v21.0"
TWILIO = "http://twilio.test"

ACCOUNTS = f"""
[[accounts]]
id = "wa-cloud"
channel = "whatsapp"
provider = "cloud"
queue = "support"
api_base = "{GRAPH}"
phone_number_id = "1065"
app_secret = "s"
verify_token = "v"
access_token = "cloud-token"

[[accounts]]
id = "wa-twilio"
channel = "whatsapp"
provider = "twilio"
queue = "support"
api_base = "{TWILIO}"
account_sid = "ACsid"
auth_token = "twilio-token"
from_number = "+15550001111"

[[accounts]]
id = "fb"
channel = "messenger"
queue = "support"
api_base = "{GRAPH}"
page_id = "1047"
app_secret = "s"
verify_token = "v"
page_access_token = "page-token"

[[accounts]]
id = "vb"
channel = "viber"
queue = "support"
auth_token = "viber-token"
name = "Shop"
"""


def png(size: tuple[int, int] = (40, 30), colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    store: Store
    blobs: LocalBlobStore
    fetcher: MediaFetcher
    clock: Clock
    settings: Settings
    bus: EventBus
    events: list[AttachmentChanged]
    _count: int = 0

    async def customer_sends(self, account_id: str, *found: Attachment, message_id: str | None = None) -> str:
        self._count += 1
        message_id = message_id or f"m-{self._count}"
        account = self.settings.account(account_id)
        event = InboundMessage(
            channel=account.channel,
            account_id=account_id,
            sender_id="+420600000001",
            provider_message_id=message_id,
            sent_at=self.clock(),
            kind=found[0].kind if found else MessageKind.TEXT,
            attachments=found,
        )
        accounts = {a.id: a for a in self.settings.accounts}
        [outcome] = await store_group(self.store, [[event]], accounts, self.clock())
        assert not isinstance(outcome, BaseException)
        return message_id

    async def rows(self) -> list[Any]:
        async with self.store.read() as connection:
            return list(await connection.execute(select(attachments).order_by(attachments.c.id)))

    async def fetch(self) -> int:
        return await self.fetcher.drain()  # as the hub's fetcher runs it, at the rig's clock


@pytest.fixture
async def rig(database_url: str, make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Rig]:
    settings = make_settings(ACCOUNTS, database_url=database_url)
    store = Store(database_url)
    await store.migrate()
    blobs = LocalBlobStore(tmp_path / "blobs")
    clock = Clock()
    bus = EventBus()
    async with aiohttp.ClientSession() as http:
        adapters: dict[str, ChannelAdapter] = {a.id: build_adapter(a, http) for a in settings.accounts}
        fetcher = MediaFetcher(
            store, bus, adapters, blobs, settings, clock=clock, policy=FetchPolicy(max_attempts=3, lease=60)
        )
        await fetcher.start(http)
        await fetcher.stop()  # its tasks are not wanted: the tests drain it themselves
        fetcher._http = http
        events: list[AttachmentChanged] = []
        original = bus.publish

        def record(event: Any) -> None:
            if isinstance(event, AttachmentChanged):
                events.append(event)
            original(event)

        bus.publish = record  # type: ignore[method-assign]
        yield Rig(store=store, blobs=blobs, fetcher=fetcher, clock=clock, settings=settings, bus=bus, events=events)
    await store.close()


def _header(call: Any, name: str) -> str | None:
    headers = call.kwargs.get("headers") or {}
    return headers.get(name)


async def test_whatsapp_cloud_looks_the_media_up_then_fetches_it_with_the_token(rig: Rig) -> None:
    image = png()
    await rig.customer_sends(
        "wa-cloud", Attachment(kind=MessageKind.IMAGE, provider_media_id="MEDIA1", mime_type="image/jpeg")
    )
    with aioresponses() as mock:
        mock.get(f"{GRAPH}/MEDIA1", payload={"url": "https://lookaside.test/media/1?ext=1", "mime_type": "image/png"})
        mock.get("https://lookaside.test/media/1?ext=1", body=image)
        assert await rig.fetch() == 1
        calls = [call for (method, url), found in mock.requests.items() for call in found]
    assert all(_header(call, "Authorization") == "Bearer cloud-token" for call in calls)
    [row] = await rig.rows()
    assert (row.state, row.mime, row.size, row.width, row.height) == ("stored", "image/png", len(image), 40, 30)
    assert row.sha256 == row.blob_key
    assert row.thumbnail_key
    async with await rig.blobs.open(row.blob_key) as stream:
        assert await stream.read_all() == image
    [event] = rig.events
    assert event.attachment["state"] == "stored"
    assert event.attachment["url"] == f"/api/v1/media/{row.id}"


async def test_twilio_media_are_fetched_with_the_account_credentials(rig: Rig) -> None:
    url = f"{TWILIO}/2010-04-01/Accounts/ACsid/Messages/MM1/Media/ME1"
    await rig.customer_sends("wa-twilio", Attachment(kind=MessageKind.FILE, url=url, mime_type="application/pdf"))
    with aioresponses() as mock:
        mock.get(url, body=b"%PDF-1.4\n%fake\n")
        assert await rig.fetch() == 1
        [[call]] = list(mock.requests.values())
    expected = "Basic " + base64.b64encode(b"ACsid:twilio-token").decode()
    assert _header(call, "Authorization") == expected
    [row] = await rig.rows()
    assert (row.state, row.mime) == ("stored", "application/pdf")


@pytest.mark.parametrize(
    ("body", "said", "kept"),
    [
        (b"order,parcel\n1042,CZ123\n", "text/csv", "text/csv"),  # the bytes are only text: the provider's word
        (b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jana\r\nEND:VCARD\r\n", "text/x-vcard", "text/vcard"),
        (b"%PDF-1.4\n%fake\n", "text/csv", "application/pdf"),  # the bytes beat the word for a binary kind
    ],
    ids=["csv", "vcard", "pdf-said-csv"],
)
async def test_a_customers_text_file_keeps_the_text_type_the_provider_gave(
    rig: Rig, body: bytes, said: str, kept: str
) -> None:
    url = f"{TWILIO}/2010-04-01/Accounts/ACsid/Messages/MM1/Media/ME2"
    await rig.customer_sends("wa-twilio", Attachment(kind=MessageKind.FILE, url=url, mime_type=said))
    with aioresponses() as mock:
        mock.get(url, body=body)
        assert await rig.fetch() == 1
    [row] = await rig.rows()
    assert (row.state, row.kind, row.mime) == ("stored", "file", kept)


async def test_twilio_credentials_never_go_to_another_host(rig: Rig) -> None:
    url = "http://elsewhere.test/file"
    await rig.customer_sends("wa-twilio", Attachment(kind=MessageKind.FILE, url=url))
    with aioresponses() as mock:
        mock.get(url, body=b"plain words")
        await rig.fetch()
        [[call]] = list(mock.requests.values())
    assert _header(call, "Authorization") is None


@pytest.mark.parametrize("account", ["fb", "vb"])
async def test_messenger_and_viber_cdn_links_are_fetched_without_credentials(rig: Rig, account: str) -> None:
    url = f"https://cdn.test/{account}/voice.ogg"
    await rig.customer_sends(account, Attachment(kind=MessageKind.AUDIO, url=url))
    ogg = b"OggS\x00\x02" + b"\x00" * 60
    with aioresponses() as mock:
        mock.get(url, body=ogg)
        assert await rig.fetch() == 1
        [[call]] = list(mock.requests.values())
    assert _header(call, "Authorization") is None
    [row] = await rig.rows()
    assert (row.state, row.kind, row.mime, row.size) == ("stored", "audio", "audio/ogg", len(ogg))


async def test_a_pdf_sent_as_an_image_is_kept_as_a_file_and_announced_so(rig: Rig) -> None:
    url = "https://cdn.test/fb/photo.jpg"
    await rig.customer_sends("fb", Attachment(kind=MessageKind.IMAGE, url=url))
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    with aioresponses() as mock:
        mock.get(url, body=pdf)
        assert await rig.fetch() == 1
    [row] = await rig.rows()
    assert (row.state, row.kind, row.mime) == ("stored", "file", "application/pdf")
    [event] = rig.events
    assert (event.attachment["kind"], event.attachment["mime"]) == ("file", "application/pdf")
    assert event.data["attachment"]["kind"] == "file"  # what consoles get as message.attachment


async def test_a_media_store_in_a_bad_state_is_tried_again_later_with_the_reason(rig: Rig, s3_endpoint: str) -> None:
    url = "https://cdn.test/fb/photo.png"
    await rig.customer_sends("fb", Attachment(kind=MessageKind.IMAGE, url=url))
    rig.fetcher.blobs = S3BlobStore("s3://no-such-bucket/hub", endpoint_url=s3_endpoint, **S3_CREDENTIALS)
    try:
        with aioresponses(passthrough=[s3_endpoint]) as mock:
            mock.get(url, body=png())
            assert await rig.fetch() == 1
    finally:
        await rig.fetcher.blobs.close()
    [row] = await rig.rows()
    assert (row.state, row.attempts) == ("pending", 1)
    assert "does not exist" in row.error
    assert row.next_attempt_at > rig.clock.now


async def test_a_5xx_is_retried_and_the_attachment_arrives_once(rig: Rig) -> None:
    await rig.customer_sends("wa-cloud", Attachment(kind=MessageKind.IMAGE, provider_media_id="M5"))
    with aioresponses() as mock:
        mock.get(f"{GRAPH}/M5", status=503, payload={"error": {"message": "busy", "code": 2}})
        assert await rig.fetch() == 1
        [row] = await rig.rows()
        assert (row.state, row.attempts) == ("pending", 1)
        assert row.error
        assert row.next_attempt_at > rig.clock.now
        assert await rig.fetch() == 0  # not due yet: back-off
        rig.clock.now = row.next_attempt_at
        mock.get(f"{GRAPH}/M5", payload={"url": "https://lookaside.test/5"})
        mock.get("https://lookaside.test/5", body=png())
        assert await rig.fetch() == 1
    [row] = await rig.rows()
    assert (row.state, row.attempts, row.error) == ("stored", 2, None)
    assert len(rig.events) == 1
    assert len([blob async for blob in rig.blobs.scan()]) == 2  # the image and its thumbnail


async def test_a_404_fails_for_good_with_a_reason_and_the_message_stays(rig: Rig) -> None:
    url = "https://cdn.test/gone.jpg"
    await rig.customer_sends("fb", Attachment(kind=MessageKind.IMAGE, url=url))
    with aioresponses() as mock:
        mock.get(url, status=404)
        assert await rig.fetch() == 1
    [row] = await rig.rows()
    assert row.state == "failed"
    assert "404" in row.error
    assert "no longer has" in row.error
    async with rig.store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(messages))).scalar_one() == 1
    rig.clock.now += timedelta(hours=1)
    assert await rig.fetch() == 0  # failed rows wait for an admin's retry
    [event] = rig.events
    assert event.attachment["state"] == "failed"
    assert event.attachment["error"] == row.error


async def test_transient_failures_give_up_after_the_last_attempt(rig: Rig) -> None:
    url = "https://cdn.test/flaky.jpg"
    await rig.customer_sends("vb", Attachment(kind=MessageKind.IMAGE, url=url))
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(url, status=502)
            assert await rig.fetch() == 1
            [row] = await rig.rows()
            if row.next_attempt_at is not None:
                rig.clock.now = row.next_attempt_at
    [row] = await rig.rows()
    assert row.state == "failed"
    assert "after 3 attempts" in row.error


async def test_a_fetch_cut_short_by_a_restart_is_taken_up_when_its_lease_runs_out(rig: Rig) -> None:

    url = "https://cdn.test/cut.pdf"
    await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url=url))
    [claimed] = await claim_fetches(rig.store, now=rig.clock.now, lease=timedelta(seconds=60), limit=5)
    # the process that claimed it stops here, before recording anything
    assert await rig.fetch() == 0  # leased: nobody else touches it
    rig.clock.now += timedelta(seconds=61)
    with aioresponses() as mock:
        mock.get(url, body=b"%PDF-1.4 whole")
        assert await rig.fetch() == 1
    [row] = await rig.rows()
    assert (row.id, row.state, row.attempts) == (claimed.id, "stored", 2)


async def test_the_same_file_from_two_messages_is_stored_once(rig: Rig) -> None:
    image = png((64, 64), "blue")
    await rig.customer_sends("fb", Attachment(kind=MessageKind.IMAGE, url="https://cdn.test/a.png"))
    await rig.customer_sends("vb", Attachment(kind=MessageKind.IMAGE, url="https://cdn.test/b.png"))
    with aioresponses() as mock:
        mock.get("https://cdn.test/a.png", body=image)
        mock.get("https://cdn.test/b.png", body=image)
        assert await rig.fetch() == 2
    first, second = await rig.rows()
    assert first.message_id != second.message_id
    assert first.blob_key == second.blob_key
    assert first.state == second.state == "stored"
    assert len([blob async for blob in rig.blobs.scan()]) == 2  # one image, one thumbnail


async def test_a_redelivered_webhook_makes_no_second_attachment(rig: Rig) -> None:
    found = Attachment(kind=MessageKind.VIDEO, url="https://cdn.test/v.mp4")
    await rig.customer_sends("fb", found, message_id="same")
    await rig.customer_sends("fb", found, message_id="same")
    assert len(await rig.rows()) == 1


async def test_a_file_past_max_bytes_fails_with_the_limit_named(
    database_url: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        ACCOUNTS + f"\n[media]\nmax_bytes = 10\npath = '{tmp_path / 'b'}'\n", database_url=database_url
    )
    store = Store(database_url)
    await store.migrate()
    try:
        async with aiohttp.ClientSession() as http:
            adapters: dict[str, ChannelAdapter] = {a.id: build_adapter(a, http) for a in settings.accounts}
            fetcher = MediaFetcher(store, EventBus(), adapters, LocalBlobStore(tmp_path / "b"), settings, clock=Clock())
            fetcher._http = http
            rig = Rig(
                store=store,
                blobs=LocalBlobStore(tmp_path / "b"),
                fetcher=fetcher,
                clock=Clock(),
                settings=settings,
                bus=EventBus(),
                events=[],
            )
            await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url="https://cdn.test/big"))
            with aioresponses() as mock:
                mock.get("https://cdn.test/big", body=b"x" * 11)
                await rig.fetch()
            [row] = await rig.rows()
            assert row.state == "failed"
            assert "max_bytes = 10" in row.error
    finally:
        await store.close()


async def test_only_a_customer_message_with_attachments_wakes_the_fetcher(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text message brings nothing to fetch: the fetcher is not woken to look (a read per message)."""
    accounts = {a.id: a for a in rig.settings.accounts}

    def inbound(message_id: str, *found: Attachment) -> InboundMessage:
        return InboundMessage(
            channel=accounts["fb"].channel,
            account_id="fb",
            sender_id="psid-wake",
            provider_message_id=message_id,
            sent_at=rig.clock(),
            kind=MessageKind.FILE if found else MessageKind.TEXT,
            text=None if found else "hello",
            attachments=found,
        )

    url = "https://cdn.test/wake.bin"
    file = Attachment(kind=MessageKind.FILE, url=url)
    [text_outcome, file_outcome] = await store_group(
        rig.store, [[inbound("m-text")], [inbound("m-file", file)]], accounts, rig.clock()
    )
    assert not isinstance(text_outcome, BaseException)
    assert not isinstance(file_outcome, BaseException)
    [text_created] = [e for e in text_outcome.events if isinstance(e, MessageCreated)]
    [file_created] = [e for e in file_outcome.events if isinstance(e, MessageCreated)]
    assert (text_created.with_attachments, file_created.with_attachments) == (False, True)

    looked = 0

    async def counted(store: Store, *, now: datetime) -> bool:
        nonlocal looked
        looked += 1
        return await any_fetch_due(store, now=now)

    monkeypatch.setattr(media_fetch, "any_fetch_due", counted)
    rig.fetcher.policy = FetchPolicy(max_attempts=3, lease=60, poll_seconds=60)
    with aioresponses() as mock:
        mock.get(url, body=b"the file")
        async with aiohttp.ClientSession() as http:
            await rig.fetcher.start(http)
            try:
                await wait_for(lambda: bool(rig.events))  # the look at start fetched m-file's attachment
                await asyncio.sleep(0.3)  # and the fetcher looked once more, found nothing and sleeps
                settled = looked
                rig.bus.publish(text_created)
                await asyncio.sleep(0.3)
                assert looked == settled
                rig.bus.publish(file_created)
                await wait_for(lambda: looked == settled + 1)
            finally:
                await rig.fetcher.stop()


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def test_a_drain_fetches_every_due_row_keeping_at_most_a_batch_in_flight(rig: Rig) -> None:
    rig.fetcher.policy = FetchPolicy(max_attempts=3, lease=60, batch=3)
    urls = [f"https://cdn.test/many/{n}.bin" for n in range(10)]
    for url in urls:
        await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url=url))
    in_flight, most = 0, 0

    async def slow(url: Any, **_: Any) -> CallbackResult:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return CallbackResult(body=f"bytes of {url}".encode())

    with aioresponses() as mock:
        for url in urls:
            mock.get(url, callback=slow)
        assert await rig.fetcher.drain() == 10
    assert most == 3
    rows = await rig.rows()
    assert [(row.state, row.attempts, row.locked_until) for row in rows] == [("stored", 1, None)] * 10
    assert sorted(event.attachment["id"] for event in rig.events) == [row.id for row in rows]


async def test_a_drain_records_each_outcome_as_its_own(rig: Rig) -> None:
    rig.fetcher.policy = FetchPolicy(max_attempts=3, lease=60, batch=2)
    await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url="https://cdn.test/gone"))
    await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url="https://cdn.test/busy"))
    await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url="https://cdn.test/fine"))
    with aioresponses() as mock:
        mock.get("https://cdn.test/gone", status=404)
        mock.get("https://cdn.test/busy", status=503)
        mock.get("https://cdn.test/fine", body=b"fine words")
        assert await rig.fetcher.drain() == 3
    gone, busy, fine = await rig.rows()
    assert (gone.state, gone.next_attempt_at, gone.locked_until) == ("failed", None, None)
    assert "no longer has this file" in gone.error
    assert (busy.state, busy.attempts, busy.locked_until) == ("pending", 1, None)
    assert busy.next_attempt_at > rig.clock.now
    assert (fine.state, fine.size, fine.error) == ("stored", len(b"fine words"), None)
    assert sorted(event.attachment["state"] for event in rig.events) == ["failed", "stored"]


async def test_a_claimed_row_given_back_unfetched_is_due_again_without_a_spent_attempt(rig: Rig) -> None:
    await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url="https://cdn.test/later"))
    lease = timedelta(seconds=60)
    [job] = await claim_fetches(rig.store, now=rig.clock.now, lease=lease, limit=5)
    assert (job.attempts, job.leased_until) == (1, rig.clock.now + lease)
    await record_and_claim_fetches(rig.store, [], now=rig.clock.now, lease=lease, limit=0, release=[job])
    [row] = await rig.rows()
    assert (row.state, row.attempts, row.locked_until, row.next_attempt_at) == ("pending", 0, None, rig.clock.now)


async def test_a_drain_stopped_midway_records_what_finished_and_gives_back_the_rest(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.fetcher.policy = FetchPolicy(max_attempts=3, lease=60, batch=2)
    quick, *slow = [f"https://cdn.test/stop/{n}.bin" for n in range(5)]
    for url in (quick, *slow):
        await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url=url))
    quick_done = asyncio.Event()
    fetch = rig.fetcher.fetch

    async def watched(job: Any) -> Any:
        outcome = await fetch(job)
        if outcome.stored is not None:
            quick_done.set()  # the quick one is fetched and stored (a sleep was not always long enough for that)
        return outcome

    async def hang(url: Any, **_: Any) -> CallbackResult:
        await asyncio.sleep(60)
        return CallbackResult(body=b"never")

    async def fast(url: Any, **_: Any) -> CallbackResult:
        return CallbackResult(body=b"quick bytes")

    monkeypatch.setattr(rig.fetcher, "fetch", watched)

    with aioresponses() as mock:
        mock.get(quick, callback=fast)
        for url in slow:
            mock.get(url, callback=hang)
        drain = asyncio.create_task(rig.fetcher.drain())
        await quick_done.wait()
        for _ in range(10):
            await asyncio.sleep(0)  # its task's end is seen; one slow one runs, the rest wait in the reserve
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
    first, *rest = await rig.rows()
    assert (first.state, first.attempts) == ("stored", 1)
    # running or reserved: pending again, due now, no attempt spent, nobody's lease
    assert [(r.state, r.attempts, r.locked_until, r.next_attempt_at) for r in rest] == [
        ("pending", 0, None, rig.clock.now)
    ] * 4


async def test_giving_back_a_claim_whose_lease_ran_out_leaves_the_new_holder_alone(rig: Rig) -> None:
    await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url="https://cdn.test/taken"))
    lease = timedelta(seconds=60)
    [old] = await claim_fetches(rig.store, now=rig.clock.now, lease=lease, limit=5)
    rig.clock.now += timedelta(seconds=61)
    [new] = await claim_fetches(rig.store, now=rig.clock.now, lease=lease, limit=5)  # another process
    await record_and_claim_fetches(rig.store, [], now=rig.clock.now, lease=lease, limit=0, release=[old])
    [row] = await rig.rows()
    assert (row.attempts, row.locked_until) == (2, new.leased_until)


class WatchedBlobs(LocalBlobStore):
    """A local store that notes how blobs were put and, at each ``sync``, which rows were stored already."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.store: Store | None = None
        self.put_synced: list[bool] = []
        self.syncs: list[tuple[set[str], set[str]]] = []  # (keys synced, blob keys of rows stored before it)
        self.fail = False

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None, sync: bool = True) -> StoredBlob:
        self.put_synced.append(sync)
        return await super().put(chunks, max_bytes=max_bytes, sync=sync)

    async def sync(self, keys: Iterable[str]) -> None:
        keys = set(keys)
        if self.fail and keys:
            raise OSError(5, "Input/output error")
        assert self.store is not None
        async with self.store.read() as connection:
            found = await connection.execute(select(attachments.c.blob_key).where(attachments.c.state == "stored"))
            self.syncs.append((keys, {key for key in found.scalars() if key is not None}))
        await super().sync(keys)


@pytest.fixture
async def watched(rig: Rig, tmp_path: Path) -> WatchedBlobs:
    blobs = WatchedBlobs(tmp_path / "watched")
    blobs.store = rig.store
    rig.blobs = rig.fetcher.blobs = blobs
    rig.fetcher.policy = FetchPolicy(max_attempts=3, lease=60, batch=2)
    return blobs


async def test_a_round_syncs_its_files_once_before_it_records_them_stored(rig: Rig, watched: WatchedBlobs) -> None:
    image = png((50, 20), "green")
    await rig.customer_sends("fb", Attachment(kind=MessageKind.IMAGE, url="https://cdn.test/sync/photo.png"))
    for n in range(4):
        await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url=f"https://cdn.test/sync/{n}.bin"))
    with aioresponses() as mock:
        mock.get("https://cdn.test/sync/photo.png", body=image)
        for n in range(4):
            mock.get(f"https://cdn.test/sync/{n}.bin", body=f"file {n}".encode())
        assert await rig.fetch() == 5
    rows = await rig.rows()
    assert [row.state for row in rows] == ["stored"] * 5
    assert watched.put_synced == [False] * 6  # five files and one thumbnail, each left to its round's sync
    kept = {row.blob_key for row in rows} | {rows[0].thumbnail_key}
    synced = set().union(*(keys for keys, _stored in watched.syncs))
    assert synced == kept
    for keys, stored_before in watched.syncs:
        assert not keys & stored_before  # no row said "stored" before its file's sync


async def test_a_round_whose_sync_fails_records_no_file_as_stored(rig: Rig, watched: WatchedBlobs) -> None:
    await rig.customer_sends("fb", Attachment(kind=MessageKind.FILE, url="https://cdn.test/sync/lost.bin"))
    watched.fail = True
    with aioresponses() as mock:
        mock.get("https://cdn.test/sync/lost.bin", body=b"written, never synced")
        with pytest.raises(OSError, match="Input/output error"):
            await rig.fetch()
    [row] = await rig.rows()
    assert (row.state, row.blob_key) == ("pending", None)
    assert row.locked_until is not None  # fetched again once its lease runs out
    assert rig.events == []
