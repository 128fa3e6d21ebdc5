"""WhatsApp through Meta's Cloud API (Graph API).

Owns the Cloud API webhook (``object: whatsapp_business_account``,
``entry[].changes[].value`` with ``messages`` and ``statuses``), the messages
endpoint (text, media by link or id, approved templates) and its error codes.
Identities are keyed on ``wa_id`` (``from``); a user who hides their number
behind a username arrives with a business-scoped ``user_id`` only, and is keyed
on that (docs/decisions/0007).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from adapters import _graph
from adapters._checks import coordinate
from adapters._graph import COMMON_ERRORS, ErrorRule
from adapters._time import plausible_time, utc_now
from adapters._whatsapp_media import WHATSAPP_MEDIA
from adapters._whatsapp_texts import contacts_text, flow_reply_text, order_text, text_or_none, unsupported_text
from hub.errors import PayloadMalformed, ProviderRejected, UnknownAccount
from hub.model import (
    TEXT_LIMITS,
    Attachment,
    Button,
    Channel,
    ChannelAccount,
    CustomerActivity,
    DeliveryReceipt,
    DeliveryState,
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    Location,
    MessageKind,
    NumberChanged,
    OutboundMessage,
    SendReceipt,
)
from hub.ports import ButtonLimits, FileOpener, MediaLocation, MediaReference, ProviderFacts, StoredFile

__all__ = ["ERRORS", "WhatsAppCloudAdapter", "parse_delivery", "phone_number_ids"]

logger = logging.getLogger(__name__)

PROVIDER = "WhatsApp"
TEXT_LIMIT = TEXT_LIMITS[Channel.WHATSAPP]

_WINDOW_CLOSED = (
    "The 24-hour customer service window has closed: the customer last wrote more than 24 hours ago. "
    "Send an approved template instead."
)
_RATE = "WhatsApp is limiting how fast we send; the message will go out when the limit clears."

#: WhatsApp Cloud API error codes (channels.md 3.5) on top of the shared Graph codes
ERRORS: dict[int | tuple[int, int], ErrorRule] = {
    **COMMON_ERRORS,
    131047: ErrorRule(False, _WINDOW_CLOSED),
    131026: ErrorRule(
        False,
        "WhatsApp could not deliver the message: the number may not be on WhatsApp, or the customer's app "
        "is too old or has not accepted the latest terms.",
    ),
    131056: ErrorRule(
        True, "Too many messages were sent to this customer in a short time; the message will be retried later.", True
    ),
    130429: ErrorRule(True, _RATE, True),
    80007: ErrorRule(True, _RATE, True),
    131048: ErrorRule(
        False, "WhatsApp restricted this number for spam (quality too low); send fewer messages and try later."
    ),
    131049: ErrorRule(
        False, "Meta chose not to deliver this marketing message to the customer; do not resend it right away."
    ),
    131051: ErrorRule(False, "WhatsApp does not support this message type."),
    132000: ErrorRule(False, "The template's parameters do not match its placeholders (wrong number of values)."),
    132001: ErrorRule(False, "The template does not exist or is not approved in this language."),
    132015: ErrorRule(False, "The template is paused because of low quality; choose another template."),
    132016: ErrorRule(False, "The template is disabled because of low quality; choose another template."),
    131008: ErrorRule(False, "WhatsApp refused the message: a required parameter is missing."),
    131009: ErrorRule(False, "WhatsApp refused the message: a parameter value is not valid."),
    131052: ErrorRule(False, "WhatsApp could not download the media; check the file link and send it again."),
    131053: ErrorRule(False, "WhatsApp could not upload the media (wrong type or too large)."),
    131000: ErrorRule(True, "WhatsApp reported an unknown error; the message will be retried a few times."),
    131031: ErrorRule(False, "The WhatsApp business account is locked; an administrator must contact Meta."),
}

_MEDIA_KINDS = {
    "image": MessageKind.IMAGE,
    "video": MessageKind.VIDEO,
    "audio": MessageKind.AUDIO,
    "document": MessageKind.FILE,
    "sticker": MessageKind.STICKER,
}
_SEND_MEDIA = {v: k for k, v in _MEDIA_KINDS.items()}
_CAPTIONED = {"image", "video", "document"}
_STATUSES = {
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "played": DeliveryState.READ,
    "failed": DeliveryState.FAILED,
}
#: an uploaded media id lives 30 days at Meta; reused for a day less, then the file is uploaded again
_MEDIA_ID_REUSE = timedelta(days=29)
_REPLY_BUTTONS_MOST = 3  # an interactive message's reply buttons; more go as a list
_MEDIA_IDS_KEPT = 512  # the most recent uploads remembered (content key -> media id), per number
#: an upload carries up to 100 MB (a document): the send's 10 seconds are far too short for it
_UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=600, connect=5, sock_read=60)
#: a customer's reaction is not counted as contact: Meta does not say it opens the customer service window
#: (docs/channels.md, *What counts as the customer writing*)
_IGNORED_TYPES = {"reaction", "ephemeral", "unknown"}
#: a ``system`` message saying the customer's number changed (``customer_changed_number`` before Graph v12)
_NUMBER_CHANGES = {"user_changed_number", "customer_changed_number"}


def phone_number_ids(data: Mapping[str, Any]) -> list[str]:
    """The business numbers a delivery is for (``metadata.phone_number_id``), in order, no repeats."""
    seen: list[str] = []
    for entry in data["entry"]:
        for change in _changes(entry):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            number = _metadata_number(value)
            if number not in seen:
                seen.append(number)
    return seen


def parse_delivery(body: bytes, adapters: Mapping[str, WhatsAppCloudAdapter]) -> list[InboundEvent]:
    """Every event of a delivery (several numbers of one WABA may share it), in order.

    ``adapters`` maps phone_number_id -> adapter; a number not in it raises UnknownAccount.
    """
    data = _graph.load_json(body, "whatsapp_business_account")
    events: list[InboundEvent] = []
    any_adapter = next(iter(adapters.values()), None)
    for entry in data["entry"]:
        for change in _changes(entry):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                if any_adapter is not None:
                    events.append(any_adapter._ignored(f"field:{change.get('field')}"))
                continue
            number = _metadata_number(value)
            adapter = adapters.get(number)
            if adapter is None:
                raise UnknownAccount(f"WhatsApp phone number id {number!r} is not configured")
            events.extend(adapter.parse_value(value))
    return events


class WhatsAppCloudAdapter:
    """One WhatsApp business phone number on the Cloud API."""

    capabilities = frozenset(
        {
            MessageKind.TEXT,
            MessageKind.IMAGE,
            MessageKind.VIDEO,
            MessageKind.AUDIO,
            MessageKind.FILE,
            MessageKind.STICKER,
            MessageKind.TEMPLATE,
        }
    )
    text_limit = TEXT_LIMIT
    facts = ProviderFacts(
        channel=Channel.WHATSAPP,
        provider="cloud",
        credentials=("phone_number_id", "app_secret", "verify_token", "access_token"),
        public=frozenset({"phone_number_id"}),
        address="phone_number_id",
        api_base=_graph.DEFAULT_API_BASE,
        # interactive messages: up to 3 reply buttons, or a list of up to 10 rows; titles up to 20 characters
        # (a row may take 24, a button 20: one limit for both), a reply button's unique within the message; ids
        # up to 256 (docs/channels.md)
        buttons=ButtonLimits(most=10, title_length=20, payload_length=200, unique_titles_up_to=_REPLY_BUTTONS_MOST),
        # WhatsApp's media rules as they are (Meta, Cloud API "Supported media types"; adapters/_whatsapp_media.py)
        media=WHATSAPP_MEDIA,
    )

    def __init__(self, account: ChannelAccount, session: aiohttp.ClientSession) -> None:
        self.account = account
        self._session = session
        self.phone_number_id = account.credentials["phone_number_id"]
        self._app_secret = account.credentials["app_secret"]
        self._token = account.credentials["access_token"]
        self.verify_token = account.credentials["verify_token"]
        self._files: FileOpener | None = None
        self._media_ids: OrderedDict[tuple[str, str], tuple[str, datetime]] = OrderedDict()

    def __repr__(self) -> str:
        return f"WhatsAppCloudAdapter(account={self.account.id!r}, phone_number_id={self.phone_number_id!r})"

    # ------------------------------------------------------------------ inbound

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        _graph.verify_signature(headers, body, self._app_secret)

    def parse(self, body: bytes, headers: Mapping[str, str] | None = None) -> Sequence[InboundEvent]:
        return parse_delivery(body, {self.phone_number_id: self})

    def _ignored(self, kind: str) -> IgnoredEvent:
        return IgnoredEvent(channel=Channel.WHATSAPP, account_id=self.account.id, kind=kind)

    def parse_value(self, value: Mapping[str, Any]) -> list[InboundEvent]:
        """One ``changes[].value`` of field ``messages`` for this number -> its events, in order."""
        if _metadata_number(value) != self.phone_number_id:
            raise UnknownAccount(f"WhatsApp number {_metadata_number(value)!r} is not account {self.account.id!r}")
        names: dict[str, str] = {}
        for contact in _list(value, "contacts"):
            profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
            name = profile.get("name") if profile else None
            for key in ("wa_id", "user_id"):
                if contact.get(key) and name:
                    names[str(contact[key])] = str(name)
        events: list[InboundEvent] = [self._parse_message(m, names) for m in _list(value, "messages")]
        events.extend(self._parse_status(s) for s in _list(value, "statuses"))
        if isinstance(value.get("errors"), list):
            for error in value["errors"]:
                self._warn_system_error(error)
                events.append(self._ignored("system_error"))
        if not events:
            events.append(self._ignored("empty_change"))
        return events

    def _warn_system_error(self, error: Any) -> None:
        """Meta's errors webhook: a system-, app- or account-level problem kept a request from being processed
        (e.g. 130429, throughput reached). Nothing to store, but an operator must hear of it: a warning, not the
        DEBUG line every ignored event gets."""
        found = error if isinstance(error, dict) else {}
        details = found.get("error_data", {}).get("details") if isinstance(found.get("error_data"), dict) else None
        logger.warning(
            "WhatsApp reported an error for number %s: %s %s%s",
            self.phone_number_id,
            found.get("code", "?"),
            found.get("title") or found.get("message") or "(no title)",
            f" ({details})" if details else "",
            extra={"account": self.account.id, "code": found.get("code")},
        )

    def _group_message(self, message: Mapping[str, Any]) -> IgnoredEvent:
        """A message written in a WhatsApp group the number is in (``group_id``, Meta's group messages webhook
        reference). Groups are not supported: as a 1:1 conversation with its writer, an agent's reply would go to
        that one member privately, not to the group. Acknowledged, logged and counted (``group_message``), never
        stored; the text is not logged."""
        logger.warning(
            "WhatsApp group message %s for number %s not stored: groups are not supported (group %s)",
            message.get("id"),
            self.phone_number_id,
            message.get("group_id"),
            extra={"account": self.account.id},
        )
        return self._ignored("group_message")

    def _system(self, system: Any, sender: str, at: datetime) -> InboundEvent:
        """A notice from WhatsApp about the customer, not a message of theirs. A changed number names the new
        one in ``wa_id`` (``new_wa_id`` in older payloads); other notices (a changed business-scoped user id,
        a changed security code) change nothing the hub keeps."""
        notice = system if isinstance(system, dict) else {}
        what = text_or_none(notice.get("type")) or "unknown"
        new = notice.get("wa_id") or notice.get("new_wa_id")
        if what not in _NUMBER_CHANGES or not isinstance(new, str | int) or isinstance(new, bool) or str(new) == sender:
            return self._ignored(f"system:{what}")
        return NumberChanged(
            channel=Channel.WHATSAPP,
            account_id=self.account.id,
            user_id=sender,
            new_user_id=str(new),
            occurred_at=at,
            description=text_or_none(notice.get("body")),
        )

    def _parse_message(self, message: Mapping[str, Any], names: Mapping[str, str]) -> InboundEvent:
        if message.get("group_id"):
            return self._group_message(message)
        wamid = message.get("id")
        if not isinstance(wamid, str) or not wamid:
            raise PayloadMalformed("a message has no 'id'", code="missing_field")
        wa_id = message.get("from")
        user_id = message.get("user_id") or message.get("from_user_id")
        sender = wa_id or user_id
        if not isinstance(sender, str) or not sender:
            raise PayloadMalformed("a message has neither 'from' nor 'user_id'", code="missing_field")
        at = _seconds(message.get("timestamp"))
        kind_name = message.get("type")
        if not isinstance(kind_name, str):
            raise PayloadMalformed("a message has no 'type'", code="missing_field")
        if kind_name in _IGNORED_TYPES:
            return self._ignored(str(kind_name))
        if kind_name == "request_welcome":
            # the customer opened a chat with no earlier thread (a welcome message is due): Meta says this opens
            # the customer service window, so it is contact, not a message (docs/channels.md)
            return CustomerActivity(
                channel=Channel.WHATSAPP,
                account_id=self.account.id,
                sender_id=sender,
                kind="welcome_request",
                occurred_at=at,
            )
        if kind_name == "system":
            return self._system(message.get("system"), sender, at)
        body = message.get(str(kind_name)) if isinstance(message.get(str(kind_name)), dict) else None
        kind = MessageKind.TEXT
        text: str | None = None
        payload: str | None = None
        attachments: tuple[Attachment, ...] = ()
        location: Location | None = None
        extra: list[tuple[str, str]] = []
        if kind_name == "text":
            text = _required(body, "body", "text")
        elif kind_name in _MEDIA_KINDS:
            kind = _MEDIA_KINDS[str(kind_name)]
            media_id = _required(body, "id", str(kind_name))
            assert body is not None
            attachments = (
                Attachment(
                    kind=kind,
                    provider_media_id=media_id,
                    mime_type=text_or_none(body.get("mime_type")),
                    file_name=text_or_none(body.get("filename")),
                    url=body.get("url") if isinstance(body.get("url"), str) else None,
                ),
            )
            text = body.get("caption") if isinstance(body.get("caption"), str) else None
            if body.get("sha256"):
                extra.append(("media_sha256", str(body["sha256"])))
            if kind_name == "audio" and body.get("voice"):
                extra.append(("voice", "true"))
        elif kind_name == "voice":  # a voice note sent with its own type (newer clients)
            kind = MessageKind.AUDIO
            media_id = _required(body, "id", "voice")
            assert body is not None
            attachments = (
                Attachment(
                    kind=kind,
                    provider_media_id=media_id,
                    mime_type=body.get("mime_type") if isinstance(body.get("mime_type"), str) else None,
                    url=body.get("url") if isinstance(body.get("url"), str) else None,
                ),
            )
            extra.append(("voice", "true"))
            if body.get("sha256"):
                extra.append(("media_sha256", str(body["sha256"])))
        elif kind_name == "location":
            if body is None:
                raise PayloadMalformed("a location message has no 'location'", code="missing_field")
            try:
                location = Location(
                    latitude=coordinate(body["latitude"], 90),
                    longitude=coordinate(body["longitude"], 180),
                    name=text_or_none(body.get("name")),
                    address=text_or_none(body.get("address")),
                    url=text_or_none(body.get("url")),
                )
            except (KeyError, TypeError, ValueError):
                raise PayloadMalformed("a location has no usable coordinates", code="missing_field") from None
            kind = MessageKind.LOCATION
            text = location.name or location.address
        elif kind_name == "contacts":
            kind = MessageKind.CONTACT
            text = contacts_text(message.get("contacts"))
        elif kind_name == "button":
            kind = MessageKind.POSTBACK
            text = text_or_none(body.get("text")) if body else None
            payload = str(body["payload"]) if body and body.get("payload") is not None else None
        elif kind_name == "interactive":
            if body is None:
                raise PayloadMalformed("an interactive message has no 'interactive'", code="missing_field")
            reply_type = body.get("type")
            reply = body.get(str(reply_type)) if isinstance(body.get(str(reply_type)), dict) else None
            if reply_type == "nfm_reply" and reply is not None:
                text, flow_facts = flow_reply_text(reply)
                extra.extend(flow_facts)
            elif reply_type not in ("button_reply", "list_reply") or reply is None:
                return self._ignored(f"interactive:{reply_type}")
            else:
                kind = MessageKind.POSTBACK
                text = text_or_none(reply.get("title"))
                payload = str(reply["id"]) if isinstance(reply.get("id"), str | int) else None
                if reply.get("description"):
                    extra.append(("description", str(reply["description"])))
        elif kind_name == "order":
            if body is None:
                raise PayloadMalformed("an order message has no 'order'", code="missing_field")
            text = order_text(body)
            if isinstance(body.get("catalog_id"), str | int):
                extra.append(("catalog_id", str(body["catalog_id"])))
        elif kind_name == "unsupported":
            # the customer wrote something Cloud API does not carry (a poll, a view-once message, ...) or that is
            # not available yet (131060): the agent must still see that they wrote, and may ask them to resend
            text, unsupported_facts = unsupported_text(body, message.get("errors"))
            extra.extend(unsupported_facts)
        else:
            return self._ignored(f"message:{kind_name}")
        context = message.get("context") if isinstance(message.get("context"), dict) else {}
        reply_to = context.get("id") if context else None
        if context and context.get("forwarded"):
            extra.append(("forwarded", "true"))
        if context and context.get("frequently_forwarded"):
            extra.append(("frequently_forwarded", "true"))
        product = context.get("referred_product") if context else None
        if isinstance(product, dict):
            # the customer tapped "Message business" on a product: the product is what brought them
            extra.extend(
                (f"referral_{key}", str(product[key]))
                for key in ("catalog_id", "product_retailer_id")
                if isinstance(product.get(key), str | int) and not isinstance(product.get(key), bool)
            )
        if wa_id and user_id:
            extra.append(("user_id", str(user_id)))  # the BSUID, for when the number disappears
        referral = message.get("referral")
        if isinstance(referral, dict):
            extra.extend((f"referral_{k}", str(v)) for k, v in referral.items() if isinstance(v, str | int))
        return InboundMessage(
            channel=Channel.WHATSAPP,
            account_id=self.account.id,
            sender_id=sender,
            provider_message_id=wamid,
            sent_at=at,
            kind=kind,
            text=text,
            attachments=attachments,
            location=location,
            payload=payload,
            reply_to=str(reply_to) if reply_to else None,
            sender_name=names.get(sender) or (names.get(str(user_id)) if user_id else None),
            sender_phone=f"+{wa_id}" if isinstance(wa_id, str) and wa_id.isdigit() else None,
            extra=tuple(extra),
        )

    def _parse_status(self, status: Mapping[str, Any]) -> InboundEvent:
        wamid = status.get("id")
        if not isinstance(wamid, str) or not wamid:
            raise PayloadMalformed("a status has no 'id'", code="missing_field")
        state = _STATUSES.get(str(status.get("status")))
        if state is None:
            return self._ignored(f"status:{status.get('status')}")
        error_code = error_reason = None
        if state is DeliveryState.FAILED:
            errors = status.get("errors")
            first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
            code = first.get("code")
            error_code = str(code) if code is not None else "unknown"
            rule = ERRORS.get(code) if isinstance(code, int) else None
            details = first.get("error_data", {}).get("details") if isinstance(first.get("error_data"), dict) else None
            error_reason = (
                rule.reason
                if rule
                else str(details or first.get("title") or first.get("message") or "Delivery failed.")
            )
        recipient = status.get("recipient_id") or status.get("recipient_user_id")
        return DeliveryReceipt(
            channel=Channel.WHATSAPP,
            account_id=self.account.id,
            recipient_id=str(recipient) if recipient else None,
            state=state,
            occurred_at=_seconds(status.get("timestamp")),
            provider_message_ids=(wamid,),
            error_code=error_code,
            error_reason=error_reason,
        )

    # ---------------------------------------------------------------- outbound

    def _url(self, path: str) -> str:
        return f"{self.account.api_base}/{path}"

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def use_files(self, opener: FileOpener) -> None:
        """The hub's opener of agents' files: an upload goes to Meta as bytes (``/{phone-number-id}/media``),
        not as the hub's link, so ``server.public_url`` need not be reachable from Meta for it."""
        self._files = opener

    async def send(self, message: OutboundMessage) -> SendReceipt:
        message = await self._with_uploaded_media(message)
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.recipient_id.removeprefix("+"),
            **self._content(message),
        }
        if message.reply_to:
            body["context"] = {"message_id": message.reply_to}
        try:
            data = await _graph.graph_request(
                self._session,
                "POST",
                self._url(f"{self.phone_number_id}/messages"),
                rules=ERRORS,
                provider=PROVIDER,
                headers=self._auth,
                json_body=body,
            )
        except ProviderRejected:
            self._forget_media_ids(message)  # the id may be what Meta refused: a later send uploads again
            raise
        sent = data.get("messages")
        message_id = sent[0].get("id") if isinstance(sent, list) and sent and isinstance(sent[0], dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise ProviderRejected("no_message_id", "WhatsApp accepted the call but returned no message id.")
        return SendReceipt(provider_message_id=message_id, accepted_at=datetime.now(UTC))

    def _content(self, message: OutboundMessage) -> dict[str, Any]:
        template = message.template
        if template is not None and template.name:
            spec: dict[str, Any] = {"name": template.name, "language": {"code": template.language or "en_US"}}
            if template.parameters:
                spec["components"] = [
                    {"type": "body", "parameters": [{"type": "text", "text": p} for p in template.parameters]}
                ]
            return {"type": "template", "template": spec}
        if message.attachments:
            if len(message.attachments) > 1:
                raise ProviderRejected("unsupported_content", "WhatsApp sends one file per message; send each file.")
            attachment = message.attachments[0]
            media_type = _SEND_MEDIA.get(attachment.kind)
            if media_type is None:
                raise ProviderRejected("unsupported_content", f"WhatsApp cannot send a {attachment.kind} attachment.")
            media: dict[str, Any]
            if attachment.provider_media_id:
                media = {"id": attachment.provider_media_id}
            elif attachment.url:
                media = {"link": attachment.url}
            else:
                raise ProviderRejected("unsupported_content", "The attachment has neither a URL nor a media id.")
            if message.text:
                if media_type not in _CAPTIONED:
                    raise ProviderRejected(
                        "unsupported_content",
                        f"WhatsApp cannot caption {media_type}; send the text separately.",
                    )
                media["caption"] = message.text
            if media_type == "document" and attachment.file_name:
                media["filename"] = attachment.file_name
            return {"type": media_type, media_type: media}
        if message.buttons:
            return _interactive(message.text or _CHOOSE, message.buttons)
        if not message.text:
            raise ProviderRejected("empty_message", "The message has no text, file or template.")
        if len(message.text) > TEXT_LIMIT:
            raise ProviderRejected("text_too_long", f"WhatsApp messages are limited to {TEXT_LIMIT} characters.")
        return {"type": "text", "text": {"preview_url": False, "body": message.text}}

    # ------------------------------------------------------------------ media

    async def _with_uploaded_media(self, message: OutboundMessage) -> OutboundMessage:
        """The message with its one attachment sent by media id when the hub has the file's bytes: they are
        uploaded first (or an id uploaded earlier for the same bytes is reused). Anything else is unchanged
        and goes by link. A refused or failed upload raises like a send (ERRORS), so the outbox retries it
        or gives up the same way."""
        if self._files is None or message.template is not None or len(message.attachments) != 1:
            return message
        attachment = message.attachments[0]
        media_type = _SEND_MEDIA.get(attachment.kind)
        if media_type is None or attachment.provider_media_id:
            return message
        async with self._files(attachment) as stored:
            if stored is None:
                return message
            media_id = self._reusable_media_id(stored)
            if media_id is None:
                media_id = await self._upload(stored, media_type)
        named = replace(attachment, provider_media_id=media_id, file_name=attachment.file_name or stored.file_name)
        return replace(message, attachments=(named,))

    def _forget_media_ids(self, message: OutboundMessage) -> None:
        sent = {a.provider_media_id for a in message.attachments if a.provider_media_id}
        for key in [k for k, (media_id, _) in self._media_ids.items() if media_id in sent]:
            del self._media_ids[key]

    def _reusable_media_id(self, stored: StoredFile) -> str | None:
        found = self._media_ids.get((stored.key, stored.mime))
        if found is None:
            return None
        media_id, uploaded_at = found
        if datetime.now(UTC) - uploaded_at > _MEDIA_ID_REUSE:
            del self._media_ids[(stored.key, stored.mime)]
            return None
        return media_id

    async def _upload(self, stored: StoredFile, media_type: str) -> str:
        """``POST /{phone-number-id}/media`` (multipart: ``messaging_product``, ``type`` = the MIME type,
        ``file`` streamed from the blob store); Meta answers the media id to send."""
        with aiohttp.MultipartWriter("form-data") as form:
            form.append("whatsapp").set_content_disposition("form-data", name="messaging_product")
            form.append(stored.mime).set_content_disposition("form-data", name="type")
            part = form.append(stored.chunks, {"Content-Type": stored.mime})
            part.set_content_disposition("form-data", name="file", filename=stored.file_name or media_type)
            data = await _graph.graph_request(
                self._session,
                "POST",
                self._url(f"{self.phone_number_id}/media"),
                rules=ERRORS,
                provider=PROVIDER,
                headers=self._auth,
                form=form,
                client_timeout=_UPLOAD_TIMEOUT,
            )
        media_id = data.get("id")
        if not isinstance(media_id, str | int) or not str(media_id):
            raise ProviderRejected("no_media_id", "WhatsApp accepted the file but returned no media id.")
        self._media_ids[(stored.key, stored.mime)] = (str(media_id), datetime.now(UTC))
        while len(self._media_ids) > _MEDIA_IDS_KEPT:
            self._media_ids.popitem(last=False)
        logger.debug("file uploaded to WhatsApp", extra={"bytes": stored.size, "mime": stored.mime})
        return str(media_id)

    async def locate_media(self, media: MediaReference) -> MediaLocation:
        """Cloud API media: ``GET /{media-id}`` (with the token) gives a URL that lives about five minutes,
        fetched with the same token (channels.md 3.4). A webhook's media id is valid for 7 days."""
        if not media.media_id:
            raise ProviderRejected("no_media_id", "WhatsApp gave no media id for this attachment.")
        data = await _graph.graph_request(
            self._session,
            "GET",
            self._url(media.media_id),
            rules=ERRORS,
            provider=PROVIDER,
            headers=self._auth,
        )
        url = data.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ProviderRejected("no_media_url", "WhatsApp's media lookup returned no URL.")
        mime = data.get("mime_type") if isinstance(data.get("mime_type"), str) else None
        return MediaLocation(url=url, headers=self._auth, mime=mime)

    async def check(self) -> str:
        data = await _graph.graph_request(
            self._session,
            "GET",
            self._url(self.phone_number_id),
            rules=ERRORS,
            provider=PROVIDER,
            headers=self._auth,
            params={"fields": "display_phone_number,verified_name"},
        )
        number = data.get("display_phone_number", self.phone_number_id)
        return f"WhatsApp number {number} ({data.get('verified_name', '?')}): credentials accepted"


# ------------------------------------------------------------------ helpers


def _changes(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    changes = entry.get("changes")
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise PayloadMalformed("an entry has no list of 'changes'", code="missing_field")
    return changes


def _metadata_number(value: Mapping[str, Any]) -> str:
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    if not isinstance(number, str | int) or not str(number):
        raise PayloadMalformed("a change has no 'metadata.phone_number_id'", code="missing_field")
    return str(number)


def _list(value: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = value.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise PayloadMalformed(f"'{key}' must be a list of objects", code="missing_field")
    return items


def _seconds(value: Any) -> datetime:
    """A message's or status's ``timestamp`` (epoch seconds, as a string); when missing or implausible
    (1e308, negative, centuries ahead) the time it reached us: the event itself is still usable."""
    received_at = utc_now()
    return plausible_time(value, unit="s", received_at=received_at) or received_at


def _required(body: Mapping[str, Any] | None, key: str, what: str) -> str:
    value = body.get(key) if body else None
    if not isinstance(value, str | int) or value == "":
        raise PayloadMalformed(f"a {what} message has no '{key}'", code="missing_field")
    return str(value)


_CHOOSE = "Please choose:"
_INTERACTIVE_BODY = 1024  # an interactive message's body text


def _interactive(text: str, buttons: Sequence[Button]) -> dict[str, Any]:
    """Up to three reply buttons; more become a list (one section). A tap comes back as ``interactive``
    ``button_reply`` / ``list_reply`` with the id we gave (the button's payload)."""
    if len(text) > _INTERACTIVE_BODY:
        raise ProviderRejected("text_too_long", f"WhatsApp's text above buttons is limited to {_INTERACTIVE_BODY}.")
    if len(buttons) <= _REPLY_BUTTONS_MOST:
        action: dict[str, Any] = {
            "buttons": [{"type": "reply", "reply": {"id": b.payload, "title": b.title}} for b in buttons]
        }
        return {"type": "interactive", "interactive": {"type": "button", "body": {"text": text}, "action": action}}
    rows = [{"id": b.payload, "title": b.title} for b in buttons]
    action = {"button": "Choose", "sections": [{"title": "Options", "rows": rows}]}
    return {"type": "interactive", "interactive": {"type": "list", "body": {"text": text}, "action": action}}
