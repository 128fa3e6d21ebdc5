"""Admin work on the outgoing webhooks: list, create, change, delete, resume an integration; read its
deliveries with their attempts; replay one. For the API and the console alike; admins only.

Every change is recorded in the audit log (``webhook_out.*``, hub/audit.py) without the secret (a change of it is
``secret_changed``) and with the URL cut to its scheme, host and path (its user, password and query may carry
the receiver's credentials).

Integrations defined in the configuration (``[[webhooks_out]]``) are the configuration's: admins may
resume them and replay their deliveries, but change or delete them only there.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hub.audit import record
from hub.errors import ConfigError, Conflict, Invalid, NotFound
from hub.model import Role
from hub.store.catalogue import load_queues
from hub.store.webhooks_out import (
    Delivery,
    Subscription,
    create_subscription,
    delete_subscription,
    get_subscription,
    list_deliveries,
    list_subscriptions,
    replay_delivery,
    resume_subscription,
    update_subscription,
)
from hub.usecases._parts import HubParts
from hub.usecases.permissions import require_role
from hub.usecases.principal import Principal
from hub.webhooks_out_config import (
    check_events,
    check_pause_after,
    check_queues,
    check_secret,
    check_url,
    parse_webhooks_out,
)

__all__ = [
    "Created",
    "Delivery",
    "Subscription",
    "WebhookDraft",
    "create",
    "delete",
    "deliveries",
    "list_all",
    "replay",
    "resume",
    "show",
    "update",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookDraft:
    """What an admin sends; ``secret`` None on create: the hub makes one and shows it once."""

    id: str | None = None
    url: str | None = None
    secret: str | None = None
    events: Any = None
    queues: Any = None
    pause_after: Any = None
    given: frozenset[str] = frozenset()  # the fields present in the request (on update)


@dataclass(frozen=True, slots=True, kw_only=True)
class Created:
    """A new integration, with its signing secret (shown this once)."""

    subscription: Subscription
    secret: str


def _invalid(exc: ConfigError) -> Invalid:
    field = exc.key.rsplit(".", 1)[-1]
    return Invalid("invalid_field", f"'{field}' {exc.problem}", field=field)


async def _known_queues(hub: HubParts) -> set[str]:
    async with hub.store.read() as connection:
        return set(await load_queues(connection))


async def _found(hub: HubParts, webhook_id: str) -> Subscription:
    found = await get_subscription(hub.store, webhook_id)
    if found is None:
        raise NotFound("not_found", f"no outgoing webhook {webhook_id!r}")
    return found


def new_secret() -> str:
    """A fresh Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def list_all(hub: HubParts, actor: Principal) -> list[Subscription]:
    require_role(actor, Role.ADMIN)
    return await list_subscriptions(hub.store)


async def show(hub: HubParts, actor: Principal, webhook_id: str) -> Subscription:
    require_role(actor, Role.ADMIN)
    return await _found(hub, webhook_id)


async def create(hub: HubParts, actor: Principal, draft: WebhookDraft) -> Created:
    """A new integration. Invalid ``invalid_field`` naming the field; Conflict ``webhook_exists``."""
    require_role(actor, Role.ADMIN)
    try:
        secret = draft.secret if draft.secret is not None else new_secret()
        entry: dict[str, Any] = {"id": draft.id, "url": draft.url, "secret": secret, "events": draft.events}
        if draft.queues is not None:
            entry["queues"] = draft.queues
        if draft.pause_after is not None:
            entry["pause_after"] = draft.pause_after
        (hook,) = parse_webhooks_out([{k: v for k, v in entry.items() if v is not None}], await _known_queues(hub))
    except ConfigError as exc:
        raise _invalid(exc) from None
    created = await create_subscription(hub.store, hook, now=hub.clock())
    if created is None:
        raise Conflict("webhook_exists", f"an outgoing webhook {hook.id!r} exists already")
    await _audit(hub, actor, "webhook_out.created", created.id, after=_audited(created))
    _deliver_now(hub)
    return Created(subscription=created, secret=hook.secret)


def _bare_url(url: str) -> str:
    """``url`` without what may be a credential: its user and password, query and fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _audited(subscription: Subscription) -> dict[str, Any]:
    """What the audit log keeps of an integration: never its secret, the URL without credentials."""
    return {
        "url": _bare_url(subscription.url),
        "events": list(subscription.events),
        "queues": list(subscription.queues) if subscription.queues is not None else None,
        "pause_after": subscription.pause_after,
        "paused": subscription.paused_at is not None,
    }


async def _audit(
    hub: HubParts,
    actor: Principal,
    action: str,
    webhook_id: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    await record(
        hub.store, action, actor=actor, at=hub.clock(), target=f"webhook_out:{webhook_id}", before=before, after=after
    )


def _deliver_now(hub: HubParts) -> None:
    """A running hub's dispatcher looks at once (another process's within its ``poll_seconds``)."""
    if hub.webhooks_out is not None:
        hub.webhooks_out.kick()


def _not_configured(found: Subscription) -> None:
    if found.source == "config":
        raise Conflict(
            "defined_in_config", f"outgoing webhook {found.id!r} is defined in the configuration; change it there"
        )


async def update(hub: HubParts, actor: Principal, webhook_id: str, draft: WebhookDraft) -> Subscription:
    """Change the fields given; ``queues`` null widens it to every queue."""
    require_role(actor, Role.ADMIN)
    current = await _found(hub, webhook_id)
    _not_configured(current)
    fields: dict[str, Any] = {}
    try:
        if "url" in draft.given:
            fields["url"] = check_url(draft.url if isinstance(draft.url, str) else "", "webhooks_out.url")
        if "secret" in draft.given:
            fields["secret"] = check_secret(
                draft.secret if isinstance(draft.secret, str) else "", "webhooks_out.secret"
            )
        if "events" in draft.given:
            fields["events"] = list(check_events(draft.events, "webhooks_out.events"))
        if "queues" in draft.given:
            fields["queues"] = (
                None
                if draft.queues is None
                else list(check_queues(draft.queues, "webhooks_out.queues", await _known_queues(hub)))
            )
        if "pause_after" in draft.given:
            fields["pause_after"] = check_pause_after(draft.pause_after, "webhooks_out.pause_after")
    except ConfigError as exc:
        raise _invalid(exc) from None
    changed = await update_subscription(hub.store, webhook_id, fields, now=hub.clock())
    if changed is None:
        raise NotFound("not_found", f"no outgoing webhook {webhook_id!r}")
    after = _audited(changed) | ({"secret_changed": True} if "secret" in fields else {})
    await _audit(hub, actor, "webhook_out.updated", webhook_id, before=_audited(current), after=after)
    _deliver_now(hub)
    return changed


async def delete(hub: HubParts, actor: Principal, webhook_id: str) -> None:
    """Remove an admin-created integration with its deliveries."""
    require_role(actor, Role.ADMIN)
    current = await _found(hub, webhook_id)
    _not_configured(current)
    if not await delete_subscription(hub.store, webhook_id):
        raise NotFound("not_found", f"no outgoing webhook {webhook_id!r}")
    await _audit(hub, actor, "webhook_out.deleted", webhook_id, before=_audited(current))


async def resume(hub: HubParts, actor: Principal, webhook_id: str) -> Subscription:
    """Deliver to a paused integration again; what waited is due at once (idempotent when not paused)."""
    require_role(actor, Role.ADMIN)
    current = await _found(hub, webhook_id)
    resumed = await resume_subscription(hub.store, webhook_id, now=hub.clock())
    if resumed is None:
        raise NotFound("not_found", f"no outgoing webhook {webhook_id!r}")
    if current.paused_at is not None:
        await _audit(hub, actor, "webhook_out.resumed", webhook_id, before={"paused_reason": current.paused_reason})
    _deliver_now(hub)
    return resumed


async def deliveries(
    hub: HubParts, actor: Principal, webhook_id: str, *, before: int | None, limit: int
) -> tuple[list[Delivery], int | None]:
    """A page of deliveries, newest first, with their attempts; the cursor of the next page."""
    require_role(actor, Role.ADMIN)
    await _found(hub, webhook_id)
    return await list_deliveries(hub.store, webhook_id, before=before, limit=limit)


async def replay(hub: HubParts, actor: Principal, webhook_id: str, delivery_id: int) -> Delivery:
    """Send a delivery again, with the same ``webhook-id`` and body."""
    require_role(actor, Role.ADMIN)
    await _found(hub, webhook_id)
    replayed = await replay_delivery(hub.store, webhook_id, delivery_id, now=hub.clock())
    if replayed is None:
        raise NotFound("not_found", f"outgoing webhook {webhook_id!r} has no delivery {delivery_id}")
    await _audit(hub, actor, "webhook_out.replayed", webhook_id, after={"delivery": delivery_id})
    _deliver_now(hub)
    return replayed
