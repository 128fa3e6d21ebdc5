"""Twilio's Messages resource for WhatsApp, emulated under ``/twilio``, and a customer writing in.

Same paths, form fields, JSON and error codes as Twilio: Basic auth with the
account SID and auth token (20003), a sender we do not have (63007), an invalid
``To`` (21211), free-form text outside the 24-hour window (63016; a ContentSid
template is always allowed). Accepted messages get signed status callbacks
(sent, delivered, read) at their ``StatusCallback``.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from adapters.emulators.core import EMULATOR_STATE, EmulatorState
from adapters.twilio_whatsapp import parse_form, sign
from hub.errors import PayloadMalformed
from hub.model import ChannelAccount

__all__ = ["PREFIX", "say", "setup"]

PREFIX = "/twilio"
HUB_PATH = "/webhooks/twilio"
_API = "/2010-04-01"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_CONTENT_TYPES = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg",
    "file": "application/pdf",
    "sticker": "image/webp",
    "contact": "text/vcard",
}
_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    63007: "Twilio could not find a Channel with the specified From address",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template."
    ),
}


def _number(value: str) -> str:
    value = value.strip()
    value = value.removeprefix("whatsapp:")
    return value if value.startswith("+") else f"+{value}"


def _twilio_error(status: int, code: int, message: str | None = None, **headers: str) -> web.Response:
    body = {
        "code": code,
        "message": message or _MESSAGES.get(code, f"Error {code}"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers or None)


def _accounts_for_sid(state: EmulatorState, sid: str) -> list[ChannelAccount]:
    return [
        a
        for a in state.accounts.values()
        if a.adapter_name == "whatsapp.twilio" and a.credentials.get("account_sid") == sid
    ]


def _authorised(request: web.Request, state: EmulatorState) -> list[ChannelAccount] | web.Response:
    sid = request.match_info["sid"]
    accounts = _accounts_for_sid(state, sid)
    header = request.headers.get("Authorization", "")
    if not accounts or not header.startswith("Basic "):
        return _twilio_error(401, 20003)
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return _twilio_error(401, 20003)
    if user != sid or all(a.credentials.get("auth_token") != password for a in accounts):
        return _twilio_error(401, 20003)
    return accounts


def _fault(request: web.Request, fault: dict[str, Any] | None) -> web.Response | None:
    """The refusal an injected fault causes (a ``provider_error`` with ``after_accept`` is
    accepted and then fails in its status callback, as WhatsApp errors often do)."""
    if fault is None or fault.get("after_accept"):
        return None
    kind = fault["kind"]
    if kind == "drop_connection":
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("emulated dropped connection")
    if kind == "rate_limit":
        retry = str(fault.get("retry_after", 1))
        return _twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": retry})
    if kind == "provider_error":
        code = int(fault.get("code", 63018))
        return _twilio_error(int(fault.get("status", 429 if code == 20429 else 400)), code, fault.get("message"))
    status = int(fault.get("status", 500))
    return web.json_response({"code": 20500, "message": "Internal Server Error", "status": status}, status=status)


async def create_message(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    accounts = _authorised(request, state)
    if isinstance(accounts, web.Response):
        return accounts
    try:
        form = parse_form(await request.read())
    except PayloadMalformed:
        return _twilio_error(400, 21602, "The request body is not a form")
    sender = _number(form.get("From") or "")
    account = next((a for a in accounts if _number(a.credentials["from_number"]) == sender), None)
    if account is None:
        return _twilio_error(400, 63007)
    to = form.get("To") or ""
    recipient = _number(to)
    if not to.startswith("whatsapp:") or not _E164.match(recipient):
        return _twilio_error(400, 21211, _MESSAGES[21211].format(to=to))
    fault = state.next_fault(account.id)
    refusal = _fault(request, fault)
    if refusal is not None:
        return refusal
    late_error = str(fault.get("code", "63024")) if fault is not None else None
    content_sid = form.get("ContentSid")
    media = form.getall("MediaUrl", [])
    if content_sid:
        kind = "template"
        body: dict[str, Any] = {"ContentSid": content_sid}
        if form.get("ContentVariables"):
            try:
                body["ContentVariables"] = json.loads(form["ContentVariables"])
            except ValueError:
                return _twilio_error(400, 21656, "The ContentVariables Parameter is invalid.")
    else:
        if not form.get("Body") and not media:
            return _twilio_error(400, 21602)
        if not state.window_open(account.id, recipient):
            return _twilio_error(400, 63016)
        kind = "media" if media else "text"
        body = {"Body": form.get("Body", "")}
        if media:
            body["MediaUrl"] = list(media)
    sid = state.new_message_id("MM" if media else "SM")
    record = state.record_sent(account.id, recipient, kind, body, sid)
    record.status = "queued"
    callback = form.get("StatusCallback")
    if callback:
        state.schedule(_status_callbacks(state, account, recipient, sid, callback, late_error))
    created = state.clock().astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    sid_path = f"{_API}/Accounts/{account.credentials['account_sid']}/Messages/{sid}.json"
    return web.json_response(
        {
            "sid": sid,
            "account_sid": account.credentials["account_sid"],
            "from": f"whatsapp:{sender}",
            "to": f"whatsapp:{recipient}",
            "body": form.get("Body", ""),
            "status": "queued",
            "num_media": str(len(media)),
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": created,
            "date_updated": created,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "messaging_service_sid": None,
            "price": None,
            "uri": sid_path,
        },
        status=201,
    )


async def _status_callbacks(
    state: EmulatorState, account: ChannelAccount, recipient: str, sid: str, url: str, error: str | None = None
) -> None:
    """sent, delivered, read (or sent, failed with ``error``): each a signed form POST, like Twilio's."""
    record = state.find_sent(sid)
    for status in ("sent", "failed") if error else ("sent", "delivered", "read"):
        params = [
            ("MessageSid", sid),
            ("SmsSid", sid),
            ("MessageStatus", status),
            ("SmsStatus", status),
            ("AccountSid", account.credentials["account_sid"]),
            ("From", f"whatsapp:{_number(account.credentials['from_number'])}"),
            ("To", f"whatsapp:{recipient}"),
            ("ApiVersion", "2010-04-01"),
            ("ChannelPrefix", "whatsapp"),
        ]
        if status == "failed" and error:
            params.append(("ErrorCode", error))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(url, params, account.credentials["auth_token"]),
        }
        await state.post(url, urlencode(params).encode(), headers)
        if record is not None:
            record.status = status


async def fetch_account(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    accounts = _authorised(request, state)
    if isinstance(accounts, web.Response):
        return accounts
    sid = request.match_info["sid"]
    return web.json_response(
        {
            "sid": sid,
            "friendly_name": f"Emulated {accounts[0].id}",
            "status": "active",
            "type": "Full",
            "uri": f"{_API}/Accounts/{sid}.json",
        }
    )


def setup(app: web.Application, state: EmulatorState) -> None:
    app.router.add_post(PREFIX + _API + "/Accounts/{sid}/Messages.json", create_message)
    app.router.add_get(PREFIX + _API + "/Accounts/{sid}.json", fetch_account)


async def say(
    state: EmulatorState,
    account: ChannelAccount,
    customer: str,
    text: str | None,
    *,
    kind: str = "text",
    media_url: str | None = None,
    name: str | None = None,
    repeat: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """A customer writes to ``account`` on WhatsApp: Twilio's inbound form, signed, posted to the hub.

    ``kind``: text, image, video, audio, file, sticker, contact (a vCard), location
    (``latitude``, ``longitude``, ``address``, ``label``) or button (``payload``).
    """
    number = _number(customer)
    if not _E164.match(number):
        raise ValueError(f"{customer!r} is not a phone number in E.164 form (+420...)")
    ours = _number(account.credentials["from_number"])
    sid = state.new_message_id("MM" if media_url else "SM")
    params: list[tuple[str, str]] = [
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("SmsSid", sid),
        ("AccountSid", account.credentials["account_sid"]),
        ("From", f"whatsapp:{number}"),
        ("To", f"whatsapp:{ours}"),
        ("Body", text or ""),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
        ("WaId", number[1:]),
        ("ProfileName", name or (state.customer(account.id, number).name or "")),
    ]
    message_type = kind
    if kind in _CONTENT_TYPES or media_url:
        url = media_url or f"{state.hub_url}/media/{sid}"
        content_type = str(extra.get("content_type") or _CONTENT_TYPES.get(kind, "application/octet-stream"))
        params += [("NumMedia", "1"), ("MediaUrl0", url), ("MediaContentType0", content_type)]
        message_type = "document" if kind == "file" else kind
    else:
        params.append(("NumMedia", "0"))
    if kind == "location":
        params += [
            ("Latitude", str(extra.get("latitude", 50.0875))),
            ("Longitude", str(extra.get("longitude", 14.4213))),
        ]
        params += [(k.capitalize(), str(extra[k])) for k in ("address", "label") if extra.get(k)]
    elif kind == "button":
        params += [("ButtonText", text or ""), ("ButtonPayload", str(extra.get("payload") or text or ""))]
    elif kind not in ("text", *_CONTENT_TYPES):
        known = ", ".join(("text", *_CONTENT_TYPES, "location", "button"))
        raise ValueError(f"unknown kind {kind!r} for WhatsApp (Twilio); it plays {known}")
    if extra.get("reply_to"):
        params.append(("OriginalRepliedMessageSid", str(extra["reply_to"])))
    params.append(("MessageType", message_type))
    params = [(k, v) for k, v in params if v != "" or k == "Body"]
    state.record_inbound(account.id, number, state.clock(), name)
    url = state.hub_url + HUB_PATH
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(url, params, account.credentials["auth_token"]),
    }
    status = await state.post_to_hub(HUB_PATH, urlencode(params).encode(), headers, repeat=repeat)
    return {"status": status, "provider_message_id": sid}
