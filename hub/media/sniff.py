"""The real type of a file, from its first bytes: never the provider's word or the file name for a binary kind.

Binary formats by their signature (the ``filetype`` package); a vCard or an iCalendar file by its ``BEGIN:`` line;
other UTF-8 text without NUL bytes as ``text/plain``; anything else as ``application/octet-stream``.

Bytes that are plain text cannot tell a CSV file from a note: there, and only there, ``refined_mime`` takes the
text type that the sender declared or the file's name says (``text/csv``, ``text/vcard``), so that a channel that
takes such a file can be sent it. A declared type never overrides bytes of any other kind.
"""

from __future__ import annotations

import mimetypes
import re

import filetype

__all__ = ["SNIFF_BYTES", "UNKNOWN", "kind_of_bytes", "refined_mime", "sniff_mime", "types_disagree"]

#: how many leading bytes sniffing looks at (filetype needs 261; text needs a little more to be sure)
SNIFF_BYTES = 8192
UNKNOWN = "application/octet-stream"

# the same type under the names providers and browsers also use
_ALIASES = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/mp3": "audio/mpeg",
    "audio/opus": "audio/ogg",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/x-pdf": "application/pdf",
    "text/x-vcard": "text/vcard",
    "text/directory": "text/vcard",
    "text/x-vcalendar": "text/calendar",
}
# the attachment kinds that name a family of types (the first part of a MIME type)
_FAMILIES = frozenset({"image", "audio", "video"})
# declared types whose bytes are plain text
_TEXTUAL = frozenset({"application/json", "application/xml", "application/javascript", "image/svg+xml"})
# text formats whose first line names them (RFC 6350 vCard, RFC 5545 iCalendar), as a text file's first bytes
_TEXT_SIGNATURES = ((b"BEGIN:VCARD", "text/vcard"), (b"BEGIN:VCALENDAR", "text/calendar"))
# a text type as RFC 6838 spells a registered name (what a sender declared is kept only if it is one)
_TEXT_TYPE = re.compile(r"^text/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
# text types a browser runs as a document or a script: a sender's word for these is never taken over plain text
_RUNNABLE_TEXT = frozenset({"text/html", "text/xml", "text/javascript", "text/ecmascript", "text/xsl"})


def sniff_mime(head: bytes) -> str:
    """The MIME type the bytes ``head`` (the start of a file) show."""
    kind = filetype.guess(head)
    if kind is not None:
        return str(kind.mime)
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not only a character cut at the end of the sample
                return UNKNOWN
        return _text_type(head)
    return UNKNOWN


def _text_type(head: bytes) -> str:
    """``text/plain``, or the text format that the first line of ``head`` names."""
    first = head.removeprefix(b"\xef\xbb\xbf").lstrip()[:32].upper()  # a byte order mark, blank lines
    for signature, mime in _TEXT_SIGNATURES:
        if first.startswith(signature):
            return mime
    return "text/plain"


def refined_mime(sniffed: str, *, declared: str | None, file_name: str | None) -> str:
    """The type a file is kept as: ``sniffed`` (from its bytes), unless the bytes are only plain text and the
    sender's declared type, or else the type its file name says, is a more precise text type (``text/csv``,
    ``text/vcard``): plain text bytes cannot tell those apart. Never for a type a browser would run (HTML,
    scripts), and never over bytes of any other kind: for those the bytes have the last word."""
    if sniffed != "text/plain":
        return sniffed
    by_name = mimetypes.guess_type(file_name)[0] if file_name else None
    for said in (declared, by_name):
        if not said:
            continue
        mime = _normal(said)
        if _TEXT_TYPE.match(mime) and mime != "text/plain" and mime not in _RUNNABLE_TEXT:
            return mime
    return sniffed


def _normal(mime: str) -> str:
    base = mime.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def types_disagree(declared: str | None, sniffed: str) -> bool:
    """True when the type a sender declared and the one sniffed from the bytes name different formats.

    Nothing declared, or generic bytes declared (``application/octet-stream``), never disagrees; neither does a
    sniff that found nothing definite, since it cannot contradict anything."""
    if not declared or _normal(declared) == UNKNOWN or sniffed == UNKNOWN:
        return False
    if sniffed.startswith("text/"):  # text read as another text format (a vCard sent as text/plain) is text still
        return not _normal(declared).startswith("text/") and _normal(declared) not in _TEXTUAL
    return _normal(declared) != _normal(sniffed)


def kind_of_bytes(said: str, mime: str) -> str:
    """The kind a customer's attachment is kept as, once its bytes' type ``mime`` is known: the provider's word
    ``said``, unless it names a family (image, audio, video) that the bytes are not of. Then the bytes' family,
    or ``file`` for anything else (a PDF sent as an image is a file, so the console does not show it as one).

    Other kinds (sticker, file, location, ...) are kept as said; so is audio against video, as one container
    (MP4, 3GPP, Ogg, WebM) holds either and a voice note's bytes may sniff as video; and a type the sniff could
    not tell (``application/octet-stream``) contradicts nothing."""
    if said not in _FAMILIES or _normal(mime) == UNKNOWN:
        return said
    family = _normal(mime).split("/", 1)[0]
    if family == said or {family, said} <= {"audio", "video"}:
        return said
    return family if family in _FAMILIES else "file"
