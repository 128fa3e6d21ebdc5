"""Viber REST Bot API: callback signature, callbacks, send_message and the account calls.

Everything that knows Viber lives here: ``X-Viber-Content-Signature`` (HMAC-SHA256
of the raw body with the bot token, compared in constant time -- viberbot's own
check uses ``==``), the callback events (parsed with viberbot's request models,
which are sound for reading), ``send_message`` (built with viberbot's message
models, sent with our aiohttp session -- its sender blocks on ``requests``) and
the status codes. ``message_token`` is a 64-bit integer: it is kept exact, as a
decimal string.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from viberbot.api.messages import FileMessage, PictureMessage, TextMessage, URLMessage, VideoMessage
from viberbot.api.viber_requests import EVENT_TYPE_TO_CLASS, create_request

from adapters._checks import coordinate
from adapters._graph import strict_json
from adapters._time import plausible_time
from hub.errors import PayloadMalformed, ProviderRejected, ProviderUnavailable, SignatureInvalid
from hub.model import (
    Attachment,
    Button,
    Channel,
    ChannelAccount,
    DeliveryReceipt,
    DeliveryState,
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    Location,
    MessageKind,
    OutboundMessage,
    ProfileUpdate,
    SendReceipt,
    Subscription,
    SubscriptionChanged,
)
from hub.ports import MB, ButtonLimits, MediaLocation, MediaReference, MediaRules, ProviderFacts

__all__ = ["EVENT_TYPES", "MEDIA_RULES", "STATUS_REASONS", "ViberAdapter", "sign"]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Viber-Content-Signature"
AUTH_HEADER = "X-Viber-Auth-Token"
SENDER_NAME_LIMIT = 28
#: the optional callbacks we ask for on set_webhook (message/subscribed/unsubscribed always come)
EVENT_TYPES = ("delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started")
_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)

#: Viber status codes -> a sentence an agent understands (channels.md §4.6); all permanent except 12
STATUS_REASONS: dict[int, str] = {
    1: "Viber says the webhook URL is not valid.",
    2: "Viber refused the bot's auth token; an administrator must fix the account.",
    3: "Viber could not read the message we sent (bad data).",
    4: "Viber says the message is missing required data.",
    5: "The customer is not registered on Viber.",
    6: "The customer is not subscribed to this Viber bot (they unsubscribed or never wrote); they must write first.",
    7: "This Viber bot is blocked.",
    8: "Viber does not know this bot (the token is not a bot's).",
    9: "This Viber bot is suspended.",
    10: "No webhook is set for this Viber bot; run `channelhub channels connect viber`.",
    11: "The customer's device or Viber version cannot receive bot messages.",
    12: "Viber is limiting how fast we send; the message will be tried again later.",
    13: "The customer's Viber app is too old for this kind of message; send plain text.",
    14: "This message is not compatible with the Viber API version we asked for.",
    15: "This Viber bot is not authorised to send.",
    16: "Viber does not allow inline replies here.",
    17: "This Viber bot is not an inline bot.",
    18: "This Viber bot has no public chat.",
    19: "Viber cannot send this broadcast message.",
    20: "Broadcast is not allowed for this Viber bot.",
    21: "Viber does not deliver this message to the customer's country.",
    22: "This Viber bot does not support payment messages.",
    23: "This Viber bot used up its free messages outside a session this month.",
    24: "This Viber bot has no balance left for messages outside a session.",
}

#: what Viber takes (Viber REST bot API, message types, as also documented by Infobip; docs/channels.md "Media
#: limits"): pictures 1 MB (JPEG, PNG or non-animated GIF), video 26 MB (MP4), files 50 MB of any type; audio is
#: not a message type (send it as a file); one media per message
MEDIA_RULES = MediaRules(
    sizes={
        MessageKind.IMAGE: 1 * MB,
        MessageKind.VIDEO: 26 * MB,
        MessageKind.FILE: 50 * MB,
    },
    types={
        MessageKind.IMAGE: frozenset({"image/jpeg", "image/png", "image/gif"}),
        MessageKind.VIDEO: frozenset({"video/mp4"}),
        MessageKind.FILE: None,
    },
    per_message=1,
)

_TRANSIENT_STATUSES = frozenset({12})
_RECEIPTS = {"delivered": DeliveryState.DELIVERED, "seen": DeliveryState.READ, "failed": DeliveryState.FAILED}
_UNKNOWN_MEMORY = 1024  # sends that already got an unknown status once (the second time is permanent)
#: a picture's caption and a file's name, at most (docs/channels.md, "Media limits")
_CAPTION_CHARACTERS = 512
_FILE_NAME_CHARACTERS = 256


def _utc_now() -> datetime:
    return datetime.now(UTC)


def sign(body: bytes, auth_token: str) -> str:
    """``X-Viber-Content-Signature`` of a callback body (tests and the emulator sign with this)."""
    return hmac.new(auth_token.encode(), body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, found in headers.items():
        if key.lower() == lowered:
            return found
    return None


def _joined(text: str | None, addition: str | None) -> str | None:
    """The customer's own text, then what a contact or link message adds (once)."""
    if not text:
        return addition
    if not addition or addition in text:
        return text
    return f"{text}\n{addition}"


def _text(value: Any) -> str | None:
    """A name, file name or URL as Viber sends it, a string; anything else (a number, a list) is none."""
    return value if isinstance(value, str) and value else None


def _user_id(value: Any, where: str) -> str:
    """A Viber user id as Viber sends it: a non-empty string (a number or a list would name nobody we can answer)."""
    if not value:
        raise PayloadMalformed(f"{where} has no user id", code="missing_field")
    if not isinstance(value, str):
        raise PayloadMalformed(f"{where}'s user id is not a string", code="invalid_field")
    return value


def _token(value: Any) -> str:
    """message_token as an exact decimal string (a float would have lost digits)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise PayloadMalformed("message_token is not an integer", code="invalid_field")
    return str(value)


class ViberAdapter:
    """One Viber bot."""

    capabilities = frozenset({MessageKind.TEXT, MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.FILE})
    text_limit = 7000
    facts = ProviderFacts(
        channel=Channel.VIBER,
        provider="viber",
        credentials=("auth_token", "name"),  # name: the sender name shown to customers
        public=frozenset({"name"}),
        address="name",
        api_base="https://chatapi.viber.com/pa",
        subscribes_on_message=True,  # a user who writes to a bot is subscribed to it (channels.md 4.7)
        # a keyboard: one full-width reply button per row, up to 12 rows; a pressed button sends its
        # ActionBody back as the user's text (docs/channels.md)
        buttons=ButtonLimits(most=12, title_length=250, payload_length=250),
        media=MEDIA_RULES,
    )

    def __init__(
        self, account: ChannelAccount, session: aiohttp.ClientSession, *, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.account = account
        self._session = session
        self._clock = clock
        self._token = account.credentials["auth_token"]
        self.sender_name = account.credentials["name"][:SENDER_NAME_LIMIT]
        self.sender_avatar = account.credentials.get("avatar") or None
        self._unknown_once: OrderedDict[str, None] = OrderedDict()

    def __repr__(self) -> str:
        return f"ViberAdapter({self.account.id!r})"

    # ------------------------------------------------------------------ inbound

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        signature = _header(headers, SIGNATURE_HEADER)
        if not signature:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} is missing")
        if not hmac.compare_digest(sign(body, self._token).encode(), signature.strip().lower().encode()):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Sequence[InboundEvent]:
        data = strict_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            raise PayloadMalformed("a Viber callback is a JSON object with an 'event'", code="missing_field")
        event = data["event"]
        if event == "webhook":
            # set_webhook's check carries no message; whatever its timestamp, it must get its 200
            return [IgnoredEvent(channel=Channel.VIBER, account_id=self.account.id, kind="webhook")]
        if event not in EVENT_TYPE_TO_CLASS:
            return [IgnoredEvent(channel=Channel.VIBER, account_id=self.account.id, kind=event)]
        if event == "message" and not isinstance(data.get("message"), dict):
            raise PayloadMalformed("a message callback needs 'message'", code="missing_field")
        message_type = data["message"].get("type") if event == "message" else None
        if event == "message" and (not isinstance(message_type, str) or message_type not in _MESSAGE_TYPES):
            kind = f"message:{message_type if isinstance(message_type, str) else '?'}"
            return [IgnoredEvent(channel=Channel.VIBER, account_id=self.account.id, kind=kind)]
        try:
            request = create_request(data)
        except Exception as exc:  # viberbot raises KeyError/TypeError/Exception for what is missing
            raise PayloadMalformed(f"not a valid Viber {event} callback ({exc!s})", code="missing_field") from None
        received_at = self._clock()
        # the time Viber stamped, unless it is implausible; then the time the callback reached us
        at = plausible_time(data.get("timestamp"), unit="ms", received_at=received_at) or received_at
        if event == "message":
            return [self._message(request, data, at)]
        if event in _RECEIPTS:
            return [self._receipt(event, data, at)]
        return [self._subscription(event, request, data, at)]

    def _message(self, request: Any, data: dict[str, Any], at: datetime) -> InboundMessage:
        raw = data["message"]
        message = request.message
        sender = request.sender
        sender_id = _user_id(sender.id, "the message's sender")
        kind, location = MessageKind.TEXT, None
        text = raw["text"] if isinstance(raw.get("text"), str) and raw["text"] else None
        attachments: tuple[Attachment, ...] = ()
        extra: list[tuple[str, str]] = []
        match raw["type"]:
            case "text":
                if not text:
                    raise PayloadMalformed("a text message has no text", code="missing_field")
            case "picture" | "video" | "file":
                kind = {"picture": MessageKind.IMAGE, "video": MessageKind.VIDEO, "file": MessageKind.FILE}[raw["type"]]
                media = _text(message.media)
                if media is None:
                    raise PayloadMalformed(f"a {raw['type']} message has no media URL", code="missing_field")
                size = raw.get("file_size", raw.get("size"))
                attachments = (
                    Attachment(
                        kind=kind,
                        url=media,
                        file_name=_text(raw.get("file_name")),
                        size=size
                        if isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 2**63
                        else None,
                    ),
                )
            case "sticker":
                kind = MessageKind.STICKER
                sticker_id = raw.get("sticker_id")
                attachments = (
                    Attachment(
                        kind=MessageKind.STICKER,
                        url=_text(raw.get("media")),
                        provider_media_id=str(sticker_id) if sticker_id is not None else None,
                    ),
                )
            case "contact":
                kind = MessageKind.CONTACT
                contact = message.contact
                if contact is None:
                    raise PayloadMalformed("a contact message has no contact", code="missing_field")
                card = " ".join(str(p) for p in (contact.name, contact.phone_number) if p) or None
                text = _joined(text, card)  # the words the customer wrote with the card are kept
                extra += [("contact_name", str(contact.name or "")), ("contact_phone", str(contact.phone_number or ""))]
            case "location":
                kind = MessageKind.LOCATION
                point = message.location
                try:
                    latitude, longitude = coordinate(point.latitude, 90), coordinate(point.longitude, 180)
                    location = Location(latitude=latitude, longitude=longitude)
                except (AttributeError, TypeError, ValueError):
                    raise PayloadMalformed("a location message needs location.lat/lon", code="missing_field") from None
            case "url":
                if not message.media:
                    raise PayloadMalformed("a url message has no media", code="missing_field")
                text = _joined(text, str(message.media))
        if raw.get("tracking_data"):
            extra.append(("tracking_data", str(raw["tracking_data"])))
        return InboundMessage(
            channel=Channel.VIBER,
            account_id=self.account.id,
            sender_id=sender_id,
            provider_message_id=_token(data.get("message_token")),
            sent_at=at,
            kind=kind,
            text=text,
            attachments=attachments,
            location=location,
            sender_name=_text(sender.name),
            sender_avatar=_text(sender.avatar),
            extra=tuple((k, v) for k, v in extra if v),
        )

    def _receipt(self, event: str, data: dict[str, Any], at: datetime) -> DeliveryReceipt:
        user_id = data.get("user_id")
        state = _RECEIPTS[event]
        return DeliveryReceipt(
            channel=Channel.VIBER,
            account_id=self.account.id,
            recipient_id=_user_id(user_id, f"a {event} callback") if user_id else None,
            state=state,
            occurred_at=at,
            provider_message_ids=(_token(data.get("message_token")),),
            error_code="failed" if state is DeliveryState.FAILED else None,
            error_reason=(f"Viber could not show the message: {data.get('desc') or 'no reason given'}")
            if state is DeliveryState.FAILED
            else None,
        )

    def _subscription(self, event: str, request: Any, data: dict[str, Any], at: datetime) -> SubscriptionChanged:
        token = data.get("message_token")
        event_id = _token(token) if token is not None else None
        if event == "unsubscribed":
            user_id, name, avatar = request.user_id, None, None
            state = Subscription.UNSUBSCRIBED
        else:
            user = request.user
            user_id, name, avatar = user.id, user.name, user.avatar
            state = Subscription.SUBSCRIBED
            if event == "conversation_started" and not data.get("subscribed"):
                state = Subscription.OPENED
        return SubscriptionChanged(
            channel=Channel.VIBER,
            account_id=self.account.id,
            user_id=_user_id(user_id, f"a {event} callback"),
            state=state,
            occurred_at=at,
            display_name=_text(name),
            avatar=_text(avatar),
            provider_event_id=event_id,
        )

    # ------------------------------------------------------------------ outbound

    def _payloads(self, message: OutboundMessage) -> list[dict[str, Any]]:
        """The send_message bodies for one outbound message (a caption only fits a picture)."""
        bodies: list[dict[str, Any]] = []
        text = message.text
        for attachment in message.attachments:
            if not attachment.url:
                continue
            if attachment.kind is MessageKind.IMAGE:
                caption = text if text and len(text) <= _CAPTION_CHARACTERS else ""
                bodies.append(PictureMessage(media=attachment.url, text=caption).to_dict())
                text = None if caption else text  # a longer text goes first, as a message of its own
            elif attachment.kind is MessageKind.VIDEO and attachment.size:
                bodies.append(VideoMessage(media=attachment.url, size=attachment.size).to_dict())
            elif attachment.kind in (MessageKind.FILE, MessageKind.VIDEO, MessageKind.AUDIO):
                name = _file_name(attachment.file_name or attachment.url.rstrip("/").rsplit("/", 1)[-1] or "file")
                bodies.append(FileMessage(media=attachment.url, size=attachment.size or 0, file_name=name).to_dict())
            else:
                bodies.append(URLMessage(media=attachment.url).to_dict())
        if text or message.buttons:
            bodies.insert(0, TextMessage(text=text or _CHOOSE).to_dict())
        if not bodies:
            raise ProviderRejected("empty_message", "The message has no text and no attachment to send.")
        sender: dict[str, str] = {"name": self.sender_name}
        if self.sender_avatar:
            sender["avatar"] = self.sender_avatar
        for body in bodies:
            body.update({"receiver": message.recipient_id, "min_api_version": 1, "sender": sender})
            if message.idempotency_key:
                body["tracking_data"] = message.idempotency_key
        if message.buttons:  # the keyboard goes with the last part, so it stays shown
            bodies[-1]["keyboard"] = _keyboard(message.buttons)
        return bodies

    async def send(self, message: OutboundMessage) -> SendReceipt:
        """One send_message per part (text, then each attachment); the receipt names the last."""
        token = ""
        for body in self._payloads(message):
            data = await self._call("send_message", body, key=message.idempotency_key or message.recipient_id)
            token = _token(data.get("message_token"))
        return SendReceipt(provider_message_id=token, accepted_at=self._clock())

    # ------------------------------------------------------------------ media

    async def locate_media(self, media: MediaReference) -> MediaLocation:
        """Viber gives a CDN URL that anyone may fetch for a while (days): fetched at once, no credentials."""
        if not media.url:
            raise ProviderRejected("no_media_url", "Viber gave no URL for this attachment.")
        return MediaLocation(url=media.url)

    async def check(self) -> str:
        data = await self._call("get_account_info", {})
        webhook = data.get("webhook") or "no webhook"
        count = data.get("subscribers_count")
        subscribers = f", {count} subscribers" if count is not None else ""
        return (
            f"Viber bot {data.get('name') or '?'} ({data.get('uri') or data.get('id') or '?'}), {webhook}{subscribers}"
        )

    async def set_webhook(self, url: str) -> dict[str, Any]:
        """Register ``url`` as this bot's callback URL (Viber calls it once, at once)."""
        body = {"url": url, "event_types": list(EVENT_TYPES), "send_name": True, "send_photo": True}
        return await self._call("set_webhook", body)

    async def user_details(self, user_id: str) -> ProfileUpdate:
        """Name and avatar of a user (Viber rate-limits this per user: call rarely, cache)."""
        data = await self._call("get_user_details", {"id": user_id})
        user = data.get("user") if isinstance(data.get("user"), dict) else {}
        assert isinstance(user, dict)
        return ProfileUpdate(
            channel=Channel.VIBER,
            account_id=self.account.id,
            external_id=user_id,
            display_name=user.get("name") or None,
            avatar=user.get("avatar") or None,
        )

    async def _call(self, endpoint: str, body: dict[str, Any], *, key: str | None = None) -> dict[str, Any]:
        url = f"{self.account.api_base}/{endpoint}"
        headers = {AUTH_HEADER: self._token}
        try:
            async with self._session.post(url, json=body, headers=headers, timeout=_TIMEOUT) as response:
                raw = await response.read()
                http_status = response.status
        except TimeoutError:
            raise ProviderUnavailable("Viber did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(f"could not reach Viber ({exc.__class__.__name__})") from None
        if http_status == 429 or http_status >= 500:
            raise ProviderUnavailable(f"Viber had an error (HTTP {http_status})", provider_code=f"http_{http_status}")
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if http_status != 200:
                raise ProviderRejected(f"http_{http_status}", f"Viber refused the call (HTTP {http_status}).")
            raise ProviderUnavailable("Viber answered something that is not JSON")
        status = data.get("status")
        if status == 0:
            return data
        detail = str(data.get("status_message") or "")
        if not isinstance(status, int) or status not in STATUS_REASONS:
            return self._unknown_status(status, detail, key)
        code = str(status)
        if status in _TRANSIENT_STATUSES:
            raise ProviderUnavailable(STATUS_REASONS[status], provider_code=code)
        logger.warning("viber refused a call", extra={"account": self.account.id, "endpoint": endpoint, "code": code})
        raise ProviderRejected(code, STATUS_REASONS[status], detail=detail or None)

    def _unknown_status(self, status: Any, detail: str, key: str | None) -> dict[str, Any]:
        """A status Viber has not documented: worth one more try, not more."""
        code = str(status)
        reason = f"Viber refused the message with an unknown status {code}" + (f" ({detail})." if detail else ".")
        memory = f"{key}:{code}" if key else None
        if memory is not None and memory in self._unknown_once:
            del self._unknown_once[memory]
            raise ProviderRejected(code, reason, detail=detail or None)
        if memory is not None:
            self._unknown_once[memory] = None
            while len(self._unknown_once) > _UNKNOWN_MEMORY:
                self._unknown_once.popitem(last=False)
        raise ProviderUnavailable(reason, provider_code=code)


_MESSAGE_TYPES = frozenset({"text", "picture", "video", "file", "sticker", "contact", "location", "url"})


_CHOOSE = "Please choose:"


def _file_name(name: str) -> str:
    """``name`` within Viber's 256 characters, its extension kept (a device opens a file by it)."""
    if len(name) <= _FILE_NAME_CHARACTERS:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) >= _FILE_NAME_CHARACTERS // 2:
        return name[:_FILE_NAME_CHARACTERS]
    return stem[: _FILE_NAME_CHARACTERS - len(extension) - 1] + "." + extension


def _keyboard(buttons: Sequence[Button]) -> dict[str, Any]:
    """Reply buttons, one full-width row each; a press sends ``ActionBody`` (the payload) as the user's text."""
    return {
        "Type": "keyboard",
        "DefaultHeight": False,
        "Buttons": [
            {"ActionType": "reply", "ActionBody": b.payload, "Text": b.title, "Columns": 6, "Rows": 1} for b in buttons
        ],
    }
