"""Viber's callbacks, one URL per bot: ``/webhooks/viber/{account_id}``.

Viber signs with the bot's own token and does not say which bot a callback is
for, so the account is in the path (``channelhub channels connect viber``
registers exactly this URL). Names and avatars missing from a callback are
fetched with ``get_user_details`` after the acknowledgement, never before it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web

from adapters.viber import ViberAdapter
from hub.app import Hub
from hub.errors import PayloadMalformed
from hub.model import Channel, InboundEvent, InboundMessage, SubscriptionChanged
from hub.store import store_profile
from webhooks._common import (
    WebhookError,
    acknowledge,
    adapter_errors,
    hub_of,
    ingest,
    install,
    keep_unusable,
    read_body,
    rejected,
    run_after_response,
)
from webhooks._store_limits import fit_profile, fit_to_store

__all__ = ["PATH", "setup", "webhook_path"]

logger = logging.getLogger(__name__)

PATH = "/webhooks/viber/{account_id}"
#: Viber's callbacks are small JSON objects (a text is at most 7,000 characters); a generous bound
MAX_BODY_BYTES = 256 * 1024
_ASKED: web.AppKey[set[tuple[str, str]]] = web.AppKey("webhooks.viber.asked")
_ASKED_LIMIT = 100_000


def webhook_path(account_id: str) -> str:
    return PATH.format(account_id=account_id)


async def callback(request: web.Request) -> web.Response:
    account_id = request.match_info["account_id"]
    hub = hub_of(request.app)
    adapter = hub.adapters.get(account_id)
    if not isinstance(adapter, ViberAdapter):
        logger.warning("viber callback for an account that is not configured", extra={"account": account_id})
        raise WebhookError(404, "unknown_account", f"no Viber account {account_id!r} is configured")
    body = await read_body(request, MAX_BODY_BYTES)
    public_url = hub.settings.server.public_url.rstrip("/")
    with adapter_errors():
        adapter.verify(public_url + request.raw_path, request.headers, body)
        try:
            events = fit_to_store(adapter.parse(body, request.headers))
        except PayloadMalformed as exc:  # signed, and never usable: a dead letter, not a retry
            await keep_unusable(request, channel=Channel.VIBER, account_id=adapter.account.id, error=exc, body=body)
            return rejected()
    result = await ingest(request, events)
    _enrich_later(request.app, adapter, events)
    if any(isinstance(e, SubscriptionChanged) for e in events):
        # the body of an answer to conversation_started would be shown as a welcome message
        return web.Response(status=200)
    return acknowledge(result)


def _enrich_later(app: web.Application, adapter: ViberAdapter, events: Sequence[InboundEvent]) -> None:
    """Ask Viber for a name/avatar the callback left out, once per user per process (it is rate-limited)."""
    asked = app[_ASKED]
    for event in events:
        if isinstance(event, InboundMessage):
            user_id, complete = event.sender_id, bool(event.sender_name and event.sender_avatar)
        elif isinstance(event, SubscriptionChanged) and event.display_name is None:
            user_id, complete = event.user_id, False
        else:
            continue
        key = (adapter.account.id, user_id)
        if complete or key in asked:
            continue
        if len(asked) >= _ASKED_LIMIT:
            asked.clear()  # bounded memory; a user may then be looked up once more
        asked.add(key)
        run_after_response(app, _enrich(app, adapter, user_id))


async def _enrich(app: web.Application, adapter: ViberAdapter, user_id: str) -> None:
    update = await adapter.user_details(user_id)
    await store_profile(hub_of(app).store, fit_profile(update))


def setup(app: web.Application, hub: Hub) -> None:
    install(app, hub)
    app[_ASKED] = set()
    app.router.add_post(PATH, callback)
