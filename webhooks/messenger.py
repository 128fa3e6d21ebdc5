"""``GET``/``POST /webhooks/messenger``: one endpoint for every configured Facebook page.

Thin on purpose: read the raw body, check ``X-Hub-Signature-256`` against the
configured pages' app secrets before reading anything, parse, store, and only
then answer 200. Profile enrichment runs after the acknowledgement.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from aiohttp import web

from adapters._graph import handshake_challenge
from adapters.messenger import MessengerAdapter, parse_delivery
from hub.app import Hub
from hub.errors import PayloadMalformed, SignatureInvalid
from hub.model import Channel, InboundEvent, InboundMessage
from hub.store import Store, store_profile
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
    run_after_response,
    verified_adapters,
)
from webhooks._store_limits import fit_profile, fit_to_store

__all__ = ["setup"]

logger = logging.getLogger(__name__)

ROUTE = "/webhooks/messenger"
ADAPTER_NAME = "messenger"
_PROFILED_MAX = 10_000  # customers whose profile this process already asked for

PROFILED: web.AppKey[OrderedDict[tuple[str, str], None]] = web.AppKey("webhooks.messenger.profiled")


def setup(app: web.Application, hub: Hub) -> None:
    install(app, hub)
    app[PROFILED] = OrderedDict()
    app.router.add_get(ROUTE, verify_messenger_subscription)
    app.router.add_post(ROUTE, receive_messenger_webhook)


async def verify_messenger_subscription(request: web.Request) -> web.Response:
    """Meta's subscription handshake: echo ``hub.challenge`` for a configured verify token."""
    accounts = hub_of(request.app).settings.accounts
    tokens = [a.credentials["verify_token"] for a in accounts if a.adapter_name == ADAPTER_NAME]
    challenge = handshake_challenge(request.query, tokens)
    if challenge is None:
        raise WebhookError(403, "verification_failed", "hub.mode or hub.verify_token does not match a configured page")
    return web.Response(text=challenge, content_type="text/plain")


def _messenger_adapters(app: web.Application) -> list[MessengerAdapter]:
    return [a for a in adapters_for(app, ADAPTER_NAME) if isinstance(a, MessengerAdapter)]


async def receive_messenger_webhook(request: web.Request) -> web.Response:
    body = await read_body(request)
    adapters = _messenger_adapters(request.app)
    with adapter_errors():
        trusted = {a.account.id for a in verified_adapters(adapters, request, body)}
        try:
            events = fit_to_store(parse_delivery(body, {a.page_id: a for a in adapters}))
        except PayloadMalformed as exc:  # signed, and never usable: a dead letter, not a retry
            account = next(iter(trusted)) if len(trusted) == 1 else None
            await keep_unusable(request, channel=Channel.MESSENGER, account_id=account, error=exc, body=body)
            return rejected()
        if any(event.account_id not in trusted for event in events):
            raise SignatureInvalid("the delivery is not signed with that page's app secret")
    result = await ingest(request, events)
    if result.stored:
        _enrich_profiles(request.app, adapters, events)
    return acknowledge(result)


def _enrich_profiles(app: web.Application, adapters: list[MessengerAdapter], events: list[InboundEvent]) -> None:
    """Ask the user profile API once per new customer; never before the 200 is sent."""
    by_account = {a.account.id: a for a in adapters}
    profiled = app[PROFILED]
    for event in events:
        if not isinstance(event, InboundMessage) or event.sender_name:
            continue
        key = (event.account_id, event.sender_id)
        if key in profiled:
            continue
        profiled[key] = None
        if len(profiled) > _PROFILED_MAX:
            profiled.popitem(last=False)
        run_after_response(app, _fetch_profile(by_account[event.account_id], event.sender_id, hub_of(app).store))


async def _fetch_profile(adapter: MessengerAdapter, psid: str, store: Store) -> None:
    update = await adapter.profile(psid)
    if update is not None:
        await store_profile(store, fit_profile(update))
