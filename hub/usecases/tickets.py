"""Ticket actions: search and read, create, edit, mark as a favourite, assign to a conversation, and list the
conversations a ticket is assigned to.

Assigning needs act access on the conversation, like any other change to it, and tells
every participant's console.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.audit import field_names, record
from hub.errors import NotFound
from hub.events import ConversationTicket
from hub.store.tickets import (
    TICKET_STATES,
    assign_ticket,
    create_ticket,
    get_ticket,
    list_tickets,
    set_favourite,
    ticket_conversations,
    update_ticket,
)
from hub.usecases._parts import HubParts
from hub.usecases._store_refusals import store_refusals
from hub.usecases.access import conversation_for
from hub.usecases.principal import Principal

__all__ = [
    "TICKET_STATES",
    "TicketAssigned",
    "TicketQuery",
    "assign",
    "conversations",
    "create",
    "favourite",
    "search",
    "show",
    "update",
]


def _no_ticket(ticket_id: int) -> NotFound:
    return NotFound("not_found", f"no ticket {ticket_id}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketQuery:
    """The ticket widget's filters; every one given narrows the list. ``mine`` and ``favourite`` are the
    actor's; ``state`` is one of ``TICKET_STATES``."""

    q: str | None = None
    mine: bool = False
    contact_id: int | None = None
    company: str | None = None
    favourite: bool = False
    state: str | None = None


async def search(
    hub: HubParts, actor: Principal, query: TicketQuery, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the tickets that match, as the actor sees them (their favourites marked), and the next
    page's cursor."""
    with store_refusals():
        return await list_tickets(
            hub.store,
            actor.agent_id(),
            q=query.q,
            mine=query.mine,
            contact_id=query.contact_id,
            company=query.company,
            favourite=query.favourite,
            state=query.state,
            after=after,
            limit=limit,
        )


async def show(hub: HubParts, actor: Principal, ticket_id: int) -> Mapping[str, Any]:
    """One ticket, as the actor sees it (whether it is their favourite)."""
    ticket = await get_ticket(hub.store, ticket_id, actor.agent_id())
    if ticket is None:
        raise _no_ticket(ticket_id)
    return ticket


async def create(hub: HubParts, actor: Principal, fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """A new ticket by the actor; Invalid when it names a contact or an agent that does not exist."""
    with store_refusals():
        ticket = await create_ticket(hub.store, fields, actor.agent_id(), hub.clock())
    await _audit(hub, actor, "ticket.created", ticket, fields)
    return ticket


async def _audit(
    hub: HubParts,
    actor: Principal,
    action: str,
    ticket: Mapping[str, Any],
    fields: Mapping[str, Any],
    conversation_id: int | None = None,
) -> None:
    """The ticket and the names of the fields set (its text may quote a customer: never the values)."""
    await record(
        hub.store,
        action,
        actor=actor,
        at=hub.clock(),
        target=f"ticket:{ticket['id']}",
        conversation_id=conversation_id,
        after=field_names(fields),
    )


async def update(hub: HubParts, actor: Principal, ticket_id: int, fields: Mapping[str, Any]) -> Mapping[str, Any]:
    with store_refusals():
        ticket = await update_ticket(hub.store, ticket_id, fields, actor.agent_id(), hub.clock())
    if ticket is None:
        raise _no_ticket(ticket_id)
    await _audit(hub, actor, "ticket.updated", ticket, fields)
    return ticket


async def favourite(hub: HubParts, actor: Principal, ticket_id: int, favourite: bool) -> Mapping[str, Any]:
    """Mark or unmark the ticket as one of the actor's favourites (idempotent both ways)."""
    ticket = await set_favourite(hub.store, ticket_id, actor.agent_id(), favourite)
    if ticket is None:
        raise _no_ticket(ticket_id)
    return ticket


async def conversations(
    hub: HubParts, actor: Principal, ticket_id: int, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The conversations the ticket is assigned to, newest first, and the next page's cursor. Every agent
    may read tickets, and so this list, as a contact's conversations; opening one is checked as ever."""
    with store_refusals():
        page = await ticket_conversations(hub.store, ticket_id, after=after, limit=limit)
    if page is None:
        raise _no_ticket(ticket_id)
    return page


@dataclass(frozen=True, slots=True)
class TicketAssigned:
    """The ticket as it is now, and the event that told the conversation's consoles."""

    ticket: Mapping[str, Any]
    event: ConversationTicket


async def assign(hub: HubParts, actor: Principal, conversation_id: int, ticket_id: int) -> TicketAssigned:
    """Set the conversation's ticket (a ``ticket_assigned`` timeline event, none when it already had it)."""
    await conversation_for(hub.store, actor, conversation_id, act=True)
    with store_refusals():
        ticket = await assign_ticket(hub.store, conversation_id, ticket_id, actor.agent_id(), hub.clock())
    if ticket is None:
        raise NotFound("not_found", f"no conversation {conversation_id}")
    # no agent_id: that would address the event to the actor alone; every participant's console wants it
    event = ConversationTicket(
        conversation_id=conversation_id, ticket=ticket["id"], title=ticket["title"], by=actor.agent_id()
    )
    await _audit(hub, actor, "ticket.assigned", ticket, {}, conversation_id=conversation_id)
    hub.bus.publish(event)
    return TicketAssigned(ticket, event)
