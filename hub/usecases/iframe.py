"""The "Page in iframe" widget: the URL of a conversation's page, built on the server.

Whoever may see the conversation may ask. The template and its allowed hosts come from the
configuration file's ``[[queues]]`` (hub.settings), the values from the conversation as the API
shows it; fields a bot collected in the conversation (a ``variables`` mapping on the view, where
the bots feature provides one) fill ``{bot.NAME}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.errors import Invalid, NotFound
from hub.iframe import BOT_PREFIX, IframeRefused, build_iframe_url
from hub.store.conversations import conversation_view
from hub.usecases._parts import HubParts
from hub.usecases.access import conversation_for
from hub.usecases.principal import Principal

__all__ = ["iframe_url", "iframe_values", "queues_with_pages"]


def iframe_values(view: Mapping[str, Any]) -> dict[str, object]:
    """The variables a template may name, from a conversation as the API shows it."""
    identity = view.get("identity") or {}
    contact = view.get("contact") or {}
    values: dict[str, object] = {
        "conversation_id": view.get("id"),
        "identity_id": identity.get("id"),
        "contact_id": identity.get("contact_id"),
        "customer_name": contact.get("name") or identity.get("display_name"),
        "phone": identity.get("phone"),
        "channel": view.get("channel"),
        "account_id": view.get("account"),
        "queue": view.get("queue"),
        "queue_name": view.get("queue_name"),
    }
    collected = view.get("variables")
    if isinstance(collected, Mapping):
        for name, value in collected.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                values[f"{BOT_PREFIX}{name}"] = value
    return values


async def iframe_url(hub: HubParts, actor: Principal, conversation_id: int) -> str:
    """The page's URL. NotFound ``iframe_not_configured`` when the conversation's queue has no
    page; Invalid ``iframe_host_not_allowed`` when the built address leaves the allowed hosts."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=False)
    queue = next((q for q in hub.settings.queues if q.id == conversation.queue_id), None)
    if queue is None or not queue.iframe_url:
        raise NotFound("iframe_not_configured", f"queue {conversation.queue_id!r} has no page to show in an iframe")
    async with hub.store.read() as connection:
        view = await conversation_view(connection, conversation_id)
    if view is None:
        raise NotFound("not_found", f"no conversation {conversation_id}")
    try:
        return build_iframe_url(queue.iframe_url, queue.iframe_hosts, iframe_values(view))
    except IframeRefused as exc:
        raise Invalid(exc.code, exc.message) from None


def queues_with_pages(hub: HubParts) -> list[str]:
    """The ids of the configured queues that show a page in an iframe (any logged-in agent may know)."""
    return [queue.id for queue in hub.settings.queues if queue.iframe_url]
