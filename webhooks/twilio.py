"""Twilio's webhooks for WhatsApp: inbound messages and status callbacks.

Thin: read the body, find the account by our number (``To`` inbound, ``From`` on
status callbacks), check ``X-Twilio-Signature`` against the public URL Twilio
called (``server.public_url`` + path + query: behind a proxy the local URL is
not what Twilio signed), parse, store, and only then answer.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from adapters.twilio_whatsapp import MAX_FORM_BYTES, STATUS_CALLBACK_PATH, TwilioWhatsAppAdapter, adapter_for_delivery
from hub.app import Hub
from hub.errors import PayloadMalformed
from hub.ingest import IngestResult
from hub.model import Channel
from hub.ports import ChannelAdapter
from webhooks._common import (
    acknowledge,
    adapter_errors,
    adapters_for,
    hub_of,
    ingest,
    install,
    keep_unusable,
    read_body,
)
from webhooks._store_limits import fit_to_store

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
    public_url = hub_of(request.app).settings.server.public_url.rstrip("/")
    with adapter_errors():
        adapter = adapter_for_delivery(_adapters(request.app), body)
        adapter.verify(public_url + request.raw_path, request.headers, body)
        try:
            events = fit_to_store(adapter.parse(body, request.headers))
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


def setup(app: web.Application, hub: Hub) -> None:
    install(app, hub)
    app.router.add_post(INBOUND_PATH, inbound)
    app.router.add_post(STATUS_PATH, status)
    url = hub.settings.server.public_url.rstrip("/") + STATUS_PATH

    def tell_where_statuses_go(adapters: Mapping[str, ChannelAdapter]) -> None:
        """Each Twilio adapter's status callback URL, set before the hub's delivery workers send anything."""
        for adapter in adapters.values():
            if isinstance(adapter, TwilioWhatsAppAdapter):
                adapter.status_callback_url = url

    hub.configure_adapters(tell_where_statuses_go)
