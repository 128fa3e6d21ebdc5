"""Twilio's webhooks for WhatsApp: inbound messages and status callbacks.

Thin: read the body, find the account by our number (``To`` inbound, ``From`` on
status callbacks), check ``X-Twilio-Signature`` against the public URL Twilio
called (``server.public_url`` + path + query: behind a proxy the local URL is
not what Twilio signed), parse, store, and only then answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from adapters.twilio_whatsapp import MAX_FORM_BYTES, STATUS_CALLBACK_PATH, TwilioWhatsAppAdapter, adapter_for_delivery
from hub.api.keys import SETTINGS
from hub.errors import PayloadMalformed
from hub.ingest import IngestResult
from hub.model import Channel
from webhooks._common import acknowledge, adapter_errors, adapters_for, ingest, keep_unusable, read_body

__all__ = ["INBOUND_PATH", "STATUS_PATH", "setup"]

INBOUND_PATH = "/webhooks/twilio"
STATUS_PATH = STATUS_CALLBACK_PATH
_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _adapters(app: web.Application) -> list[TwilioWhatsAppAdapter]:
    return [a for a in adapters_for(app, "whatsapp.twilio") if isinstance(a, TwilioWhatsAppAdapter)]


async def _receive(request: web.Request) -> IngestResult | None:
    """Verify, parse and store one delivery; None when there was nothing to keep (or it was kept as a
    dead letter: signed but never usable; Twilio gets its 200 all the same).

    Before the signature is known the request costs at most ``MAX_FORM_BYTES`` read and a form of at
    most ``MAX_FORM_FIELDS`` fields parsed (413 / 400 ``too_many_fields`` beyond them)."""
    body = await read_body(request, MAX_FORM_BYTES)
    public_url = request.app[SETTINGS].server.public_url.rstrip("/")
    with adapter_errors():
        adapter = adapter_for_delivery(_adapters(request.app), body)
        adapter.verify(public_url + request.raw_path, request.headers, body)
        try:
            events = adapter.parse(body, request.headers)
        except PayloadMalformed as exc:
            await keep_unusable(request, channel=Channel.WHATSAPP, account_id=adapter.account.id, error=exc, body=body)
            return None
    if not events:
        return None  # a status before "sent": the message is still on Twilio's side
    return await ingest(request, events)


async def inbound(request: web.Request) -> web.Response:
    """A customer wrote; the answer is empty TwiML (replies go through the REST API)."""
    await _receive(request)
    return web.Response(text=_EMPTY_TWIML, content_type="text/xml")


async def status(request: web.Request) -> web.Response:
    """A message we sent moved on (sent, delivered, read, failed)."""
    result = await _receive(request)
    return acknowledge(result or IngestResult(stored=0, duplicates=0, updated=0, ignored=()))


async def _status_callbacks(app: web.Application) -> AsyncIterator[None]:
    """Tell each Twilio adapter where its status callbacks go, once the adapters exist.

    Runs after the server's adapter context (webhook setup comes after it) and
    before any extension's workers start sending.
    """
    url = app[SETTINGS].server.public_url.rstrip("/") + STATUS_PATH
    for adapter in _adapters(app):
        adapter.status_callback_url = url
    yield


def setup(app: web.Application) -> None:
    app.router.add_post(INBOUND_PATH, inbound)
    app.router.add_post(STATUS_PATH, status)
    app.cleanup_ctx.append(_status_callbacks)
