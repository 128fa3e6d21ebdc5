"""Facebook Messenger (Messenger Platform over the Graph API).

Owns everything Messenger: the webhook payload (``object: page``, ``entry[].messaging[]``),
the Send API, its window and tag errors, and the user profile API. Produces
``hub.model`` events; knows nothing of the store or the routes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from adapters import _graph
from adapters._checks import coordinate as _coordinate
from adapters._graph import COMMON_ERRORS, ErrorRule
from adapters._time import plausible_time, utc_now
from hub.errors import PayloadMalformed, ProviderRejected, ProviderUnavailable, UnknownAccount
from hub.model import (
    TEXT_LIMITS,
    Attachment,
    Button,
    Channel,
    ChannelAccount,
    CustomerActivity,
    DeliveryReceipt,
    DeliveryState,
    Echo,
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    Location,
    MessageKind,
    OutboundMessage,
    ProfileUpdate,
    SendReceipt,
)
from hub.ports import MB, ButtonLimits, MediaLocation, MediaReference, MediaRules, ProviderFacts
from hub.time_zones import zone_or_none

__all__ = ["ERRORS", "MEDIA_RULES", "MessengerAdapter", "page_ids", "parse_delivery"]

logger = logging.getLogger(__name__)

PROVIDER = "Messenger"
PART_METADATA = "channelhub:part"  # marks the leading parts of a multi-part send (their echoes are ours)
TEXT_LIMIT = TEXT_LIMITS[Channel.MESSENGER]

#: Messenger's error codes (channels.md 1.6) on top of the Graph codes both products share
ERRORS: dict[int | tuple[int, int], ErrorRule] = {
    **COMMON_ERRORS,
    1200: ErrorRule(True, "Messenger had a temporary failure sending the message; it will be retried."),
    2: ErrorRule(True, "Messenger reported an unexpected error; the message will be retried a few times."),
    (4, 2018022): ErrorRule(
        True, "Too many messages are being sent right now; the message will go out when the limit clears.", True
    ),
    (100, 2018001): ErrorRule(False, "This person cannot be reached on Messenger from this page (no matching user)."),
    (100, 2018109): ErrorRule(False, "The attachment is larger than Messenger allows."),
    10: ErrorRule(
        False,
        "Messenger refused the message: it is outside the allowed messaging window or the page lacks the permission.",
    ),
    (10, 2018278): ErrorRule(
        False,
        "The 24-hour messaging window has closed: the customer last wrote more than 24 hours ago. "
        "Reply with an allowed message tag (HUMAN_AGENT within 7 days) or wait for the customer to write.",
    ),
    (10, 2018065): ErrorRule(
        False, "Messenger refused the message: it is outside the allowed window or a permission is missing."
    ),
    (10, 2018108): ErrorRule(
        False, "Messenger refused the message: it is outside the allowed window or a permission is missing."
    ),
    (200, 1545041): ErrorRule(
        False, "Another app controls this conversation right now (handover protocol); the message was not sent."
    ),
    551: ErrorRule(False, "This person isn't available right now: they blocked the page or turned off messages."),
}

#: what Messenger takes (Meta, Messenger Platform "Saving assets"; docs/channels.md "Media limits"): images 8 MB by
#: URL, which is how the hub sends them (25 MB uploaded), video, audio and files 25 MB; one attachment per message
#: (text or attachment). The file types are the hub's choice of common formats: Meta lists none (docs/channels.md)
MEDIA_RULES = MediaRules(
    sizes={
        MessageKind.IMAGE: 8 * MB,
        MessageKind.VIDEO: 25 * MB,
        MessageKind.AUDIO: 25 * MB,
        MessageKind.FILE: 25 * MB,
    },
    types={
        MessageKind.IMAGE: frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"}),
        MessageKind.VIDEO: frozenset({"video/mp4", "video/quicktime", "video/webm"}),
        MessageKind.AUDIO: frozenset({"audio/mpeg", "audio/mp4", "audio/aac", "audio/ogg", "audio/wav"}),
        MessageKind.FILE: None,
    },
    per_message=1,
)

_ATTACHMENT_KINDS = {
    "image": MessageKind.IMAGE,
    "video": MessageKind.VIDEO,
    "audio": MessageKind.AUDIO,
    "file": MessageKind.FILE,
    "location": MessageKind.LOCATION,
    "template": MessageKind.TEMPLATE,
    "fallback": MessageKind.TEXT,
}
_SEND_TYPES = {
    MessageKind.IMAGE: "image",
    MessageKind.VIDEO: "video",
    MessageKind.AUDIO: "audio",
    MessageKind.FILE: "file",
    MessageKind.STICKER: "image",
}
_MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
#: the messaging items the hub stores; every other kind is acknowledged and counted
_HANDLED = ("message", "message_edit", "postback", "delivery", "read")
#: what an agent reads for a share Meta sends as a ``fallback`` with nothing in it ("for unsupported shares
#: made by users to your Page a fallback with no payload might be sent", Meta's messages webhook reference)
_UNSHOWN_SHARE = "[The customer shared something Messenger does not pass on]"
#: an ``appointment_booking`` attachment: the customer asked for (or changed) an appointment through the page's
#: booking feature. No file: its payload is the booking (Meta's messages webhook reference), read into words and facts
_BOOKING = "appointment_booking"
#: how far ahead a booking's time is believed (appointments are in the future, unlike a message's timestamp)
_BOOKING_AHEAD = timedelta(days=3660)


def page_ids(data: Mapping[str, Any]) -> list[str]:
    """The pages a delivery is for (``entry[].id``), in order, without repeats."""
    seen: list[str] = []
    for entry in data["entry"]:
        page = entry.get("id")
        if not isinstance(page, str | int) or not str(page):
            raise PayloadMalformed("an entry has no 'id' (the page)", code="missing_field")
        if str(page) not in seen:
            seen.append(str(page))
    return seen


def parse_delivery(body: bytes, adapters: Mapping[str, MessengerAdapter]) -> list[InboundEvent]:
    """Every event of a delivery that may span several pages, in order.

    ``adapters`` maps page id -> that page's adapter; a page not in it raises UnknownAccount.
    """
    data = _graph.load_json(body, "page")
    events: list[InboundEvent] = []
    for entry in data["entry"]:
        page = str(entry.get("id", ""))
        adapter = adapters.get(page)
        if adapter is None:
            raise UnknownAccount(f"Messenger page {page!r} is not configured")
        events.extend(adapter.parse_entry(entry))
    return events


class MessengerAdapter:
    """One Facebook page: verify, parse, send, check, profile."""

    capabilities = frozenset(
        {MessageKind.TEXT, MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.FILE}
    )
    text_limit = TEXT_LIMIT
    facts = ProviderFacts(
        channel=Channel.MESSENGER,
        provider="messenger",
        credentials=("page_id", "app_secret", "verify_token", "page_access_token"),
        public=frozenset({"page_id"}),
        address="page_id",
        api_base=_graph.DEFAULT_API_BASE,
        # the page's own sends come back as echoes, sometimes before the send's acceptance is stored
        echoes_own_sends=True,
        # quick replies: up to 13, titles up to 20 characters; payloads up to 1000 (docs/channels.md)
        buttons=ButtonLimits(most=13, title_length=20, payload_length=1000),
        media=MEDIA_RULES,
    )

    def __init__(self, account: ChannelAccount, session: aiohttp.ClientSession) -> None:
        self.account = account
        self._session = session
        self.page_id = account.credentials["page_id"]
        self._app_secret = account.credentials["app_secret"]
        self._token = account.credentials["page_access_token"]
        self.verify_token = account.credentials["verify_token"]

    def __repr__(self) -> str:
        return f"MessengerAdapter(account={self.account.id!r}, page_id={self.page_id!r})"

    # ------------------------------------------------------------------ inbound

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        _graph.verify_signature(headers, body, self._app_secret)

    def parse(self, body: bytes, headers: Mapping[str, str] | None = None) -> Sequence[InboundEvent]:
        """Every event of the delivery, in order; every entry must be this page."""
        return parse_delivery(body, {self.page_id: self})

    def parse_entry(self, entry: Mapping[str, Any]) -> list[InboundEvent]:
        """One ``entry`` (already known to be this page) -> its events, in order."""
        if str(entry.get("id")) != self.page_id:
            raise UnknownAccount(f"Messenger page {entry.get('id')!r} is not account {self.account.id!r}")
        events: list[InboundEvent] = []
        messaging = entry.get("messaging")
        received_at = utc_now()
        if messaging is not None:
            if not isinstance(messaging, list):
                raise PayloadMalformed("'messaging' must be a list", code="missing_field")
            for item in messaging:
                events.append(self._parse_item(item, entry.get("time"), received_at))
        for key in ("standby", "changes"):
            items = entry.get(key)
            if isinstance(items, list):
                events.extend(self._ignored(key) for _ in items)
        if messaging is None and not any(isinstance(entry.get(k), list) for k in ("standby", "changes")):
            events.append(self._ignored("entry_without_messaging"))
        return events

    def _ignored(self, kind: str) -> IgnoredEvent:
        return IgnoredEvent(channel=Channel.MESSENGER, account_id=self.account.id, kind=kind)

    def _parse_item(self, item: Any, entry_time: Any, received_at: datetime) -> InboundEvent:
        if not isinstance(item, dict):
            raise PayloadMalformed("a messaging item must be an object", code="missing_field")
        named = [k for k in item if k not in ("sender", "recipient", "timestamp")]
        if "reaction" in item or "referral" in item:
            activity = self._activity(item, entry_time, received_at)
            if activity is not None:
                return activity
        if named and not any(key in item for key in _HANDLED):
            # optins, referrals, reactions, edits, handovers: acknowledged whoever sent them (the checkbox
            # plugin's optin names the person by ``sender.user_ref``, not by a page-scoped id)
            return self._ignored(named[0])
        sender = _id_of(item, "sender")
        recipient = _id_of(item, "recipient")
        if not named:
            return self._ignored("empty")
        at = _item_time(item.get("timestamp"), entry_time, received_at)
        if "message" in item:
            return self._parse_message(item["message"], sender, recipient, at)
        if "message_edit" in item:
            return self._parse_edit(item["message_edit"], sender, at)
        if "postback" in item:
            return self._parse_postback(item["postback"], sender, at)
        if "delivery" in item:
            delivery = _obj(item, "delivery")
            mids = delivery.get("mids") or []
            if not isinstance(mids, list) or not all(isinstance(m, str | int) for m in mids):
                raise PayloadMalformed("'delivery.mids' must be a list of ids", code="invalid_field")
            raw_watermark = delivery.get("watermark")
            if not mids and raw_watermark is None:
                raise PayloadMalformed("a delivery has neither 'mids' nor 'watermark'", code="missing_field")
            return DeliveryReceipt(
                channel=Channel.MESSENGER,
                account_id=self.account.id,
                recipient_id=sender,
                state=DeliveryState.DELIVERED,
                occurred_at=at,
                provider_message_ids=tuple(str(m) for m in mids),
                watermark=_watermark(raw_watermark, received_at) if raw_watermark is not None else None,
            )
        # what is left of _HANDLED: a read receipt
        raw_watermark = _obj(item, "read").get("watermark")
        if raw_watermark is None:
            raise PayloadMalformed("a read event has no 'watermark'", code="missing_field")
        return DeliveryReceipt(
            channel=Channel.MESSENGER,
            account_id=self.account.id,
            recipient_id=sender,
            state=DeliveryState.READ,
            occurred_at=at,
            watermark=_watermark(raw_watermark, received_at),
        )

    def _activity(self, item: Mapping[str, Any], entry_time: Any, received_at: datetime) -> CustomerActivity | None:
        """A customer's reaction to a message, or an m.me link or ad opened on their existing thread
        (``messaging_referrals``): Meta counts both among the actions that open the standard messaging window
        (docs/channels.md, "What counts as the customer writing"). None for what is not a customer's (no
        page-scoped id, the page itself, a reaction taken back)."""
        sender = item.get("sender")
        psid = sender.get("id") if isinstance(sender, dict) else None
        if not isinstance(psid, str | int) or isinstance(psid, bool) or not str(psid) or str(psid) == self.page_id:
            return None
        kind = "referral"
        if "reaction" in item:
            reaction = item["reaction"]
            if not isinstance(reaction, dict) or reaction.get("action", "react") != "react":
                return None
            kind = "reaction"
        return CustomerActivity(
            channel=Channel.MESSENGER,
            account_id=self.account.id,
            sender_id=str(psid),
            kind=kind,
            occurred_at=_item_time(item.get("timestamp"), entry_time, received_at),
        )

    def _parse_message(self, message: Any, sender: str, recipient: str, at: datetime) -> InboundEvent:
        if not isinstance(message, dict):
            raise PayloadMalformed("'message' must be an object", code="missing_field")
        mid = message.get("mid")
        if not isinstance(mid, str) or not mid:
            raise PayloadMalformed("a message has no 'mid'", code="missing_field")
        if message.get("is_deleted"):
            return self._ignored("message_deleted")
        text = message.get("text") if isinstance(message.get("text"), str) else None
        kind = MessageKind.TEXT
        attachments: list[Attachment] = []
        location: Location | None = None
        extra: list[tuple[str, str]] = []
        raw_attachments = message.get("attachments") or []
        if not isinstance(raw_attachments, list):
            raise PayloadMalformed("'attachments' must be a list", code="missing_field")
        for index, raw in enumerate(raw_attachments):
            if not isinstance(raw, dict):
                raise PayloadMalformed("an attachment must be an object", code="missing_field")
            att_kind, attachment, found_location, facts = _parse_attachment(raw, message)
            if index == 0:
                kind = att_kind
            if attachment is not None:
                attachments.append(attachment)
            location = location or found_location
            extra.extend(facts)
            if text is None and att_kind in (MessageKind.TEXT, MessageKind.TEMPLATE, MessageKind.LOCATION):
                text = _attachment_text(raw)
            link = dict(facts).get("fallback_url")
            if link and link not in (text or ""):
                # a shared link Messenger cannot render: the agent reads it in the text (the history has no links)
                text = f"{text}\n{link}" if text else link
        payload = None
        quick_reply = message.get("quick_reply")
        if isinstance(quick_reply, dict) and quick_reply.get("payload") is not None:
            kind = MessageKind.POSTBACK
            payload = str(quick_reply["payload"])
        reply_to = message.get("reply_to", {}).get("mid") if isinstance(message.get("reply_to"), dict) else None
        if text is None and not attachments and location is None and payload is None:
            if not raw_attachments or message.get("is_echo"):
                return self._ignored("message_without_content")
            text = _UNSHOWN_SHARE  # the customer did send something: the agent must see that they did
        referral = message.get("referral")
        if isinstance(referral, dict):  # the ad or link that brought the customer (click-to-Messenger ads)
            extra.extend(_referral_facts(referral))
        if message.get("is_echo"):
            if message.get("metadata") == PART_METADATA:
                return self._ignored("echo_of_a_message_part")
            return Echo(
                channel=Channel.MESSENGER,
                account_id=self.account.id,
                recipient_id=recipient,
                provider_message_id=mid,
                sent_at=at,
                kind=kind if kind is not MessageKind.POSTBACK else MessageKind.TEXT,
                text=text,
                attachments=tuple(attachments),
            )
        return InboundMessage(
            channel=Channel.MESSENGER,
            account_id=self.account.id,
            sender_id=sender,
            provider_message_id=mid,
            sent_at=at,
            kind=kind,
            text=text,
            attachments=tuple(attachments),
            location=location,
            payload=payload,
            reply_to=str(reply_to) if reply_to else None,
            extra=tuple(extra),
        )

    def _parse_edit(self, edit: Any, sender: str, at: datetime) -> InboundEvent:
        """A customer's edit of a message they sent (``message_edits``): the new text, as a message of its own
        that answers the one edited, so the agent reads what the customer now says and what they changed.

        Its id is the edited message's ``mid`` with the edit's number (a customer may edit up to five times),
        so a redelivered edit is stored once.
        """
        if not isinstance(edit, dict):
            raise PayloadMalformed("'message_edit' must be an object", code="missing_field")
        mid = edit.get("mid")
        if not isinstance(mid, str) or not mid:
            raise PayloadMalformed("a message edit has no 'mid'", code="missing_field")
        text = edit.get("text")
        if sender == self.page_id or not isinstance(text, str) or not text:
            return self._ignored("message_edit")
        number = edit.get("num_edit")
        count = str(number) if isinstance(number, int | str) and str(number).isdigit() else None
        edit_key = count or str(int(at.timestamp() * 1000))
        extra = [("edit_of", mid)] + ([("edit_number", count)] if count else [])
        return InboundMessage(
            channel=Channel.MESSENGER,
            account_id=self.account.id,
            sender_id=sender,
            provider_message_id=f"{mid}#edit{edit_key}",
            sent_at=at,
            kind=MessageKind.TEXT,
            text=text,
            reply_to=mid,
            extra=tuple(extra),
        )

    def _parse_postback(self, postback: Any, sender: str, at: datetime) -> InboundEvent:
        if not isinstance(postback, dict):
            raise PayloadMalformed("'postback' must be an object", code="missing_field")
        # older postbacks carry no mid; the sender and the millisecond make a stable key
        mid = postback.get("mid") or f"postback:{sender}:{int(at.timestamp() * 1000)}"
        extra: list[tuple[str, str]] = []
        referral = postback.get("referral")
        if isinstance(referral, dict):
            extra.extend(_referral_facts(referral))
        return InboundMessage(
            channel=Channel.MESSENGER,
            account_id=self.account.id,
            sender_id=sender,
            provider_message_id=str(mid),
            sent_at=at,
            kind=MessageKind.POSTBACK,
            text=postback.get("title") if isinstance(postback.get("title"), str) else None,
            payload=str(postback["payload"]) if postback.get("payload") is not None else None,
            extra=tuple(extra),
        )

    # ---------------------------------------------------------------- outbound

    def _url(self, path: str) -> str:
        return f"{self.account.api_base}/{path}"

    async def send(self, message: OutboundMessage) -> SendReceipt:
        """One message; text with files goes out as several Messenger messages.

        Messenger has no captions and one file per message, so the text goes first, then
        each file; the last one's id is the receipt (watermark receipts cover them all).
        The leading parts carry ``metadata`` so their echoes are not taken for messages
        sent outside the hub. Everything is validated before the first call; a failure
        after a leading part went out is retried whole (that part may then repeat).
        """
        messaging_type = self._messaging_type(message)
        parts = self._message_parts(message)
        message_id = ""
        for index, part in enumerate(parts):
            if index < len(parts) - 1:
                part = {**part, "metadata": PART_METADATA}
            body: dict[str, Any] = {
                "recipient": {"id": message.recipient_id},
                "messaging_type": messaging_type,
                "message": part,
            }
            if message.tag:
                body["tag"] = message.tag
            data = await _graph.graph_request(
                self._session,
                "POST",
                self._url(f"{self.page_id}/messages"),
                rules=ERRORS,
                provider=PROVIDER,
                params={"access_token": self._token},
                json_body=body,
            )
            message_id = data.get("message_id") or ""
            if not isinstance(message_id, str) or not message_id:
                raise ProviderRejected("no_message_id", "Messenger accepted the call but returned no message id.")
        return SendReceipt(provider_message_id=message_id, accepted_at=datetime.now(UTC))

    @staticmethod
    def _messaging_type(message: OutboundMessage) -> str:
        if message.tag:
            return "MESSAGE_TAG"
        if message.messaging_type:
            if message.messaging_type not in _MESSAGING_TYPES:
                raise ProviderRejected(
                    "invalid_messaging_type", f"{message.messaging_type!r} is not a Messenger messaging type."
                )
            if message.messaging_type == "MESSAGE_TAG":
                raise ProviderRejected("tag_missing", "A tagged Messenger message needs a message tag.")
            return message.messaging_type
        return "RESPONSE"

    def _message_parts(self, message: OutboundMessage) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if message.text or message.buttons:
            text = message.text or _CHOOSE
            if len(text) > TEXT_LIMIT:
                raise ProviderRejected("text_too_long", f"Messenger messages are limited to {TEXT_LIMIT} characters.")
            parts.append(_with_buttons(text, message.buttons))
        for attachment in message.attachments:
            kind = _SEND_TYPES.get(attachment.kind)
            if kind is None:
                raise ProviderRejected("unsupported_content", f"Messenger cannot send a {attachment.kind} attachment.")
            payload: dict[str, Any]
            if attachment.provider_media_id:
                payload = {"attachment_id": attachment.provider_media_id}
            elif attachment.url:
                payload = {"url": attachment.url, "is_reusable": True}
            else:
                raise ProviderRejected("unsupported_content", "The attachment has neither a URL nor a media id.")
            parts.append({"attachment": {"type": kind, "payload": payload}})
        if not parts:
            raise ProviderRejected("empty_message", "The message has no text and no attachment.")
        return parts

    # ------------------------------------------------------------------ media

    async def locate_media(self, media: MediaReference) -> MediaLocation:
        """Messenger gives a CDN URL that anyone may fetch for a while (days): fetched at once, no credentials."""
        if not media.url:
            raise ProviderRejected("no_media_url", "Messenger gave no URL for this attachment.")
        return MediaLocation(url=media.url)

    async def check(self) -> str:
        data = await _graph.graph_request(
            self._session,
            "GET",
            self._url(self.page_id),
            rules=ERRORS,
            provider=PROVIDER,
            params={"fields": "name", "access_token": self._token},
        )
        return f"Messenger page {data.get('name', '?')} ({data.get('id', self.page_id)}): credentials accepted"

    async def profile(self, psid: str) -> ProfileUpdate | None:
        """The customer's name and picture (user profile API); None when Meta will not say."""
        try:
            data = await _graph.graph_request(
                self._session,
                "GET",
                self._url(psid),
                rules=ERRORS,
                provider=PROVIDER,
                params={"fields": "first_name,last_name,profile_pic", "access_token": self._token},
            )
        except (ProviderRejected, ProviderUnavailable) as exc:
            logger.info("Messenger profile unavailable for account %s: %s", self.account.id, exc.reason)
            return None
        name = " ".join(str(data[k]) for k in ("first_name", "last_name") if data.get(k)) or data.get("name")
        avatar = data.get("profile_pic")
        if not name and not avatar:
            return None
        return ProfileUpdate(
            channel=Channel.MESSENGER,
            account_id=self.account.id,
            external_id=psid,
            display_name=str(name) if name else None,
            avatar=str(avatar) if avatar else None,
        )


# ------------------------------------------------------------------ helpers


def _item_time(timestamp: Any, entry_time: Any, received_at: datetime) -> datetime:
    """When a messaging item happened: its ``timestamp``, else the entry's ``time``, else when it reached us.

    Meta's own delivery-receipt sample has no ``timestamp``; ``entry.time`` is documented in
    milliseconds but some senders give seconds (read by magnitude). An implausible value
    (negative, 1e17, thousands of digits) is not believed: see adapters/_time.py.
    """
    for candidate in (timestamp, entry_time):
        at = plausible_time(candidate, unit="auto", received_at=received_at)
        if at is not None:
            return at
    return received_at


def _watermark(value: Any, received_at: datetime) -> datetime:
    """A receipt's watermark ("everything sent before this"): never guessed, so an unusable one is malformed."""
    at = plausible_time(value, unit="auto", received_at=received_at)
    if at is None:
        raise PayloadMalformed("the receipt's 'watermark' is not a plausible time", code="invalid_field")
    return at


def _obj(item: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    if not isinstance(value, dict):
        raise PayloadMalformed(f"'{key}' must be an object", code="missing_field")
    return value


def _id_of(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    ident = value.get("id") if isinstance(value, dict) else None
    if not isinstance(ident, str | int) or not str(ident):
        if isinstance(value, dict) and value.get("user_ref"):
            raise PayloadMalformed(
                f"'{key}' is a plugin's user_ref, not a page-scoped id the page can answer", code="missing_field"
            )
        raise PayloadMalformed(f"a messaging item has no '{key}.id'", code="missing_field")
    return str(ident)


def _referral_facts(referral: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``referral_*`` facts from Meta's referral object; an ad's ``ads_context_data`` (its title, picture,
    post, product) is read into the same level, so the history's ``referral`` has ``ad_title`` and so on."""
    facts: list[tuple[str, str]] = []
    for key, value in referral.items():
        if isinstance(value, str | int) and not isinstance(value, bool):
            facts.append((f"referral_{key}", str(value)))
        elif key == "ads_context_data" and isinstance(value, dict):
            facts.extend(
                (f"referral_{inner}", str(found))
                for inner, found in value.items()
                if isinstance(found, str | int) and not isinstance(found, bool) and inner not in referral
            )
    return facts


def _parse_attachment(
    raw: Mapping[str, Any], message: Mapping[str, Any]
) -> tuple[MessageKind, Attachment | None, Location | None, list[tuple[str, str]]]:
    """(kind, attachment, location, extra facts) for one inbound attachment."""
    kind_name = raw.get("type")
    payload: dict[str, Any] = raw["payload"] if isinstance(raw.get("payload"), dict) else {}
    url = payload.get("url") if isinstance(payload.get("url"), str) else None
    sticker = payload.get("sticker_id") or (message.get("sticker_id") if kind_name in ("image", "sticker") else None)
    if kind_name == "sticker" or (kind_name == "image" and sticker):
        sticker_id = str(sticker) if isinstance(sticker, str | int) and not isinstance(sticker, bool) else None
        return (
            MessageKind.STICKER,
            Attachment(kind=MessageKind.STICKER, url=url, provider_media_id=sticker_id),
            None,
            [("sticker_id", sticker_id)] if sticker_id else [],
        )
    if kind_name == _BOOKING:
        return MessageKind.TEXT, None, None, _booking_facts(payload)
    kind = _ATTACHMENT_KINDS.get(str(kind_name))
    if kind is None:
        # a type Meta added after this was written: keep what we can, as a file
        return MessageKind.FILE, Attachment(kind=MessageKind.FILE, url=url), None, [("attachment_type", str(kind_name))]
    if kind is MessageKind.LOCATION:
        coordinates: dict[str, Any] = payload["coordinates"] if isinstance(payload.get("coordinates"), dict) else {}
        place_url = raw["url"] if isinstance(raw.get("url"), str) and raw["url"] else None
        try:
            location = Location(
                latitude=_coordinate(coordinates["lat"], 90),
                longitude=_coordinate(coordinates["long"], 180),
                name=raw.get("title") if isinstance(raw.get("title"), str) else None,
                url=place_url,
            )
        except (KeyError, TypeError, ValueError):
            raise PayloadMalformed("a location attachment has no usable coordinates", code="missing_field") from None
        facts = [("location_url", place_url)] if place_url else []
        return kind, None, location, facts
    if kind is MessageKind.TEXT:  # fallback: a shared link Messenger cannot render
        facts = [("fallback_url", url or str(raw.get("url", "")))]
        if isinstance(raw.get("title"), str):
            facts.append(("fallback_title", raw["title"]))
        return kind, None, None, [f for f in facts if f[1]]
    if kind is MessageKind.TEMPLATE:
        facts = [("template_type", str(payload.get("template_type", "")))] if payload.get("template_type") else []
        return kind, None, None, facts
    return kind, Attachment(kind=kind, url=url), None, []


def _booking_facts(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An appointment booking's id, status, time zone, start and end (ISO, UTC): those that are given."""
    facts: list[tuple[str, str]] = []
    for key, name in (("booking_id", "booking_id"), ("status", "booking_status"), ("timezone", "booking_timezone")):
        value = payload.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            facts.append((name, str(value)))
    for key, name in (("start_time", "booking_start"), ("end_time", "booking_end")):
        when = _booking_time(payload.get(key))
        if when is not None:
            facts.append((name, when.isoformat()))
    return facts


def _booking_time(value: Any) -> datetime | None:
    return plausible_time(value, unit="auto", received_at=utc_now() + _BOOKING_AHEAD)


def _booking_text(payload: Mapping[str, Any]) -> str:
    """What an agent reads for an appointment booking: its status and when, in the booking's own time zone
    ("Appointment booking requested: Sat 15 Feb 2025, 10:00-11:00 (America/Los_Angeles)")."""
    status = payload.get("status")
    head = f"Appointment booking {status}" if isinstance(status, str) and status.strip() else "Appointment booking"
    start, end = _booking_time(payload.get("start_time")), _booking_time(payload.get("end_time"))
    if start is None:
        return head
    zone_name = payload.get("timezone") if isinstance(payload.get("timezone"), str) else None
    zone = zone_or_none(zone_name) or UTC
    if zone is UTC:
        zone_name = None
    label = zone_name or "UTC"
    local_start = start.astimezone(zone)
    when = local_start.strftime("%a %d %b %Y, %H:%M")
    if end is not None and end > start:
        local_end = end.astimezone(zone)
        same_day = local_end.date() == local_start.date()
        when += "-" + local_end.strftime("%H:%M" if same_day else "%a %d %b %Y, %H:%M")
    return f"{head}: {when} ({label})"


def _attachment_text(raw: Mapping[str, Any]) -> str | None:
    """What an agent should read for an attachment that is not a file (link, template, place, booking)."""
    if raw.get("type") == _BOOKING:
        return _booking_text(raw["payload"] if isinstance(raw.get("payload"), dict) else {})
    if isinstance(raw.get("title"), str) and raw["title"]:
        return str(raw["title"])
    payload = raw.get("payload") if isinstance(raw.get("payload"), dict) else None
    if payload is None:
        return str(raw["url"]) if isinstance(raw.get("url"), str) else None
    elements = payload.get("elements")
    if isinstance(elements, list) and elements and isinstance(elements[0], dict) and elements[0].get("title"):
        return str(elements[0]["title"])
    for key in ("title", "text", "url"):
        if isinstance(payload.get(key), str) and payload[key]:
            return str(payload[key])
    if raw.get("type") == "template":
        return f"[{payload.get('template_type') or 'template'}]"
    return None


_CHOOSE = "Please choose:"
_BUTTON_TEMPLATE_TEXT = 640  # a button template's text (quick replies take the whole 2000)
_BUTTON_TEMPLATE_MOST = 3


def _with_buttons(text: str, buttons: Sequence[Button]) -> dict[str, Any]:
    """Text alone; with up to three buttons, a button template (they stay in the chat); with more, or a
    longer text, quick replies (they go once one is tapped). Both come back as postback payloads."""
    if not buttons:
        return {"text": text}
    if len(buttons) <= _BUTTON_TEMPLATE_MOST and len(text) <= _BUTTON_TEMPLATE_TEXT:
        template = {
            "template_type": "button",
            "text": text,
            "buttons": [{"type": "postback", "title": b.title, "payload": b.payload} for b in buttons],
        }
        return {"attachment": {"type": "template", "payload": template}}
    return {
        "text": text,
        "quick_replies": [{"content_type": "text", "title": b.title, "payload": b.payload} for b in buttons],
    }
