"""``GET``/``POST /webhooks/whatsapp``: WhatsApp Cloud API messages and statuses.

One endpoint for every configured business number (``metadata.phone_number_id``);
``X-Hub-Signature-256`` is checked against the numbers' app secrets before the
body is read as JSON, and the 200 goes out only once the events are stored.
"""

from __future__ import annotations

import logging

from aiohttp import web

from adapters._graph import handshake_challenge
from adapters.whatsapp_cloud import WhatsAppCloudAdapter, parse_delivery
from hub.app import Hub
from hub.errors import PayloadMalformed, SignatureInvalid
from hub.model import Channel
from webhooks._common import (
    WebhookError,
    acknowledge,
    adapter_errors,
    adapters_for,
    hub_of,
    ingest,
    install,
    keep_unusable,
    read_body,
    rejected,
    verified_adapters,
)
from webhooks._store_limits import fit_to_store

__all__ = ["setup"]

logger = logging.getLogger(__name__)

ROUTE = "/webhooks/whatsapp"
ADAPTER_NAME = "whatsapp.cloud"


def setup(app: web.Application, hub: Hub) -> None:
    install(app, hub)
    app.router.add_get(ROUTE, verify_whatsapp_subscription)
    app.router.add_post(ROUTE, receive_whatsapp_webhook)


async def verify_whatsapp_subscription(request: web.Request) -> web.Response:
    """Meta's subscription handshake: echo ``hub.challenge`` for a configured verify token."""
    accounts = hub_of(request.app).settings.accounts
    tokens = [a.credentials["verify_token"] for a in accounts if a.adapter_name == ADAPTER_NAME]
    challenge = handshake_challenge(request.query, tokens)
    if challenge is None:
        raise WebhookError(
            403, "verification_failed", "hub.mode or hub.verify_token does not match a configured number"
        )
    return web.Response(text=challenge, content_type="text/plain")


async def receive_whatsapp_webhook(request: web.Request) -> web.Response:
    body = await read_body(request)
    adapters = [a for a in adapters_for(request.app, ADAPTER_NAME) if isinstance(a, WhatsAppCloudAdapter)]
    with adapter_errors():
        trusted = {a.account.id for a in verified_adapters(adapters, request, body)}
        try:
            events = fit_to_store(parse_delivery(body, {a.phone_number_id: a for a in adapters}))
        except PayloadMalformed as exc:  # signed, and never usable: a dead letter, not a retry
            account = next(iter(trusted)) if len(trusted) == 1 else None
            await keep_unusable(request, channel=Channel.WHATSAPP, account_id=account, error=exc, body=body)
            return rejected()
        if any(event.account_id not in trusted for event in events):
            raise SignatureInvalid("the delivery is not signed with that number's app secret")
    result = await ingest(request, events)
    return acknowledge(result)
