"""The real type of a file, from its first bytes: never the provider's word or the file name.

Binary formats by their signature (the ``filetype`` package); UTF-8 text without NUL bytes as ``text/plain``;
anything else as ``application/octet-stream``.
"""

from __future__ import annotations

import filetype

__all__ = ["SNIFF_BYTES", "UNKNOWN", "kind_of_bytes", "sniff_mime", "types_disagree"]

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
}
# the attachment kinds that name a family of types (the first part of a MIME type)
_FAMILIES = frozenset({"image", "audio", "video"})
# declared types whose bytes are plain text
_TEXTUAL = frozenset({"application/json", "application/xml", "application/javascript", "image/svg+xml"})


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
        return "text/plain"
    return UNKNOWN


def _normal(mime: str) -> str:
    base = mime.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def types_disagree(declared: str | None, sniffed: str) -> bool:
    """True when the type a sender declared and the one sniffed from the bytes name different formats.

    Nothing declared, or generic bytes declared (``application/octet-stream``), never disagrees; neither does a
    sniff that found nothing definite, since it cannot contradict anything."""
    if not declared or _normal(declared) == UNKNOWN or sniffed == UNKNOWN:
        return False
    if sniffed == "text/plain":
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
