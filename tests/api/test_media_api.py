"""Media over the API: uploads within and past the limits, attachments served to those who may see them
(type, disposition, nosniff, ranges, thumbnails), a customer's file fetched from a provider on loopback, an
agent's upload sent with a public link, and an admin's retry of a failed fetch."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from hub.api.keys import INGESTOR
from hub.model import Attachment, InboundMessage, MessageKind
from hub.ports import MB
from tests.api.conftest import AgentHandle, Api, MakeApi

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
VCARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jana Novak\r\nTEL;TYPE=CELL:+420600123456\r\nEND:VCARD\r\n"


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "green").save(out, "PNG")
    return out.getvalue()


def ogg(size: int = 4096) -> bytes:
    return b"OggS\x00\x02" + bytes(range(256)) * (size // 256)


async def upload(agent: AgentHandle, data: bytes, name: str, mime: str | None = None) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename=name, content_type=mime or "application/octet-stream")
    return await agent.client.post("/api/v1/uploads", data=form, headers=agent.headers)


async def test_an_upload_answers_with_its_facts(make_api: MakeApi) -> None:
    api = await make_api()
    alice = await api.agent("alice")
    image = png()
    response = await upload(alice, image, "parcel.png", "image/png")
    assert response.status == 201, await response.text()
    body = await response.json()
    assert set(body) == {"id", "mime", "size", "sha256", "file_name"}
    assert (body["mime"], body["size"], body["file_name"]) == ("image/png", len(image), "parcel.png")
    import hashlib

    assert body["sha256"] == hashlib.sha256(image).hexdigest()


async def test_uploads_at_the_limit_pass_and_one_byte_over_is_413(make_api: MakeApi) -> None:
    api = await make_api("\n[media]\nmax_bytes = 2048\n")
    alice = await api.agent("alice")
    at_limit = await upload(alice, b"a" * 2048, "notes.txt", "text/plain")
    assert at_limit.status == 201, await at_limit.text()
    over = await upload(alice, b"a" * 2049, "notes.txt", "text/plain")
    assert over.status == 413
    error = (await over.json())["error"]
    assert (error["code"], error["limit"]) == ("file_too_large", 2048)


async def test_a_file_whose_bytes_disagree_with_its_name_is_refused(make_api: MakeApi) -> None:
    api = await make_api()
    alice = await api.agent("alice")
    response = await upload(alice, PDF, "holiday.jpg", "image/jpeg")
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "type_mismatch"
    assert error["sniffed"] == "application/pdf"


@pytest.mark.parametrize(
    ("data", "name", "declared", "kept"),
    [
        (VCARD, "jana.vcf", "text/x-vcard", "text/vcard"),
        (VCARD, "jana.vcf", None, "text/vcard"),  # the browser knew no type for it
        (b"order,parcel\n1042,CZ123\n", "orders.csv", None, "text/csv"),  # by its name: the bytes are only text
        (b"order,parcel\n1042,CZ123\n", "orders", "text/csv", "text/csv"),  # by the declared type
        (b"<p>hello</p>\n", "page.html", "text/html", "text/plain"),  # never a type a browser would run
        (b"plain notes\n", "notes.txt", "text/plain", "text/plain"),
        # Windows with Excel installed: browsers there declare a .csv as Excel's type, from the name alone
        (b"order,parcel\n1042,CZ123\n", "orders.csv", "application/vnd.ms-excel", "text/csv"),
    ],
    ids=["vcard", "vcard-undeclared", "csv-by-name", "csv-declared", "html", "text", "csv-as-excel"],
)
async def test_an_uploaded_text_file_keeps_the_text_type_its_bytes_cannot_tell(
    make_api: MakeApi, data: bytes, name: str, declared: str | None, kept: str
) -> None:
    api = await make_api()
    alice = await api.agent("alice")
    response = await upload(alice, data, name, declared)
    assert response.status == 201, await response.text()
    assert (await response.json())["mime"] == kept


@pytest.mark.parametrize(
    ("send", "status", "code"),
    [
        ("empty", 422, "empty_file"),
        ("no-file", 422, "missing_field"),
        ("json", 415, "unsupported_media_type"),
    ],
)
async def test_bad_uploads_are_clear_4xx(make_api: MakeApi, send: str, status: int, code: str) -> None:
    api = await make_api()
    alice = await api.agent("alice")
    if send == "empty":
        response = await upload(alice, b"", "empty.txt", "text/plain")
    elif send == "no-file":
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("other", "x")
        response = await alice.client.post("/api/v1/uploads", data=form, headers=alice.headers)
    else:
        response = await alice.post("/api/v1/uploads", json={"file": "x"})
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"no boundary was named"),
        ("multipart/form-data; boundary=XX", b"no boundary in the body"),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="file"; filename="cut.txt"\r\n\r\n' + b"a" * 70000,
        ),
        ("multipart/form-data; boundary=XX", b"--XX\r\ngarbage\r\n\r\nx\r\n--XX--\r\n"),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a\x00b"\r\n\r\nx\r\n--XX--\r\n',
        ),
    ],
    ids=["no-boundary", "no-starting-boundary", "no-closing-boundary", "part-header-garbage", "nul-in-part-header"],
)
async def test_a_malformed_form_is_400_and_keeps_nothing(make_api: MakeApi, content_type: str, body: bytes) -> None:
    api = await make_api()
    alice = await api.agent("alice")
    response = await alice.client.post(
        "/api/v1/uploads", data=body, headers={**alice.headers, "Content-Type": content_type}
    )
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == "invalid_form"
    assert await _blob_count(api) == 0


async def test_uploading_needs_a_login(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("file", b"hello", filename="a.txt")
    response = await api.client.post("/api/v1/uploads", data=form)
    assert response.status == 401


# ------------------------------------------------------------------ an agent's file, sent


async def _active(api: Api, agent: AgentHandle) -> int:
    conversation_id = await api.customer_writes()
    await api.sweep()
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    return conversation_id


async def test_a_reply_sends_an_upload_by_the_hubs_public_link(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)
    alice = await api.agent("alice", ready=True)
    conversation_id = await _active(api, alice)
    pdf = await (await upload(alice, PDF, "invoice.pdf", "application/pdf")).json()
    sent = await alice.json(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        {"attachments": [{"upload": pdf["id"]}]},  # no caption: WhatsApp through Twilio sends a document without
        status=201,
    )
    [attachment] = sent["attachments"]
    assert {"id", "kind", "state", "mime", "size", "sha256", "file_name", "url", "error"} <= set(attachment)
    assert (attachment["kind"], attachment["state"], attachment["mime"]) == ("file", "stored", "application/pdf")
    assert attachment["url"] == f"/api/v1/media/{attachment['id']}"
    served = await alice.get(attachment["url"])
    assert served.status == 200
    assert await served.read() == PDF
    assert served.headers["Content-Type"] == "application/pdf"
    assert served.headers["Content-Disposition"].startswith("attachment;")
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]

    for _ in range(200):  # the outbox sends in the background
        if api.adapter.sent:
            break
        await asyncio.sleep(0.02)
    [message] = api.adapter.sent
    [link] = message.attachments
    public = api.settings.server.public_url.rstrip("/") + "/media/"
    assert link.url.startswith(public)
    fetched = await api.client.get("/media/" + link.url.removeprefix(public))  # the provider: no login
    assert fetched.status == 200
    assert await fetched.read() == PDF
    assert (await api.client.get("/media/" + "x" * 43)).status == 404


async def test_someone_elses_upload_names_nothing(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)
    alice = await api.agent("alice", ready=True)
    bob = await api.agent("bob")
    conversation_id = await _active(api, alice)
    theirs = await (await upload(bob, PDF, "x.pdf", "application/pdf")).json()
    response = await alice.post(
        f"/api/v1/conversations/{conversation_id}/messages", {"attachments": [{"upload": theirs["id"]}]}
    )
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "upload_not_found"


@pytest.mark.parametrize(("size", "refused"), [(5 * MB, False), (5 * MB + 1, True)], ids=["at-5-MB", "one-byte-over"])
async def test_the_policy_refuses_an_upload_too_big_for_whatsapp_images(
    make_api: MakeApi, size: int, refused: bool
) -> None:
    api = await make_api(fake_adapter=True)
    alice = await api.agent("alice", ready=True)
    conversation_id = await _active(api, alice)
    big = png((4000, 3000))
    big += b"\x00" * (size - len(big))  # a PNG with trailing bytes: at 5 MB (10^6 bytes each) or one byte over
    image = await (await upload(alice, big, "big.png", "image/png")).json()
    response = await alice.post(
        f"/api/v1/conversations/{conversation_id}/messages", {"attachments": [{"upload": image["id"]}]}
    )
    if not refused:
        assert response.status < 300, await response.text()
        return
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["rule"] == "attachment_too_large"
    assert "5 MB" in error["message"]
    assert api.adapter.sent == []


@pytest.mark.parametrize(
    ("data", "name", "text", "rule"),
    [
        (b"plain notes\n" * 10, "notes.txt", None, "attachment_type_not_allowed"),  # not a document Twilio takes
        (PDF, "invoice.pdf", "your invoice", "caption_not_allowed"),  # Twilio sends no caption with a document
        (PDF, "invoice.pdf", None, None),
        (VCARD, "jana.vcf", None, None),  # a contact: Twilio takes vCards
    ],
    ids=["text-file", "captioned-pdf", "pdf", "vcard"],
)
async def test_whatsapp_through_twilio_takes_only_its_document_types_and_no_caption(
    make_api: MakeApi, data: bytes, name: str, text: str | None, rule: str | None
) -> None:
    api = await make_api(fake_adapter=True)
    alice = await api.agent("alice", ready=True)
    conversation_id = await _active(api, alice)
    kept = await (await upload(alice, data, name)).json()
    body: dict[str, Any] = {"attachments": [{"upload": kept["id"]}]}
    if text:
        body["text"] = text
    response = await alice.post(f"/api/v1/conversations/{conversation_id}/messages", body)
    if rule is None:
        assert response.status < 300, await response.text()
        return
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["rule"] == rule
    assert "whatsapp.twilio" in error["message"]
    assert api.adapter.sent == []


# ------------------------------------------------------------------ a customer's file, fetched


class Provider:
    """A provider's media host on loopback: serves files, fails on demand, records the auth it got."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.failures: dict[str, int] = {}
        self.auth: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.auth.append(request.headers.get("Authorization"))
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            return web.Response(status=503)
        if name not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[name], content_type="application/octet-stream")


@pytest.fixture
async def provider(aiohttp_server: Any) -> tuple[Provider, str]:
    found = Provider()
    app = web.Application()
    app.router.add_get("/media/{name}", found.handle)
    server = await aiohttp_server(app)
    return found, str(server.make_url("/media/"))


async def _customer_sends(api: Api, url: str, kind: MessageKind, message_id: str) -> int:
    event = InboundMessage(
        channel=api.settings.account("wa-test").channel,
        account_id="wa-test",
        sender_id="+420600000002",
        provider_message_id=message_id,
        sent_at=api.clock(),
        kind=kind,
        attachments=(Attachment(kind=kind, url=url),),
    )
    await api.app[INGESTOR].submit([event])
    return await api.open_conversation("wa-test", "+420600000002")


async def _attachment(agent: AgentHandle, conversation_id: int, state: str) -> dict[str, Any]:
    for _ in range(500):  # the fetcher works in the background; bounded
        page = await agent.json("GET", f"/api/v1/conversations/{conversation_id}/messages")
        found = [a for item in page["items"] if item["type"] == "message" for a in item["attachments"]]
        if found and found[-1]["state"] == state:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no attachment reached {state}: {found}")


async def test_a_customers_image_is_fetched_and_served_with_its_thumbnail(
    make_api: MakeApi, provider: tuple[Provider, str]
) -> None:
    host, base = provider
    image = png()
    host.files["photo"] = image
    api = await make_api()
    boss = await api.agent("boss", role="supervisor")
    conversation_id = await _customer_sends(api, base + "photo", MessageKind.IMAGE, "MM-photo")
    attachment = await _attachment(boss, conversation_id, "stored")
    assert (attachment["mime"], attachment["size"], attachment["width"], attachment["height"]) == (
        "image/png",
        len(image),
        64,
        48,
    )
    assert str(host.auth[0]).startswith("Basic ")  # the account's own api host here: its credentials go along
    served = await boss.get(attachment["url"])
    assert (served.status, served.headers["Content-Type"]) == (200, "image/png")
    assert served.headers["Content-Disposition"].startswith("inline;")
    assert await served.read() == image
    thumbnail = await boss.get(attachment["thumbnail_url"])
    assert (thumbnail.status, thumbnail.headers["Content-Type"]) == (200, "image/webp")
    outsider = await api.agent("outsider", queues=("sales",))
    assert (await outsider.get(attachment["url"])).status == 403


async def test_a_pdf_sent_as_an_image_is_a_file_in_the_message_json(
    make_api: MakeApi, provider: tuple[Provider, str]
) -> None:
    host, base = provider
    host.files["scan"] = PDF
    api = await make_api()
    boss = await api.agent("boss", role="supervisor")
    conversation_id = await _customer_sends(api, base + "scan", MessageKind.IMAGE, "MM-scan")
    attachment = await _attachment(boss, conversation_id, "stored")
    assert (attachment["kind"], attachment["mime"]) == ("file", "application/pdf")
    served = await boss.get(attachment["url"])
    assert served.headers["Content-Disposition"].startswith("attachment;")


async def test_a_voice_note_answers_range_requests(make_api: MakeApi, provider: tuple[Provider, str]) -> None:
    host, base = provider
    voice = ogg()
    host.files["voice"] = voice
    api = await make_api()
    boss = await api.agent("boss", role="supervisor")
    conversation_id = await _customer_sends(api, base + "voice", MessageKind.AUDIO, "MM-voice")
    attachment = await _attachment(boss, conversation_id, "stored")
    part = await boss.get(attachment["url"], headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(voice)}"
    assert await part.read() == voice[100:200]
    tail = await boss.get(attachment["url"], headers={"Range": "bytes=-10"})
    assert await tail.read() == voice[-10:]
    past = await boss.get(attachment["url"], headers={"Range": f"bytes={len(voice)}-"})
    assert past.status == 416


async def test_a_failed_fetch_is_shown_and_an_admin_retries_it(
    make_api: MakeApi, provider: tuple[Provider, str]
) -> None:
    host, base = provider
    api = await make_api()
    admin = await api.agent("root", role="admin")
    boss = await api.agent("boss", role="supervisor")
    conversation_id = await _customer_sends(api, base + "late", MessageKind.FILE, "MM-late")
    failed = await _attachment(admin, conversation_id, "failed")
    assert "404" in failed["error"]
    assert failed["url"] is None
    assert (await admin.get(f"/api/v1/media/{failed['id']}")).status == 409
    assert (await boss.post(f"/api/v1/media/{failed['id']}/retry")).status == 403
    host.files["late"] = PDF
    retried = await admin.json("POST", f"/api/v1/media/{failed['id']}/retry")
    assert retried["state"] == "pending"
    [audited] = (await admin.json("GET", "/api/v1/audit?action=media.retried"))["items"]
    assert (audited["actor"], audited["target"], audited["conversation"]) == (
        "root",
        f"attachment:{failed['id']}",
        conversation_id,
    )
    stored = await _attachment(admin, conversation_id, "stored")
    assert stored["mime"] == "application/pdf"
    again = await admin.post(f"/api/v1/media/{failed['id']}/retry")
    assert (again.status, (await again.json())["error"]["code"]) == (409, "not_failed")


# ------------------------------------------------------------------ retention and a contact's data


async def _blob_count(api: Api) -> int:
    from hub.api.keys import HUB

    return len([blob async for blob in api.app[HUB].blobs.scan()])


async def test_retention_removes_old_media_and_unsent_uploads(
    make_api: MakeApi, provider: tuple[Provider, str]
) -> None:
    from hub.api.keys import HUB
    from hub.usecases.media import sweep_media

    host, base = provider
    host.files["old"] = png()
    api = await make_api("\n[media]\nkeep_days = 30\n")
    boss = await api.agent("boss", role="supervisor")
    conversation_id = await _customer_sends(api, base + "old", MessageKind.IMAGE, "MM-old")
    await _attachment(boss, conversation_id, "stored")
    await upload(boss, PDF, "never-sent.pdf", "application/pdf")
    assert await _blob_count(api) == 3  # the image, its thumbnail, the upload
    hub = api.app[HUB]
    api.clock.advance(29 * 86400)
    assert await sweep_media(hub, hub.blobs) == 1  # the unsent upload, a day old
    api.clock.advance(2 * 86400)
    assert await sweep_media(hub, hub.blobs) == 2
    assert await _blob_count(api) == 0
    later = await api.agent("later", role="supervisor")  # a month on: a fresh login
    expired = await _attachment(later, conversation_id, "failed")
    assert expired["error"].startswith("expired")
    assert expired["url"] is None


async def test_deleting_a_contacts_data_removes_their_media(make_api: MakeApi, provider: tuple[Provider, str]) -> None:
    host, base = provider
    host.files["id-card"] = png((30, 20))
    api = await make_api()
    admin = await api.agent("root", role="admin")
    conversation_id = await _customer_sends(api, base + "id-card", MessageKind.IMAGE, "MM-id")
    stored = await _attachment(admin, conversation_id, "stored")
    conversation = await admin.json("GET", f"/api/v1/conversations/{conversation_id}")
    identity_id = conversation.get("identity_id") or conversation["identity"]
    identity_id = identity_id["id"] if isinstance(identity_id, dict) else identity_id
    paired = await admin.json("POST", f"/api/v1/identities/{identity_id}/contact", {"name": "Iva"}, status=201)
    contact_id = paired.get("contact_id") or paired["contact"]["id"]
    agent = await api.agent("plain")
    assert (await agent.delete(f"/api/v1/contacts/{contact_id}/data")).status == 403
    assert (await admin.delete("/api/v1/contacts/999999/data")).status == 404
    outcome = await admin.json("DELETE", f"/api/v1/contacts/{contact_id}/data")
    assert outcome == {"attachments": 1, "blobs": 2, "blobs_pending": 0}
    audit = await admin.json("GET", "/api/v1/audit?action=contact.data_deleted")
    [entry] = audit["items"]
    assert (entry["actor"], entry["target"], entry["after"]) == ("root", f"contact:{contact_id}", outcome)
    assert await _blob_count(api) == 0
    removed = await _attachment(admin, conversation_id, "failed")
    assert removed["id"] == stored["id"]
    assert (removed["file_name"], removed["sha256"], removed["url"]) == (None, None, None)
    assert (await admin.get(stored["url"])).status == 409
    retried = await admin.post(f"/api/v1/media/{stored['id']}/retry")  # nothing left to fetch, by design
    assert (retried.status, (await retried.json())["error"]["code"]) == (409, "not_refetchable")
    kept = await _attachment(admin, conversation_id, "failed")
    assert kept["error"] == removed["error"]
