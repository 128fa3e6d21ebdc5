"""The real type of a file from its bytes, and image dimensions and thumbnails, on files made in the test."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from hub.media import (
    ImageRefused,
    LocalBlobStore,
    describe_image,
    describe_stored_image,
    kind_of_bytes,
    refined_mime,
    sniff_mime,
    types_disagree,
)


def image_bytes(fmt: str, size: tuple[int, int] = (640, 480), mode: str = "RGB", **options: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red" if mode != "1" else 1).save(out, fmt, **options)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header that claims a huge image (a decompression bomb), with no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (image_bytes("PNG"), "image/png"),
        (image_bytes("JPEG"), "image/jpeg"),
        (image_bytes("GIF"), "image/gif"),
        (image_bytes("WEBP"), "image/webp"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
        (b"OggS\x00\x02" + bytes(22) + b"\x01\x13OpusHead", "audio/ogg"),
        (b"MZ\x90\x00" + bytes(300), "application/x-msdownload"),
        ("Здравствуйте, посылка пришла повреждённой.\n".encode(), "text/plain"),
        (b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jana Novak\r\nTEL:+420600123456\r\nEND:VCARD\r\n", "text/vcard"),
        (b"\xef\xbb\xbf\r\nbegin:vcard\nversion:4.0\nfn:Jana\nend:vcard\n", "text/vcard"),  # a BOM, a blank line
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "text/calendar"),
        (b"name,phone\nJana,+420600123456\n", "text/plain"),  # CSV: its bytes alone cannot say so
        (b"\x00\x01\x02\x03 not anything", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_the_type_comes_from_the_bytes(data: bytes, mime: str) -> None:
    assert sniff_mime(data) == mime


def test_text_cut_inside_a_character_is_still_text() -> None:
    sample = ("é" * 5000).encode()[:8191]  # the sniffing window ends in the middle of a two-byte character
    assert sniff_mime(sample) == "text/plain"


@pytest.mark.parametrize(
    ("sniffed", "declared", "name", "kept"),
    [
        ("text/plain", "text/csv", "orders.csv", "text/csv"),
        ("text/plain", "application/octet-stream", "orders.csv", "text/csv"),  # by its name
        ("text/plain", None, "contact.vcf", "text/vcard"),
        ("text/plain", "text/x-vcard; charset=utf-8", None, "text/vcard"),
        ("text/plain", "text/plain", "orders.csv", "text/csv"),
        ("text/plain", "text/html", "page.html", "text/plain"),  # never a type a browser would run
        ("text/plain", "application/json", None, "text/plain"),  # not a text type
        ("text/plain", "text/<b>", None, "text/plain"),  # not a type's name
        ("text/plain", None, "notes.txt", "text/plain"),
        ("text/plain", None, None, "text/plain"),
        ("image/png", "text/csv", "orders.csv", "image/png"),  # the bytes beat the word for a binary kind
        ("application/pdf", None, "contact.vcf", "application/pdf"),
        ("application/octet-stream", "text/csv", "orders.csv", "application/octet-stream"),  # not text at all
        ("text/vcard", "text/plain", "contact.txt", "text/vcard"),  # the bytes say more than the word
    ],
)
def test_text_bytes_take_the_text_type_declared_or_named(
    sniffed: str, declared: str | None, name: str | None, kept: str
) -> None:
    assert refined_mime(sniffed, declared=declared, file_name=name) == kept


@pytest.mark.parametrize(
    ("declared", "sniffed", "disagree"),
    [
        ("image/png", "image/jpeg", True),  # a JPEG sent as a PNG
        ("application/pdf", "application/x-msdownload", True),  # an executable named invoice.pdf
        ("application/pdf", "text/plain", True),
        ("image/jpg", "image/jpeg", False),  # the same type under another name
        ("audio/ogg; codecs=opus", "audio/ogg", False),
        ("IMAGE/JPEG", "image/jpeg", False),
        ("text/csv", "text/plain", False),
        ("text/x-vcard", "text/vcard", False),  # the older name of the same type
        ("text/plain", "text/vcard", False),  # a vCard is text, whatever else it is
        ("application/pdf", "text/vcard", True),
        ("application/json", "text/plain", False),
        ("application/octet-stream", "image/png", False),  # nothing declared really
        (None, "image/png", False),
        ("video/mp4", "application/octet-stream", False),  # the sniff found nothing to contradict it
    ],
)
def test_a_declared_type_disagrees_only_when_the_bytes_say_otherwise(
    declared: str | None, sniffed: str, disagree: bool
) -> None:
    assert types_disagree(declared, sniffed) is disagree


@pytest.mark.parametrize(
    ("said", "mime", "kept"),
    [
        ("image", "application/pdf", "file"),  # a PDF sent as a photo: a file, not an image the console shows
        ("image", "video/mp4", "video"),
        ("audio", "image/jpeg", "image"),
        ("video", "text/plain", "file"),
        ("image", "image/png", "image"),
        ("image", "image/jpg", "image"),
        ("audio", "video/mp4", "audio"),  # a voice note in an MP4 container stays a voice note
        ("video", "audio/ogg", "video"),
        ("image", "application/octet-stream", "image"),  # the sniff found nothing to contradict the provider
        ("sticker", "application/pdf", "sticker"),  # kinds that are not a family of types are kept as said
        ("file", "image/png", "file"),  # a photo sent as a document keeps its full quality as a file
        ("location", "text/plain", "location"),
    ],
)
def test_a_kind_the_bytes_contradict_becomes_what_the_bytes_are(said: str, mime: str, kept: str) -> None:
    assert kind_of_bytes(said, mime) == kept


def test_an_image_has_its_dimensions_and_a_small_thumbnail() -> None:
    facts = describe_image(io.BytesIO(image_bytes("PNG", (1280, 720))))
    assert (facts.width, facts.height) == (1280, 720)
    assert facts.thumbnail_mime == "image/webp"
    with Image.open(io.BytesIO(facts.thumbnail)) as thumbnail:
        assert thumbnail.format == "WEBP"
        assert thumbnail.size == (320, 180)


def test_a_photo_taken_sideways_is_measured_as_shown() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    facts = describe_image(io.BytesIO(image_bytes("JPEG", (640, 480), exif=exif.tobytes())))
    assert (facts.width, facts.height) == (480, 640)
    with Image.open(io.BytesIO(facts.thumbnail)) as thumbnail:
        assert thumbnail.size == (240, 320)


@pytest.mark.parametrize("mode", ["P", "LA", "CMYK", "1"])
def test_images_of_every_colour_mode_get_a_thumbnail(mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    facts = describe_image(io.BytesIO(image_bytes(fmt, (50, 40), mode)))
    assert (facts.width, facts.height) == (50, 40)
    assert facts.thumbnail.startswith(b"RIFF")


def test_an_image_over_the_pixel_limit_is_refused_before_decoding() -> None:
    with pytest.raises(ImageRefused) as caught:
        describe_image(io.BytesIO(image_bytes("PNG", (2000, 1000))), max_pixels=1_000_000)
    assert "2000x1000" in caught.value.reason


def test_a_decompression_bomb_is_refused() -> None:
    with pytest.raises(ImageRefused):
        describe_image(io.BytesIO(png_claiming(100_000, 100_000)))
    with pytest.raises(ImageRefused):  # under our limit, over Pillow's own: still refused
        describe_image(io.BytesIO(png_claiming(10_000, 9_000)), max_pixels=10**12)


@pytest.mark.parametrize(
    "data", [b"not an image at all", image_bytes("PNG")[:200], png_claiming(64, 64)], ids=["text", "cut", "empty"]
)
def test_what_cannot_be_decoded_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(ImageRefused) as caught:
        describe_image(io.BytesIO(data))
    assert caught.value.reason


async def test_a_stored_image_is_described_off_the_event_loop(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = image_bytes("JPEG", (800, 600))

    async def one() -> AsyncIterator[bytes]:
        yield data

    blob = await store.put(one())
    assert blob.mime == "image/jpeg"
    facts = await describe_stored_image(store, blob.key)
    assert (facts.width, facts.height) == (800, 600)
