"""WhatsApp's media rules, the channel's own: what WhatsApp takes whichever provider carries the message. The
Cloud API adapter declares them as they are; the Twilio adapter declares them with Twilio's tighter rules on top
(adapters/twilio_whatsapp.py). Sources: docs/channels.md, "Media limits"."""

from __future__ import annotations

from hub.model import MessageKind
from hub.ports import MB, MediaRules

__all__ = ["WHATSAPP_MEDIA"]

#: Meta, Cloud API "Supported media types": images 5 MB (JPEG, PNG), video 16 MB (MP4, 3GPP), audio 16 MB (AAC,
#: AMR, MP3, MP4 audio, OGG with Opus), documents 100 MB of any type; audio and stickers take no caption. Stickers
#: (100 KB static, 500 KB animated WebP) are not a kind the hub sends; one media per message
WHATSAPP_MEDIA = MediaRules(
    sizes={
        MessageKind.IMAGE: 5 * MB,
        MessageKind.VIDEO: 16 * MB,
        MessageKind.AUDIO: 16 * MB,
        MessageKind.FILE: 100 * MB,
    },
    types={
        MessageKind.IMAGE: frozenset({"image/jpeg", "image/png"}),
        MessageKind.VIDEO: frozenset({"video/mp4", "video/3gpp"}),
        MessageKind.AUDIO: frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
        MessageKind.FILE: None,
    },
    uncaptioned=frozenset({MessageKind.AUDIO, MessageKind.STICKER}),
    per_message=1,
)
