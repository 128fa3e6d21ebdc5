"""Viber's REST Bot API, emulated under ``/viber/pa``, and a Viber user writing in.

Same endpoints, JSON and status codes as Viber: the bot is found by
``X-Viber-Auth-Token`` (status 2 otherwise), ``sender.name`` is required and at
most 28 characters (3), a receiver who is not subscribed gets 6. An accepted
message is answered with a 64-bit ``message_token`` (above 2^53, as Viber's are)
and followed by signed ``delivered`` and ``seen`` callbacks to the bot's webhook.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

from aiohttp import web

from adapters.emulators.core import EMULATOR_STATE, EmulatorState
from adapters.viber import AUTH_HEADER, EVENT_TYPES, SIGNATURE_HEADER, sign
from hub.model import ChannelAccount

__all__ = ["PREFIX", "say", "setup"]

PREFIX = "/viber/pa"
# Viber-sized (beyond float precision), and from a random start: a demo restarted on the same database must not
# hand out its last run's tokens, which the hub would take for redeliveries of messages it already has
_TOKENS = itertools.count(5_466_297_578_174_182_639 + secrets.randbelow(2**61))
_HOSTNAME = "SN-CHAT-05_"
_STATUS_MESSAGES = {
    0: "ok",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    10: "webhookNotSet",
    12: "tooManyRequests",
}
_SEND_TYPES = frozenset({"text", "picture", "video", "file", "contact", "location", "url", "sticker", "rich_media"})
WEBHOOKS: web.AppKey[dict[str, str]] = web.AppKey("emulator.viber.webhooks")


def _status(code: int, message: str | None = None, **extra: Any) -> web.Response:
    body = {"status": code, "status_message": message or _STATUS_MESSAGES.get(code, "generalError"), **extra}
    return web.json_response(body)


def _millis(state: EmulatorState) -> int:
    return int(state.clock().timestamp() * 1000)


def _account(request: web.Request, state: EmulatorState, body: dict[str, Any]) -> ChannelAccount | None:
    token = request.headers.get(AUTH_HEADER) or body.get("auth_token")
    for account in state.accounts.values():
        if account.adapter_name == "viber" and token and account.credentials.get("auth_token") == token:
            return account
    return None


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _fault(fault: dict[str, Any] | None, request: web.Request) -> web.Response | None:
    """The refusal an injected fault causes (a ``provider_error`` with ``after_accept`` is
    accepted and then reported by a ``failed`` callback)."""
    if fault is None or fault.get("after_accept"):
        return None
    kind = fault["kind"]
    if kind == "drop_connection":
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("emulated dropped connection")
    if kind == "rate_limit":
        return _status(12)
    if kind == "provider_error":
        return _status(int(fault.get("code", 12)), fault.get("message"))
    return web.Response(status=int(fault.get("status", 500)), text="Internal Server Error")


def webhook_url(state: EmulatorState, app: web.Application, account: ChannelAccount) -> str:
    """Where this bot's callbacks go: the URL set with set_webhook, else the hub's route for it."""
    return app[WEBHOOKS].get(account.id) or f"{state.hub_url}/webhooks/viber/{account.id}"


async def _callback(state: EmulatorState, account: ChannelAccount, url: str, payload: dict[str, Any]) -> int:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, account.credentials["auth_token"])}
    return await state.post(url, body, headers)


async def send_message(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    data = await _body(request)
    if data is None:
        return _status(3)
    account = _account(request, state, data)
    if account is None:
        return _status(2)
    receiver = data.get("receiver")
    sender = data.get("sender")
    kind = data.get("type")
    if not receiver or not isinstance(sender, dict) or not kind:
        return _status(4)
    if kind not in _SEND_TYPES or not sender.get("name") or len(str(sender["name"])) > 28:
        return _status(3)
    if kind == "text" and not data.get("text"):
        return _status(4)
    if kind in ("picture", "video", "file", "url") and not data.get("media"):
        return _status(4)
    fault = state.next_fault(account.id)
    refusal = _fault(fault, request)
    if refusal is not None:
        return refusal
    customer = state.customers.get((account.id, str(receiver)))
    if customer is None or not customer.subscribed:
        return _status(6)
    token = next(_TOKENS)
    body = {k: v for k, v in data.items() if k not in ("auth_token", "receiver")}
    state.record_sent(account.id, str(receiver), str(kind), body, str(token))
    url = webhook_url(state, request.app, account)
    failure = str(fault.get("message") or "failure description") if fault is not None else None
    state.schedule(_receipts(state, account, url, str(receiver), token, failure))
    return _status(0, message_token=token, chat_hostname=_HOSTNAME, billing_status=1)


async def _receipts(
    state: EmulatorState, account: ChannelAccount, url: str, user_id: str, token: int, failure: str | None = None
) -> None:
    record = state.find_sent(str(token))
    for event in ("failed",) if failure else ("delivered", "seen"):
        payload: dict[str, Any] = {
            "event": event,
            "timestamp": _millis(state),
            "chat_hostname": _HOSTNAME,
            "message_token": token,
            "user_id": user_id,
        }
        if failure:
            payload["desc"] = failure
        await _callback(state, account, url, payload)
        if record is not None:
            record.status = event


async def set_webhook(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    data = await _body(request)
    if data is None:
        return _status(3)
    account = _account(request, state, data)
    if account is None:
        return _status(2)
    url = data.get("url")
    if url is None:
        return _status(4)
    if url == "":
        request.app[WEBHOOKS].pop(account.id, None)
        return _status(0)
    if not str(url).startswith(("http://", "https://")):
        return _status(1, "invalidUrl")
    payload = {"event": "webhook", "timestamp": _millis(state), "chat_hostname": _HOSTNAME}
    payload["message_token"] = next(_TOKENS)
    try:
        answer = await _callback(state, account, str(url), payload)
    except OSError:
        answer = 0
    if answer != 200:
        return _status(1, f"Failed to set webhook: the URL answered {answer or 'nothing'}")
    request.app[WEBHOOKS][account.id] = str(url)
    return _status(0, event_types=list(data.get("event_types") or EVENT_TYPES))


async def get_account_info(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    data = await _body(request)
    account = _account(request, state, data or {})
    if account is None:
        return _status(2)
    subscribers = sum(1 for c in state.customers.values() if c.account_id == account.id and c.subscribed)
    return _status(
        0,
        id=f"pa:{account.id}",
        name=account.credentials.get("name", account.id),
        uri=account.id,
        icon=account.credentials.get("avatar", ""),
        category="Business",
        country="CZ",
        webhook=request.app[WEBHOOKS].get(account.id, ""),
        event_types=list(EVENT_TYPES),
        subscribers_count=subscribers,
        members=[],
    )


async def get_user_details(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    data = await _body(request)
    if data is None:
        return _status(3)
    account = _account(request, state, data)
    if account is None:
        return _status(2)
    user_id = data.get("id")
    if not user_id:
        return _status(4)
    customer = state.customers.get((account.id, str(user_id)))
    if customer is None:
        return _status(5)
    user = {
        "id": customer.external_id,
        "name": customer.name or "Viber user",
        "avatar": f"https://avatar.example.invalid/{account.id}/{len(customer.external_id)}.jpg",
        "country": "CZ",
        "language": "cs",
        "primary_device_os": "Android 14",
        "api_version": 10,
        "viber_version": "22.1.0",
        "mcc": 230,
        "mnc": 3,
        "device_type": "emulator",
    }
    return _status(0, message_token=next(_TOKENS), user=user)


def setup(app: web.Application, state: EmulatorState) -> None:
    app[WEBHOOKS] = {}
    app.router.add_post(PREFIX + "/send_message", send_message)
    app.router.add_post(PREFIX + "/set_webhook", set_webhook)
    app.router.add_post(PREFIX + "/get_account_info", get_account_info)
    app.router.add_post(PREFIX + "/get_user_details", get_user_details)


_MEDIA_TYPES = {"picture": "jpg", "video": "mp4", "file": "pdf"}
_EVENTS = ("subscribed", "unsubscribed", "conversation_started")  # kinds that are Viber events, not messages


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
    """A Viber user writes to the bot (or subscribes, unsubscribes, opens the chat): a signed callback.

    ``kind``: text, picture (also ``image``), video, file, sticker, contact, location,
    url; or the events subscribed, unsubscribed, conversation_started. ``payload`` presses a keyboard button:
    Viber sends its payload as the text.
    """
    kind = {"image": "picture"}.get(kind, kind)
    if kind == "text" and extra.get("payload"):
        text = str(extra["payload"])  # a pressed reply button sends its ActionBody as the text
    token = next(_TOKENS)
    at = _millis(state)
    remembered = state.customer(account.id, customer)
    user = {
        "id": customer,
        "name": name or remembered.name or "Viber user",
        "avatar": str(extra.get("avatar") or f"https://avatar.example.invalid/{account.id}/{len(customer)}.jpg"),
        "country": "CZ",
        "language": "cs",
        "api_version": 10,
    }
    base = {"timestamp": at, "chat_hostname": "SN-376_", "message_token": token}
    payload: dict[str, Any]
    if kind == "subscribed":
        payload = {"event": "subscribed", **base, "user": user}
    elif kind == "unsubscribed":
        payload = {"event": "unsubscribed", **base, "user_id": customer}
    elif kind == "conversation_started":
        payload = {
            "event": "conversation_started",
            **base,
            "type": "open",
            "context": str(extra.get("context") or ""),
            "user": user,
            "subscribed": remembered.subscribed,
        }
    else:
        payload = {"event": "message", **base, "sender": user, "message": _message(kind, text, media_url, extra)}
        payload["silent"] = False
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, account.credentials["auth_token"])}
    status = await state.post_to_hub(f"/webhooks/viber/{account.id}", body, headers, repeat=repeat)
    if kind == "unsubscribed":
        remembered.subscribed = False
    elif kind == "subscribed":
        remembered.subscribed = True
        remembered.name = name or remembered.name
    elif kind != "conversation_started":
        state.record_inbound(account.id, customer, state.clock(), name)
    return {"status": status, "provider_message_id": str(token)}


def _message(kind: str, text: str | None, media_url: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    if kind == "text":
        if not text:
            raise ValueError("a text message needs text")
        return {"type": "text", "text": text}
    if kind in _MEDIA_TYPES:
        media = media_url or f"https://dl-media.viber.com/emulated/file.{_MEDIA_TYPES[kind]}"
        message: dict[str, Any] = {"type": kind, "media": media, "text": text or ""}
        if kind == "picture":
            message["thumbnail"] = media
        message["file_name"] = str(extra.get("file_name") or media.rsplit("/", 1)[-1])
        message["file_size"] = int(extra.get("file_size") or 123456)
        if kind == "video":
            message["size"] = message["file_size"]
            message["duration"] = int(extra.get("duration") or 12)
        return message
    if kind == "sticker":
        return {"type": "sticker", "sticker_id": int(extra.get("sticker_id") or 40100), "media": media_url or ""}
    if kind == "contact":
        contact = {
            "name": str(extra.get("contact_name") or text or "Jane"),
            "phone_number": str(extra.get("phone") or "+420777000111"),
        }
        return {"type": "contact", "contact": contact}
    if kind == "location":
        point = {"lat": float(extra.get("latitude", 50.0875)), "lon": float(extra.get("longitude", 14.4213))}
        return {"type": "location", "location": point}
    if kind == "url":
        return {"type": "url", "media": media_url or text or "https://example.com"}
    known = ", ".join(("text", *_MEDIA_TYPES, "sticker", "contact", "location", "url", *_EVENTS))
    raise ValueError(f"unknown kind {kind!r} for Viber; it plays {known} (a button sends its payload as text)")
