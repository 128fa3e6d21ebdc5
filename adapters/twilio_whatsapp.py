"""WhatsApp through Twilio Programmable Messaging: signature, inbound forms, status callbacks, sends.

Everything that knows Twilio lives here: the ``X-Twilio-Signature`` scheme (checked
with twilio's own ``RequestValidator`` over every received parameter), the form
fields of inbound messages and status callbacks, the Messages resource and its
error codes. Sends use our shared aiohttp session (twilio's async client insists
on its own session and has no per-call timeout of ours), one call per send; the
outbox decides about retries from the error class.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from multidict import MultiDict
from twilio.request_validator import RequestValidator, add_port, remove_port

from adapters._checks import coordinate
from adapters._whatsapp_media import WHATSAPP_MEDIA
from hub.errors import PayloadMalformed, ProviderRejected, ProviderUnavailable, SignatureInvalid, UnknownAccount
from hub.model import (
    Attachment,
    Channel,
    ChannelAccount,
    DeliveryReceipt,
    DeliveryState,
    InboundEvent,
    InboundMessage,
    Location,
    MessageKind,
    OutboundMessage,
    SendReceipt,
)
from hub.ports import MB, MediaLocation, MediaReference, ProviderFacts

__all__ = [
    "ERROR_REASONS",
    "MAX_FORM_BYTES",
    "MAX_FORM_FIELDS",
    "MEDIA_RULES",
    "STATUS_CALLBACK_PATH",
    "TwilioWhatsAppAdapter",
    "adapter_for_delivery",
    "parse_form",
    "sign",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
#: what one of Twilio's forms may cost us before its signature is known: its inbound forms have a few dozen
#: fields (ten media of two fields each included) and a few KiB; these bounds are generous and still cheap
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 300
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
_PREFIX = "whatsapp:"
_API_VERSION = "2010-04-01"
_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)

#: WhatsApp's media rules with Twilio's own on top (Twilio, "Guidance on WhatsApp Media Messages",
#: twilio.com/docs/whatsapp/guidance-whatsapp-media-messages; Twilio errors 11751 and 63034; docs/channels.md
#: "Media limits"): 16 MB for any media (5 MB for images), documents only as PDF, Word (DOC, DOCX), PowerPoint
#: (PPTX) and Excel (XLSX), and contacts as vCard; and "Twilio does not support setting a filename or caption for
#: documents"
MEDIA_RULES = WHATSAPP_MEDIA.tightened(
    sizes={
        MessageKind.IMAGE: 5 * MB,
        MessageKind.VIDEO: 16 * MB,
        MessageKind.AUDIO: 16 * MB,
        MessageKind.FILE: 16 * MB,
    },
    types={
        MessageKind.FILE: frozenset(
            {
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "text/vcard",
                "text/x-vcard",
            }
        ),
    },
    uncaptioned=frozenset({MessageKind.FILE}),
)

#: Twilio error codes -> a sentence an agent understands (channels.md §2.5)
ERROR_REASONS: dict[str, str] = {
    "63016": "The customer's 24-hour WhatsApp window is closed; send an approved template instead.",
    "63015": "The customer has not joined this WhatsApp sandbox (or joined more than 3 days ago).",
    "63018": "WhatsApp's rate limit for this number was reached; the message will be tried again later.",
    "63003": "The customer's number could not be found on WhatsApp.",
    "63024": "The customer is not a valid WhatsApp recipient.",
    "63032": "The customer's number cannot receive this message because of a WhatsApp limitation.",
    "63049": "WhatsApp chose not to deliver this marketing message; try again later, not right away.",
    "21211": "The customer's phone number is not valid.",
    "21610": "The customer has opted out (replied STOP); they must send START before we can write again.",
    "20429": "Twilio is limiting how fast we send; the message will be tried again later.",
    "20003": "Twilio refused our credentials (account SID or auth token); an administrator must fix the account.",
    "20404": "Twilio does not know this account or resource; an administrator must check the account SID.",
}
_TRANSIENT_CODES = frozenset({"63018", "20429"})
_SENT_OR_LATER = {
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "undelivered": DeliveryState.FAILED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}
_BEFORE_SENT = frozenset({"accepted", "scheduled", "queued", "sending"})
#: statuses of a message the customer sent us (its From is the customer), and of a group MMS that reached some of
#: its recipients: none is about a message of ours an agent could follow
_INBOUND_STATUSES = frozenset({"receiving", "received"})
_NOT_OURS = _INBOUND_STATUSES | {"partially_delivered"}
_EXTRA_FIELDS = ("Forwarded", "FrequentlyForwarded", "OriginalRepliedMessageSender")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, found in headers.items():
        if key.lower() == lowered:
            return found
    return None


def _address(value: str) -> str:
    """``whatsapp:+14155238886`` or ``+14155238886`` -> ``+14155238886``."""
    value = value.strip()
    return value[len(_PREFIX) :] if value.startswith(_PREFIX) else value


def parse_form(body: bytes) -> MultiDict[str]:
    """Every parameter as received (names may repeat), or PayloadMalformed.

    The fields are counted on the raw bytes first: a form of more than ``MAX_FORM_FIELDS``
    is refused (``too_many_fields``) before any of it is decoded or parsed.
    """
    if body.count(b"&") >= MAX_FORM_FIELDS:
        raise PayloadMalformed(f"the form has more than {MAX_FORM_FIELDS} fields", code="too_many_fields")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise PayloadMalformed(
            "the body is not a form (application/x-www-form-urlencoded)", code="invalid_form"
        ) from None
    return MultiDict(pairs)


def sign(url: str, params: Iterable[tuple[str, str]] | Mapping[str, str], auth_token: str) -> str:
    """``X-Twilio-Signature`` for a form POST to ``url`` (tests and the emulator sign with this)."""
    items = params.items() if isinstance(params, Mapping) else params
    signature: str = RequestValidator(auth_token).compute_signature(url, MultiDict(list(items)))
    return signature


def adapter_for_delivery(adapters: Sequence[TwilioWhatsAppAdapter], body: bytes) -> TwilioWhatsAppAdapter:
    """The account a delivery is for: our number is ``To`` on inbound messages and on the statuses of
    one (``received``), and ``From`` on the statuses of ours. Read before the signature check (the
    account's auth token is the key), so nothing else from the body is trusted yet."""
    form = parse_form(body)
    status = (form.get("MessageStatus") or "").lower()
    field = "From" if "MessageStatus" in form and status not in _INBOUND_STATUSES else "To"
    number = form.get(field)
    if not number:
        raise PayloadMalformed(f"the form has no {field}", code="missing_field")
    ours = _address(number)
    for adapter in adapters:
        if adapter.from_number == ours:
            return adapter
    raise UnknownAccount(f"no WhatsApp (Twilio) account is configured for {ours}")


class TwilioWhatsAppAdapter:
    """One WhatsApp sender on Twilio.

    ``status_callback_url`` is where Twilio should post this sender's status
    callbacks; the webhook routes set it from ``server.public_url`` when the app
    starts (it is not a credential, so it is not in the account). Left None,
    Twilio uses the sender's callback configured in its console.
    """

    capabilities = frozenset(
        {
            MessageKind.TEXT,
            MessageKind.IMAGE,
            MessageKind.VIDEO,
            MessageKind.AUDIO,
            MessageKind.FILE,
            MessageKind.TEMPLATE,
        }
    )
    text_limit = 1600
    facts = ProviderFacts(
        channel=Channel.WHATSAPP,
        provider="twilio",
        credentials=("account_sid", "auth_token", "from_number"),
        public=frozenset({"account_sid", "from_number"}),
        address="from_number",
        api_base="https://api.twilio.com",
        media=MEDIA_RULES,
    )

    def __init__(
        self,
        account: ChannelAccount,
        session: aiohttp.ClientSession,
        *,
        status_callback_url: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.account = account
        self._session = session
        self._clock = clock
        self.account_sid = account.credentials["account_sid"]
        self._auth_token = account.credentials["auth_token"]
        self.from_number = _address(account.credentials["from_number"])
        self.status_callback_url = status_callback_url
        self._validator = RequestValidator(self._auth_token)

    def __repr__(self) -> str:
        return f"TwilioWhatsAppAdapter({self.account.id!r}, {self.from_number!r})"

    # ------------------------------------------------------------------ inbound

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        """``url`` is the public URL Twilio requested (``server.public_url`` + path + query).

        Every received parameter is signed, as the library does (Twilio adds
        parameters without notice); the URL is tried with and without its default
        port, like ``RequestValidator.validate``, but compared in constant time.
        """
        signature = _header(headers, SIGNATURE_HEADER)
        if not signature:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} is missing")
        form = parse_form(body)
        parsed = urlsplit(url)
        candidates = {remove_port(parsed), add_port(parsed)}
        given = signature.encode()
        matched = False
        for candidate in candidates:
            expected = self._validator.compute_signature(candidate, form).encode()
            matched |= hmac.compare_digest(expected, given)
        if not matched:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Sequence[InboundEvent]:
        # after the signature check (computed over the values as sent): a NUL cannot be stored as text
        form = MultiDict((name, value.replace("\x00", "\ufffd")) for name, value in parse_form(body).items())
        if "MessageStatus" in form:
            return self._parse_status(form)
        return [self._parse_message(form)]

    def _parse_message(self, form: MultiDict[str]) -> InboundMessage:
        sid = form.get("MessageSid") or form.get("SmsMessageSid")
        sender = form.get("From")
        to = form.get("To")
        if not sid or not sender or not to:
            raise PayloadMalformed("an inbound message needs MessageSid, From and To", code="missing_field")
        if _address(to) != self.from_number:
            raise UnknownAccount(f"this delivery is for {_address(to)}, not {self.from_number}")
        body = form.get("Body") or None
        attachments = self._attachments(form)
        location = self._location(form)
        kind = MessageKind.TEXT
        payload = None
        if form.get("ButtonPayload") or form.get("ButtonText"):
            kind = MessageKind.POSTBACK
            payload = form.get("ButtonPayload") or form.get("ButtonText")
            body = form.get("ButtonText") or body
        elif location is not None:
            kind = MessageKind.LOCATION
        elif attachments:
            kind = attachments[0].kind
            if form.get("MessageType") == "sticker":
                kind = MessageKind.STICKER
        elif body is None:
            raise PayloadMalformed("the message has no Body, media, location or button", code="empty_message")
        wa_id = form.get("WaId")
        phone = f"+{wa_id}" if wa_id and wa_id.isdigit() else None
        extra = [(name, form[name]) for name in _EXTRA_FIELDS if form.get(name)]
        extra += sorted((name, value) for name, value in form.items() if name.startswith("Referral") and value)
        return InboundMessage(
            channel=Channel.WHATSAPP,
            account_id=self.account.id,
            sender_id=_address(sender),
            provider_message_id=sid,
            sent_at=self._clock(),  # Twilio sends no timestamp: the time it reached us
            kind=kind,
            text=body,
            attachments=attachments,
            location=location,
            payload=payload,
            reply_to=form.get("OriginalRepliedMessageSid") or None,
            sender_name=form.get("ProfileName") or None,
            sender_phone=phone,
            extra=tuple(extra),
        )

    @staticmethod
    def _attachments(form: MultiDict[str]) -> tuple[Attachment, ...]:
        try:
            count = int(form.get("NumMedia") or 0)
        except ValueError:
            raise PayloadMalformed("NumMedia is not a number", code="invalid_field") from None
        found = []
        for index in range(count):
            url = form.get(f"MediaUrl{index}")
            if not url:
                raise PayloadMalformed(f"NumMedia is {count} but MediaUrl{index} is missing", code="missing_field")
            mime = form.get(f"MediaContentType{index}") or None
            found.append(
                Attachment(
                    kind=_kind_of(mime), url=url, mime_type=mime, provider_media_id=url.rstrip("/").rsplit("/")[-1]
                )
            )
        return tuple(found)

    @staticmethod
    def _location(form: MultiDict[str]) -> Location | None:
        latitude, longitude = form.get("Latitude"), form.get("Longitude")
        if not latitude or not longitude:
            return None
        try:
            return Location(
                latitude=coordinate(latitude, 90),
                longitude=coordinate(longitude, 180),
                name=form.get("Label") or None,
                address=form.get("Address") or None,
            )
        except ValueError:
            # NaN, infinities or a point off the globe: no map can show it (and PostgreSQL refuses NaN in JSON)
            raise PayloadMalformed("Latitude/Longitude are not a point on the globe", code="invalid_field") from None

    def _parse_status(self, form: MultiDict[str]) -> list[InboundEvent]:
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = (form.get("MessageStatus") or "").lower()
        if not sid or not status:
            raise PayloadMalformed("a status callback needs MessageSid and MessageStatus", code="missing_field")
        if status in _NOT_OURS:
            return []
        sender = form.get("From")
        if sender and _address(sender) != self.from_number:
            raise UnknownAccount(f"this status callback is for {_address(sender)}, not {self.from_number}")
        if status in _BEFORE_SENT:
            return []  # nothing an agent needs: the message is still on Twilio's side
        state = _SENT_OR_LATER.get(status)
        if state is None:
            raise PayloadMalformed(f"unknown MessageStatus {status!r}", code="invalid_field")
        code = form.get("ErrorCode") or None
        reason = None
        if state is DeliveryState.FAILED:
            code = code or status
            reason = _reason(code) if status != "canceled" else "The message was canceled before it was sent."
        recipient = form.get("To")
        return [
            DeliveryReceipt(
                channel=Channel.WHATSAPP,
                account_id=self.account.id,
                recipient_id=_address(recipient) if recipient else None,
                state=state,
                occurred_at=self._clock(),
                provider_message_ids=(sid,),
                error_code=code if state is DeliveryState.FAILED else None,
                error_reason=reason,
            )
        ]

    # ------------------------------------------------------------------ outbound

    @property
    def _authorization(self) -> str:
        credentials = base64.b64encode(f"{self.account_sid}:{self._auth_token}".encode()).decode("ascii")
        return f"Basic {credentials}"

    def _form(self, message: OutboundMessage) -> list[tuple[str, str]]:
        recipient = message.recipient_id
        form = [("To", recipient if recipient.startswith(_PREFIX) else _PREFIX + recipient)]
        form.append(("From", _PREFIX + self.from_number))
        template = message.template
        if template is not None and template.content_sid:
            form.append(("ContentSid", template.content_sid))
            if template.content_variables:
                form.append(("ContentVariables", json.dumps(dict(template.content_variables), ensure_ascii=False)))
        else:
            media = [a.url for a in message.attachments if a.url]
            if not message.text and not media:
                raise ProviderRejected("empty_message", "The message has no text and no attachment to send.")
            if message.text:
                form.append(("Body", message.text))
            form.extend(("MediaUrl", url) for url in media)
        if self.status_callback_url:
            form.append(("StatusCallback", self.status_callback_url))
        return form

    async def send(self, message: OutboundMessage) -> SendReceipt:
        url = f"{self.account.api_base}/{_API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        form = self._form(message)
        data = await self._call("POST", url, form)
        sid = data.get("sid")
        if not isinstance(sid, str) or not sid:
            raise ProviderUnavailable("Twilio accepted the message but returned no sid")
        return SendReceipt(provider_message_id=sid, accepted_at=self._clock())

    # ------------------------------------------------------------------ media

    async def locate_media(self, media: MediaReference) -> MediaLocation:
        """``MediaUrl{N}``, fetched with the account's basic auth when the account asks for it (HTTP basic
        auth on media). The credentials go only to Twilio's own API host (or the configured ``api_base``)."""
        if not media.url:
            raise ProviderRejected("no_media_url", "Twilio gave no MediaUrl for this attachment.")
        host = urlsplit(media.url).hostname or ""
        ours = host == (urlsplit(self.account.api_base).hostname or "") or host.endswith(".twilio.com")
        return MediaLocation(url=media.url, headers={"Authorization": self._authorization} if ours else {})

    async def check(self) -> str:
        url = f"{self.account.api_base}/{_API_VERSION}/Accounts/{self.account_sid}.json"
        data = await self._call("GET", url, None)
        name = data.get("friendly_name") or self.account_sid
        return f"Twilio account {name} ({data.get('status', 'unknown')}), sender {_PREFIX}{self.from_number}"

    async def _call(self, method: str, url: str, form: list[tuple[str, str]] | None) -> dict[str, Any]:
        try:
            headers = {"Authorization": self._authorization, "Accept": "application/json"}
            async with self._session.request(method, url, data=form, headers=headers, timeout=_TIMEOUT) as response:
                raw = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise ProviderUnavailable("Twilio did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(f"could not reach Twilio ({exc.__class__.__name__})") from None
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if 200 <= status < 300:
            return data
        code = str(data["code"]) if data.get("code") is not None else None
        detail = str(data.get("message") or "") or None
        if status == 429 or code == "20429":
            raise ProviderUnavailable(_reason("20429"), provider_code=code or "20429", retry_after=retry_after)
        if status >= 500:
            raise ProviderUnavailable(
                f"Twilio had an error (HTTP {status})", provider_code=code, retry_after=retry_after
            )
        if code in _TRANSIENT_CODES:
            raise ProviderUnavailable(_reason(code), provider_code=code, retry_after=retry_after)
        if code is None:
            code = "20003" if status == 401 else f"http_{status}"
        logger.warning("twilio refused a call", extra={"account": self.account.id, "code": code, "status": status})
        raise ProviderRejected(code, _reason(code), detail=detail)


def _reason(code: str) -> str:
    return ERROR_REASONS.get(code, f"Twilio refused the message (error {code}).")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _kind_of(mime: str | None) -> MessageKind:
    if not mime:
        return MessageKind.FILE
    major = mime.split("/", 1)[0].lower()
    if mime.lower() in ("text/vcard", "text/x-vcard"):
        return MessageKind.CONTACT
    return {"image": MessageKind.IMAGE, "video": MessageKind.VIDEO, "audio": MessageKind.AUDIO}.get(
        major, MessageKind.FILE
    )
