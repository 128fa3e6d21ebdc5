"""Calendar actions: an agent's own follow-ups (create, edit, delete, list) and their iCalendar feed.

An event belongs to the agent who made it; nobody else reads or changes it (another agent's event is
"not found"). An event may name the conversation or ticket it follows up; a conversation must be one
the agent may see. When the customer behind it could not receive free text at ``starts_at`` (their
messaging window will have closed by then, by hub.policy's rules), the outcome carries a warning.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.errors import Invalid, NotFound
from hub.outbox import facts_for
from hub.policy import TemplateOption, eligibility
from hub.store.calendar import (
    create_event,
    delete_event,
    feed_agent,
    feed_token,
    get_event,
    identities_of_event,
    list_events,
    set_feed_token,
    update_event,
)
from hub.store.messages import load_identity
from hub.store.templates import list_templates
from hub.usecases._parts import HubParts
from hub.usecases._store_refusals import store_refusals
from hub.usecases.access import conversation_for
from hub.usecases.principal import Principal

__all__ = [
    "Scheduled",
    "create",
    "delete",
    "events",
    "events_of",
    "feed_owner",
    "feed_secret",
    "update",
    "window_warnings",
]

WINDOW_CLOSED = "window_closed"  # the warning's code


@dataclass(frozen=True, slots=True)
class Scheduled:
    """The event as stored, and what the agent should know about it (``warnings``: code, message, ...)."""

    event: Mapping[str, Any]
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.event, "warnings": self.warnings}


def _no_event(event_id: int) -> NotFound:
    return NotFound("not_found", f"no event {event_id}")


def _check_times(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at < starts_at:
        raise Invalid("ends_before_start", "'ends_at' must not be before 'starts_at'", field="ends_at")


async def _check_conversation(hub: HubParts, actor: Principal, fields: Mapping[str, Any]) -> None:
    conversation_id = fields.get("conversation_id")
    if conversation_id is not None:
        await conversation_for(hub.store, actor, conversation_id, act=False)


async def window_warnings(hub: HubParts, event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One warning per customer of the event who could not be sent free text at its start."""
    warnings: list[dict[str, Any]] = []
    identity_ids = await identities_of_event(hub.store, event["conversation"], event["ticket"])
    if not identity_ids:
        return warnings
    options = [TemplateOption(name=t.name, tag=t.tag) for t in await list_templates(hub.store)]
    starts_at: datetime = event["starts_at"]
    for identity_id in identity_ids:
        identity = await load_identity(hub.store, identity_id)
        if identity is None:
            continue
        try:
            provider = hub.settings.account(identity.account_id).provider
        except KeyError:
            continue  # an account no longer configured: nothing can be sent at all, said when sending
        allowed = eligibility(facts_for(identity, provider), starts_at, options)
        if allowed.free_text:
            continue
        closed_at = allowed.window_closed_at
        warnings.append(
            {
                "code": WINDOW_CLOSED,
                "message": "the customer's messaging window will be closed at that time; "
                "only a template or a tag will be allowed then",
                "identity": identity.id,
                "rule": allowed.blocking.rule if allowed.blocking else None,
                "window_closed_at": closed_at,
            }
        )
    return warnings


async def create(hub: HubParts, actor: Principal, fields: Mapping[str, Any]) -> Scheduled:
    """A new event of the actor's; Invalid when it names a ticket that does not exist."""
    _check_times(fields.get("starts_at"), fields.get("ends_at"))
    await _check_conversation(hub, actor, fields)
    with store_refusals():
        event = await create_event(hub.store, actor.agent_id(), fields, hub.clock())
    return Scheduled(event, await window_warnings(hub, event))


async def update(hub: HubParts, actor: Principal, event_id: int, fields: Mapping[str, Any]) -> Scheduled:
    """The given fields replace the stored ones (the warnings are those of the event as it is now)."""
    current = await get_event(hub.store, actor.agent_id(), event_id)
    if current is None:
        raise _no_event(event_id)
    _check_times(fields.get("starts_at", current["starts_at"]), fields.get("ends_at", current["ends_at"]))
    await _check_conversation(hub, actor, fields)
    with store_refusals():
        event = await update_event(hub.store, actor.agent_id(), event_id, fields, hub.clock())
    if event is None:
        raise _no_event(event_id)
    return Scheduled(event, await window_warnings(hub, event))


async def delete(hub: HubParts, actor: Principal, event_id: int) -> None:
    if not await delete_event(hub.store, actor.agent_id(), event_id):
        raise _no_event(event_id)


async def events(
    hub: HubParts, actor: Principal, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """The actor's events starting in ``[start, end)``, earliest first."""
    if start is not None and end is not None and end < start:
        raise Invalid("invalid_query", "'to' must not be before 'from'", field="to")
    return await list_events(hub.store, actor.agent_id(), start=start, end=end)


async def feed_secret(hub: HubParts, actor: Principal, *, rotate: bool = False) -> str:
    """The secret of the actor's feed URL: made on first use, replaced (the old URL stops working) on ``rotate``."""
    agent_id = actor.agent_id()
    if not rotate:
        current = await feed_token(hub.store, agent_id)
        if current is not None:
            return current
    return await set_feed_token(hub.store, agent_id, secrets.token_urlsafe(32), hub.clock(), replace=rotate)


async def feed_owner(hub: HubParts, token: str) -> int:
    """The agent whose feed ``token`` opens; NotFound for a token that opens nothing (or an old one)."""
    agent_id = await feed_agent(hub.store, token) if 0 < len(token) <= 64 else None
    if agent_id is None:
        raise NotFound("not_found", "no such calendar feed")
    return agent_id


async def events_of(hub: HubParts, agent_id: int, start: datetime) -> list[dict[str, Any]]:
    """The events of the agent whose feed is read (the feed's secret stood for the agent: no principal)."""
    return await list_events(hub.store, agent_id, start=start, limit=2000)
