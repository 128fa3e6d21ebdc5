"""Meta's Graph API emulated under ``/graph/v21.0``: Messenger Send API, user profile,
WhatsApp Cloud API messages, and a customer writing in on either.

Same paths, JSON and error objects as Meta. Rules enforced with Meta's codes:
Messenger's 24-hour window (``RESPONSE``/``UPDATE``), message tags (``HUMAN_AGENT``
7 days, the three non-promotional tags any time, retired tags refused) -> 10/2018278,
an unknown PSID -> 100/2018001, a wrong token -> 190; Cloud API free-form outside
the 24-hour window -> 131047 (templates always allowed), a template without a name
or language -> 131008. A Cloud API media upload (``POST /{phone-number-id}/media``, multipart) is kept and
answers its media id; a message naming that id records the file it resolves to (``media_fetched``).
Accepted sends are followed by signed webhooks back to the hub:
Messenger ``delivery`` then ``read`` (by watermark), Cloud API ``statuses`` sent,
delivered, read.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from adapters._graph import SIGNATURE_HEADER, sign
from adapters.emulators.core import EMULATOR_STATE, EmulatorState
from adapters.emulators.media import shelf_of
from hub.model import ChannelAccount

__all__ = ["MESSENGER_PATH", "PREFIX", "WHATSAPP_PATH", "say", "setup"]

PREFIX = "/graph/v21.0"
MESSENGER_PATH = "/webhooks/messenger"
WHATSAPP_PATH = "/webhooks/whatsapp"

_WINDOW = 24.0  # hours
_TAG_HOURS: dict[str, float | None] = {
    "HUMAN_AGENT": 24 * 7,
    "CUSTOMER_FEEDBACK": 24 * 7,
    "CONFIRMED_EVENT_UPDATE": None,  # any time, non-promotional
    "POST_PURCHASE_UPDATE": None,
    "ACCOUNT_UPDATE": None,
}
_MEDIA = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/ogg", "file": "application/pdf"}
_WA_MEDIA = {**_MEDIA, "document": "application/pdf", "sticker": "image/webp"}


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    details: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = secrets.token_urlsafe(9)
    return web.json_response({"error": error}, status=status, headers=headers)


def _messenger_accounts(state: EmulatorState) -> list[ChannelAccount]:
    return [a for a in state.accounts.values() if a.adapter_name == "messenger"]


def _cloud_accounts(state: EmulatorState) -> list[ChannelAccount]:
    return [a for a in state.accounts.values() if a.adapter_name == "whatsapp.cloud"]


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else request.query.get("access_token", "")


def _invalid_token() -> web.Response:
    return _graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")


async def _fault(request: web.Request, state: EmulatorState, account: ChannelAccount) -> web.Response | None:
    """The next injected fault for this account, as Meta would show it."""
    fault = state.next_fault(account.id)
    if fault is None:
        return None
    kind = fault["kind"]
    if kind == "drop_connection":
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("emulated dropped connection")
    if kind == "rate_limit":
        code = 130429 if account.adapter_name == "whatsapp.cloud" else 613
        retry = str(fault.get("retry_after", 1))
        return _graph_error(
            429, code, "Calls to this API have exceeded the rate limit.", headers={"Retry-After": retry}
        )
    if kind == "provider_error":
        code_text, _, subcode_text = str(fault.get("code", "2")).partition("/")
        return _graph_error(
            int(fault.get("status", 400)),
            int(code_text),
            str(fault.get("message") or f"Emulated error {fault.get('code')}"),
            subcode=int(subcode_text) if subcode_text else None,
        )
    status = int(fault.get("status", 500))
    return _graph_error(status, 2, "An unexpected error has occurred. Please retry your request later.")


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        data = json.loads(await request.read())
    except ValueError:
        return _graph_error(400, 100, "(#100) The parameter body is not valid JSON")
    if not isinstance(data, dict):
        return _graph_error(400, 100, "(#100) The body must be a JSON object")
    return data


# --------------------------------------------------------------------- routes


async def post_messages(request: web.Request) -> web.Response:
    """``POST /{node}/messages``: a page (or ``me``) on Messenger, a phone number id on WhatsApp."""
    state = request.app[EMULATOR_STATE]
    node = request.match_info["node"]
    token = _bearer(request)
    for account in _cloud_accounts(state):
        if account.credentials["phone_number_id"] == node:
            if token != account.credentials["access_token"]:
                return _invalid_token()
            return await _whatsapp_send(request, state, account)
    for account in _messenger_accounts(state):
        if node in (account.credentials["page_id"], "me") and token == account.credentials["page_access_token"]:
            return await _messenger_send(request, state, account)
    if any(node == a.credentials["page_id"] for a in _messenger_accounts(state)):
        return _invalid_token()
    return _graph_error(400, 100, f"(#100) Unsupported post request. Object with ID '{node}' does not exist")


async def post_media(request: web.Request) -> web.Response:
    """``POST /{phone-number-id}/media``: a WhatsApp Cloud upload (multipart ``messaging_product``, ``type``,
    ``file``); the bytes are kept on the shelf and the answer is their media id, as Meta's."""
    state = request.app[EMULATOR_STATE]
    node = request.match_info["node"]
    account = next((a for a in _cloud_accounts(state) if a.credentials["phone_number_id"] == node), None)
    if account is None:
        return _graph_error(400, 100, f"(#100) Unsupported post request. Object with ID '{node}' does not exist")
    if _bearer(request) != account.credentials["access_token"]:
        return _invalid_token()
    if not request.content_type.startswith("multipart/"):
        return _graph_error(400, 100, "(#100) The upload must be multipart/form-data")
    fields: dict[str, str] = {}
    upload: tuple[bytes, str, str | None] | None = None
    async for part in await request.multipart():
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        if part.name == "file":
            data = bytes(await part.read(decode=False))
            upload = (data, part.headers.get("Content-Type") or "application/octet-stream", part.filename)
        elif part.name:
            fields[part.name] = await part.text()
    if fields.get("messaging_product") != "whatsapp":
        return _graph_error(400, 100, "(#100) The parameter messaging_product is required.")
    if upload is None or not upload[0]:
        return _graph_error(400, 100, "(#100) The parameter file is required.")
    fault = await _fault(request, state, account)
    if fault is not None:
        return fault
    data, part_type, file_name = upload
    mime = fields.get("type") or part_type
    shelf = shelf_of(state)
    shelf.base = shelf.base or str(request.url.origin())
    media_id = shelf.upload(data, mime, file_name)
    return web.json_response({"id": media_id})


async def get_node(request: web.Request) -> web.Response:
    """``GET /{node}``: a page, a WhatsApp number, or a Messenger user profile."""
    state = request.app[EMULATOR_STATE]
    node = request.match_info["node"]
    token = _bearer(request)
    for account in _cloud_accounts(state):
        if account.credentials["phone_number_id"] == node:
            if token != account.credentials["access_token"]:
                return _invalid_token()
            return web.json_response(
                {"display_phone_number": f"+1 555 0{node[-6:]}", "verified_name": f"Emulated {account.id}", "id": node}
            )
    media_url = shelf_of(state).ids.get(node)
    if media_url is not None:  # a customer's media: a short-lived URL, fetched with the same token
        if not any(token == a.credentials["access_token"] for a in _cloud_accounts(state)):
            return _invalid_token()
        return web.json_response({"url": media_url, "id": node, "messaging_product": "whatsapp"})
    for account in _messenger_accounts(state):
        if token != account.credentials["page_access_token"]:
            continue
        if node == account.credentials["page_id"]:
            return web.json_response({"name": f"Emulated {account.id}", "id": node})
        customer = state.customers.get((account.id, node))
        if customer is not None:
            first, _, last = (customer.name or "Emulated Customer").partition(" ")
            return web.json_response(
                {
                    "first_name": first,
                    "last_name": last,
                    "profile_pic": f"{state.hub_url}/static/avatars/{node}.png",
                    "id": node,
                }
            )
        return _graph_error(400, 100, f"Unsupported get request. Object with ID '{node}' does not exist", subcode=33)
    return _invalid_token()


async def _messenger_send(request: web.Request, state: EmulatorState, account: ChannelAccount) -> web.Response:
    data = await _json_body(request)
    if isinstance(data, web.Response):
        return data
    recipient = data.get("recipient", {}).get("id") if isinstance(data.get("recipient"), dict) else None
    message = data.get("message")
    messaging_type = data.get("messaging_type")
    if not recipient:
        return _graph_error(400, 100, "(#100) param recipient must be non-empty.")
    if messaging_type not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        return _graph_error(400, 100, "(#100) messaging_type must be one of RESPONSE, UPDATE, MESSAGE_TAG")
    if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
        return _graph_error(400, 100, "(#100) param message must be non-empty.")
    if message.get("text") and len(str(message["text"])) > 2000:
        return _graph_error(400, 100, "(#100) Length of param message[text] must be less than or equal to 2000")
    if (account.id, str(recipient)) not in state.customers:
        return _graph_error(400, 100, "(#100) No matching user found", subcode=2018001)
    fault = await _fault(request, state, account)
    if fault is not None:
        return fault
    if messaging_type == "MESSAGE_TAG":
        tag = data.get("tag")
        if tag not in _TAG_HOURS:
            return _graph_error(400, 10, "(#10) This message is sent outside of allowed window.", subcode=2018278)
        hours = _TAG_HOURS[str(tag)]
        allowed = hours is None or state.window_open(account.id, str(recipient), hours=hours)
    else:
        allowed = state.window_open(account.id, str(recipient), hours=_WINDOW)
    if not allowed:
        return _graph_error(400, 10, "(#10) This message is sent outside of allowed window.", subcode=2018278)
    mid = "m_" + state.new_message_id("")
    kind = "text" if message.get("text") else str(message["attachment"].get("type", "file"))
    state.record_sent(account.id, str(recipient), kind, data, mid)
    state.schedule(_messenger_receipts(state, account, str(recipient), mid))
    return web.json_response({"recipient_id": str(recipient), "message_id": mid})


async def _messenger_receipts(state: EmulatorState, account: ChannelAccount, psid: str, mid: str) -> None:
    """delivery (by mids and watermark), then read (by watermark), each signed like Meta's."""
    record = state.find_sent(mid)
    for event in ("delivery", "read"):
        now = _ms(state.clock())
        body = {"watermark": now} if event == "read" else {"mids": [mid], "watermark": now}
        item = {
            "sender": {"id": psid},
            "recipient": {"id": account.credentials["page_id"]},
            "timestamp": now,
            event: body,
        }
        await _post_signed(state, account, MESSENGER_PATH, _envelope("page", account.credentials["page_id"], item))
        if record is not None:
            record.status = "delivered" if event == "delivery" else "read"


async def _whatsapp_send(request: web.Request, state: EmulatorState, account: ChannelAccount) -> web.Response:
    data = await _json_body(request)
    if isinstance(data, web.Response):
        return data
    if data.get("messaging_product") != "whatsapp":
        return _graph_error(400, 100, "(#100) The parameter messaging_product is required.")
    to = str(data.get("to") or "").removeprefix("+")
    kind = data.get("type", "text")
    if not to:
        return _graph_error(400, 131008, "(#131008) Required parameter is missing", details="to is required")
    if kind == "template":
        template = data.get("template")
        if (
            not isinstance(template, dict)
            or not template.get("name")
            or not isinstance(template.get("language"), dict)
            or not template["language"].get("code")
        ):
            return _graph_error(
                400, 131008, "(#131008) Required parameter is missing", details="template name and language"
            )
    elif not isinstance(data.get(str(kind)), dict):
        return _graph_error(400, 131009, "(#131009) Parameter value is not valid", details=f"{kind} object missing")
    fault = await _fault(request, state, account)
    if fault is not None:
        return fault
    if kind != "template" and not state.window_open(account.id, to, hours=_WINDOW):
        return _graph_error(
            400,
            131047,
            "Re-engagement message",
            details="Message failed to send because more than 24 hours have passed since the customer last "
            "replied to this number.",
        )
    media = data.get(str(kind)) if kind != "template" else None
    uploaded = None
    if isinstance(media, dict) and "id" in media:  # sent by media id: it must be one uploaded here
        uploaded = shelf_of(state).uploaded_file(str(media["id"]))
        if uploaded is None:
            return _graph_error(400, 131009, "(#131009) Parameter value is not valid", details="unknown media id")
    wamid = "wamid." + state.new_message_id("HBgL")
    record = state.record_sent(account.id, to, str(kind), data, wamid)
    if uploaded is not None:  # what the customer receives: the file the id names
        record.body["media_fetched"] = [uploaded]
    state.schedule(_whatsapp_statuses(state, account, to, wamid))
    return web.json_response(
        {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": wamid}]}
    )


async def _whatsapp_statuses(state: EmulatorState, account: ChannelAccount, to: str, wamid: str) -> None:
    record = state.find_sent(wamid)
    for status in ("sent", "delivered", "read"):
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(state.clock().timestamp())),
            "recipient_id": to,
        }
        if status != "read":
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service", "type": "regular"}
        await _post_signed(state, account, WHATSAPP_PATH, _whatsapp_envelope(account, {"statuses": [item]}))
        if record is not None:
            record.status = status


# ------------------------------------------------------------------ webhooks


def _envelope(obj: str, page_id: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"object": obj, "entry": [{"id": page_id, "time": item["timestamp"], "messaging": [item]}]}


def _whatsapp_envelope(account: ChannelAccount, value: dict[str, Any]) -> dict[str, Any]:
    number = account.credentials["phone_number_id"]
    full = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": f"1555{number[-7:]}", "phone_number_id": number},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": f"waba-{account.id}", "changes": [{"value": full, "field": "messages"}]}],
    }


def _encode(payload: dict[str, Any]) -> bytes:
    # Meta sends compact JSON with non-ASCII escaped; the signature covers exactly these bytes
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


async def _post_signed(
    state: EmulatorState, account: ChannelAccount, path: str, payload: dict[str, Any], *, repeat: int = 1
) -> int:
    body = _encode(payload)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, account.credentials["app_secret"])}
    return await state.post_to_hub(path, body, headers, repeat=repeat)


def setup(app: web.Application, state: EmulatorState) -> None:
    app.router.add_post(PREFIX + "/{node}/messages", post_messages)
    app.router.add_post(PREFIX + "/{node}/media", post_media)
    app.router.add_get(PREFIX + "/{node}", get_node)


# ---------------------------------------------------------------- customers


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
    """A customer writes to ``account`` (a Facebook page or a Cloud API number), signed and posted to the hub.

    Messenger kinds: text, image, video, audio, file, sticker, location, quick_reply, postback.
    WhatsApp kinds: text, image, video, audio, file (document), sticker, location, button,
    button_reply, list_reply, contacts. ``payload``, ``reply_to``, ``latitude``/``longitude`` via extra.
    """
    if account.adapter_name == "messenger":
        return await _messenger_say(state, account, customer, text, kind, media_url, name, repeat, extra)
    if account.adapter_name == "whatsapp.cloud":
        return await _whatsapp_say(state, account, customer, text, kind, media_url, name, repeat, extra)
    raise ValueError(f"the Graph emulator does not play {account.adapter_name}")


async def _messenger_say(
    state: EmulatorState,
    account: ChannelAccount,
    psid: str,
    text: str | None,
    kind: str,
    media_url: str | None,
    name: str | None,
    repeat: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    now = state.clock()
    page = account.credentials["page_id"]
    mid = "m_" + state.new_message_id("")
    item: dict[str, Any] = {"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": _ms(now)}
    payload_value = str(extra.get("payload") or text or "")
    if kind == "postback":
        item["postback"] = {"mid": mid, "title": text or payload_value, "payload": payload_value}
    else:
        message: dict[str, Any] = {"mid": mid}
        if kind in ("text", "quick_reply"):
            if not text:
                raise ValueError("a text message needs text")
            message["text"] = text
            if kind == "quick_reply":
                message["quick_reply"] = {"payload": payload_value}
        elif kind in _MEDIA:
            url = media_url or f"{state.hub_url}/media/{mid}.{kind}"
            message["attachments"] = [{"type": kind, "payload": {"url": url}}]
        elif kind == "sticker":
            sticker = int(extra.get("sticker_id", 369239263222822))
            url = media_url or f"{state.hub_url}/media/sticker-{sticker}.png"
            message["sticker_id"] = sticker
            message["attachments"] = [{"type": "image", "payload": {"url": url, "sticker_id": sticker}}]
        elif kind == "location":
            coordinates = {"lat": float(extra.get("latitude", 50.0875)), "long": float(extra.get("longitude", 14.4213))}
            message["attachments"] = [
                {"type": "location", "title": text or "Pinned location", "payload": {"coordinates": coordinates}}
            ]
        else:
            known = ", ".join(("text", "quick_reply", "postback", *_MEDIA, "sticker", "location"))
            raise ValueError(f"unknown kind {kind!r} for Messenger; it plays {known}")
        if extra.get("reply_to"):
            message["reply_to"] = {"mid": str(extra["reply_to"])}
        item["message"] = message
    state.record_inbound(account.id, psid, now, name)
    status = await _post_signed(state, account, MESSENGER_PATH, _envelope("page", page, item), repeat=repeat)
    return {"status": status, "provider_message_id": mid}


async def _whatsapp_say(
    state: EmulatorState,
    account: ChannelAccount,
    customer: str,
    text: str | None,
    kind: str,
    media_url: str | None,
    name: str | None,
    repeat: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    wa_id = customer.strip().removeprefix("whatsapp:").removeprefix("+")
    if not wa_id.isdigit():
        raise ValueError(f"{customer!r} is not a phone number (+420...)")
    now = state.clock()
    wamid = "wamid." + state.new_message_id("HBgL")
    message: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(int(now.timestamp()))}
    media_kind = "document" if kind == "file" else kind
    if kind == "text":
        if not text:
            raise ValueError("a text message needs text")
        message |= {"type": "text", "text": {"body": text}}
    elif media_kind in _WA_MEDIA:
        media: dict[str, Any] = {
            "mime_type": str(extra.get("content_type") or _WA_MEDIA[media_kind]),
            "sha256": secrets.token_urlsafe(32),
            "id": str(secrets.randbelow(10**15) + 10**15),
        }
        if media_url:  # looked up by the hub through GET /{media-id}, as on the Cloud API
            shelf_of(state).ids[media["id"]] = media_url
        if text and media_kind in ("image", "video", "document"):
            media["caption"] = text
        if media_kind == "document":
            media["filename"] = str(extra.get("filename") or (media_url or "document.pdf").rsplit("/", 1)[-1])
        message |= {"type": media_kind, media_kind: media}
    elif kind == "location":
        location: dict[str, Any] = {
            "latitude": float(extra.get("latitude", 50.0875)),
            "longitude": float(extra.get("longitude", 14.4213)),
        }
        if text:
            location["name"] = text
        message |= {"type": "location", "location": location}
    elif kind == "button":
        message |= {"type": "button", "button": {"text": text or "", "payload": str(extra.get("payload") or text)}}
    elif kind in ("button_reply", "list_reply"):
        reply = {"id": str(extra.get("payload") or text), "title": text or ""}
        message |= {"type": "interactive", "interactive": {"type": kind, kind: reply}}
    elif kind == "contacts":
        card = {"name": {"formatted_name": text or "Contact"}, "phones": [{"phone": str(extra.get("phone", ""))}]}
        message |= {"type": "contacts", "contacts": [card]}
    else:
        known = ", ".join(("text", *_WA_MEDIA, "location", "button", "button_reply", "list_reply", "contacts"))
        raise ValueError(f"unknown kind {kind!r} for WhatsApp (Cloud API); it plays {known}")
    if extra.get("reply_to"):
        message["context"] = {"from": account.credentials["phone_number_id"], "id": str(extra["reply_to"])}
    remembered = state.record_inbound(account.id, wa_id, now, name)
    value = {
        "contacts": [{"profile": {"name": name or remembered.name or "WhatsApp customer"}, "wa_id": wa_id}],
        "messages": [message],
    }
    status = await _post_signed(state, account, WHATSAPP_PATH, _whatsapp_envelope(account, value), repeat=repeat)
    return {"status": status, "provider_message_id": wamid}
