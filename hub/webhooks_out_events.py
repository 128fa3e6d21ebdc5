"""Which hub event becomes which outgoing webhook event type (docs/integrations.md). Pure, no I/O.

Matched on the typed events of hub/events.py; an event that integrations do not hear of maps to None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.events import (
    ContactUpdated,
    ConversationClosed,
    ConversationClosedByBot,
    ConversationHandedOff,
    ConversationOpened,
    ConversationUpdated,
    ConversationWaiting,
    ConversationWithBot,
    HubEvent,
    MessageCreated,
    MessageDelivery,
    unwrapped,
)

__all__ = ["Outgoing", "OutgoingSource", "outgoing_of"]

OutgoingSource = HubEvent | ContactUpdated
"""What the store hands to the outgoing webhooks in a change's transaction."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """One event as integrations receive it: its ``type``, what it is about, and what it adds to the data.

    ``order_key`` keeps deliveries in order: everything about one conversation (or one contact) is delivered
    in the order it happened. ``message_id`` asks for the message's JSON, ``contact_id`` for the contact's.
    """

    type: str
    order_key: str
    conversation_id: int | None = None
    message_id: int | None = None
    contact_id: int | None = None
    extra: dict[str, Any] | None = None


def _acted(by: int, details: dict[str, Any]) -> dict[str, Any]:
    """``by`` the agent whose conversation it was, with the action's details. When an admin acted for them
    (deactivating the agent hands their conversations on), the details' own ``by`` is that admin:
    ``released_by``."""
    extra = dict(details)
    if "by" in extra:
        extra["released_by"] = extra.pop("by")
    return {"by": by, **extra}


def _conversation(event_type: str, conversation_id: int, **extra: Any) -> Outgoing:
    return Outgoing(
        type=event_type,
        order_key=f"conversation:{conversation_id}",
        conversation_id=conversation_id,
        extra=extra or None,
    )


def outgoing_of(source: OutgoingSource, *, new_conversation: bool = False) -> Outgoing | None:
    """The outgoing event ``source`` stands for, or None when integrations do not hear of it.

    ``new_conversation``: a ``ConversationWaiting`` that the ingest emitted for a conversation it just
    opened (a customer wrote first); a requeued conversation is not "opened".
    """
    event = source if isinstance(source, ContactUpdated) else unwrapped(source)
    match event:
        case MessageCreated(conversation_id=cid, message_id=mid):
            return Outgoing(
                type="message.created", order_key=f"conversation:{cid}", conversation_id=cid, message_id=mid
            )
        case MessageDelivery(conversation_id=cid, message_id=mid):
            return Outgoing(
                type="message.delivery", order_key=f"conversation:{cid}", conversation_id=cid, message_id=mid
            )
        case ConversationOpened(conversation_id=cid, agent_id=agent):
            return _conversation("conversation.opened", cid, by=agent, outbound=True)
        case ConversationWaiting(conversation_id=cid) | ConversationWithBot(conversation_id=cid) if new_conversation:
            return _conversation("conversation.opened", cid, outbound=False)
        case ConversationUpdated(conversation_id=cid, action="accepted" | "taken" as action, by=by):
            return _conversation("conversation.assigned", cid, by=by, how=action)
        case ConversationUpdated(conversation_id=cid, action="transferred", by=by, details=details):
            return _conversation("conversation.transferred", cid, **_acted(by, details))
        # ``bot`` is in every close's data (null when an agent closed it), so that receivers read one shape
        case ConversationUpdated(conversation_id=cid, action="closed", by=by, details=details):
            return _conversation("conversation.closed", cid, **{"bot": None, **_acted(by, details)})
        case ConversationClosed(conversation_id=cid, agent_id=agent, status=status):
            return _conversation("conversation.closed", cid, by=agent, status=status, bot=None)
        case ConversationClosedByBot(conversation_id=cid, bot=bot, status=status):
            return _conversation("conversation.closed", cid, by=None, bot=bot, status=status)
        case ConversationHandedOff(conversation_id=cid, queue_id=queue, reason=reason):
            return _conversation("conversation.handed_off", cid, queue=queue, reason=reason)
        case ContactUpdated(contact_id=contact):
            return Outgoing(type="contact.updated", order_key=f"contact:{contact}", contact_id=contact)
        case _:
            return None
