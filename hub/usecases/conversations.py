"""Conversations as agents read them (the list, one conversation, its history), and the hand-off actions on one:
accept, reject, take, leave, transfer, invite, close, mark important.

Each is one atomic change in hub.store.routing, checked first against who may act
(hub.usecases.access). The use case records it in the audit log (hub/audit.py), publishes
the change's events, wakes the router (or runs a pass at once when the action may free the
conversation for someone else), and returns the conversation as it is now. Refusals change nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.audit import record
from hub.bus import BusEvent
from hub.errors import Conflict, Invalid, Refusal
from hub.events import ConversationUpdated, unwrapped
from hub.model import Agent, Conversation, ConversationState
from hub.store import lost_to_a_concurrent_change
from hub.store.agents import find_agent_by_login
from hub.store.conversations import conversation_view, list_conversations
from hub.store.history import HistoryCursor, history_page
from hub.store.routing import (
    Change,
    RoutingRefused,
    accept_offer,
    close_conversation,
    invite,
    leave,
    reject_offer,
    set_important,
    take,
    transfer_to_agent,
    transfer_to_queue,
)
from hub.usecases._parts import HubParts
from hub.usecases.access import conversation_for
from hub.usecases.permissions import is_supervisor
from hub.usecases.principal import Principal

__all__ = [
    "Changed",
    "HistoryCursor",
    "Target",
    "accept",
    "agent_named",
    "close",
    "conversation_page",
    "history_of",
    "invite_to",
    "leave_conversation",
    "mark_important",
    "reject",
    "show",
    "take_over",
    "transfer",
]


# ------------------------------------------------------------------ reading


async def conversation_page(
    hub: HubParts,
    viewer: Agent,
    *,
    state: ConversationState | None,
    queue: str | None,
    before_id: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the conversations ``viewer`` may see, newest first, as the consoles show them, and the id to
    page on (None on the last page). Agents see their own and their queues' waiting list; supervisors and
    admins see all."""
    return await list_conversations(
        hub.store,
        viewer=viewer,
        everything=is_supervisor(viewer),
        state=state,
        queue=queue,
        before_id=before_id,
        limit=limit,
    )


async def show(hub: HubParts, viewer: Agent, conversation_id: int) -> dict[str, Any]:
    """One conversation ``viewer`` may see, as the consoles show it (NotFound, Forbidden)."""
    conversation = await conversation_for(hub.store, viewer, conversation_id, act=False)
    async with hub.store.read() as connection:
        view = await conversation_view(connection, conversation.id)
    assert view is not None
    return view


async def history_of(
    hub: HubParts, reader: Agent, conversation_id: int, *, before: HistoryCursor | None, limit: int
) -> tuple[list[dict[str, Any]], HistoryCursor | None]:
    """One page of the history of a conversation ``reader`` may see (NotFound, Forbidden), oldest to newest within
    the page, and the cursor of the page before it. Past its start, pages go on into the older closed
    conversations of the same identity or paired contact."""
    conversation = await conversation_for(hub.store, reader, conversation_id, act=False)
    return await history_page(hub.store, conversation, before=before, limit=limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where a transfer or an invitation goes: exactly one of an agent (by id or login) or a queue."""

    agent: int | str | None = None
    queue_id: str | None = None

    def __post_init__(self) -> None:
        if (self.agent is None) == (self.queue_id is None):
            raise ValueError("a target is exactly one of an agent or a queue")

    async def agent_id(self, hub: HubParts) -> int | None:
        """The agent's id (a login is looked up among active agents: Invalid ``unknown_agent``)."""
        if isinstance(self.agent, str):
            return await agent_named(hub, self.agent)
        return self.agent


@dataclass(frozen=True, slots=True, kw_only=True)
class Changed:
    """The conversation after the action, its view as the consoles show it, and the events published."""

    conversation: Conversation
    view: Mapping[str, Any]
    events: list[BusEvent]


async def _run(action: Callable[[], Awaitable[Change]]) -> Change:
    try:
        return await action()
    except RoutingRefused as exc:
        raise Refusal.of_kind(exc.kind, exc.code, exc.message) from None
    except Exception as exc:  # a serialisation or lock conflict with a concurrent change is a conflict too
        if lost_to_a_concurrent_change(exc):
            raise Conflict("conflict", "the conversation changed meanwhile; try again") from None
        raise


def _audited(conversation: Conversation) -> dict[str, Any]:
    return {
        "state": conversation.state.value,
        "queue": conversation.queue_id,
        "owner": conversation.owner_agent_id,
        "important": conversation.important,
        "status": conversation.status_id,
    }


async def _done(
    hub: HubParts, actor: Principal, action: str, before: Conversation, change: Change, *, sweep: bool = False
) -> Changed:
    """Record ``conversation.<action>`` in the audit log, publish, wake the router (``sweep``: one pass before
    answering), and read the conversation back."""
    details: dict[str, Any] = {}
    for event in change.events:
        match unwrapped(event):
            case ConversationUpdated(conversation_id=changed, by=by, details=found) if changed == before.id:
                if by == actor.id:
                    details = dict(found)
            case _:
                pass
    await record(
        hub.store,
        f"conversation.{action}",
        actor=actor,
        at=hub.clock(),
        target=f"conversation:{before.id}",
        conversation_id=before.id,
        before=_audited(before),
        after={**_audited(change.conversation), **details},
    )
    hub.bus.publish_all(change.events)
    if hub.router is not None:
        if sweep:
            await hub.router.sweep()
        else:
            hub.router.kick()
    async with hub.store.read() as connection:
        view = await conversation_view(connection, change.conversation.id)
    assert view is not None
    return Changed(conversation=change.conversation, view=view, events=list(change.events))


async def accept(hub: HubParts, actor: Principal, conversation_id: int) -> Changed:
    """Accept the offer: the actor becomes the owner."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=False)
    now, me = hub.clock(), actor.agent_id()
    change = await _run(lambda: accept_offer(hub.store, conversation.id, me, now=now))
    return await _done(hub, actor, "accepted", conversation, change)


async def reject(hub: HubParts, actor: Principal, conversation_id: int) -> Changed:
    """Reject the offer: it passes to the next agent."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=False)
    now, me = hub.clock(), actor.agent_id()
    change = await _run(lambda: reject_offer(hub.store, conversation.id, me, now=now))
    return await _done(hub, actor, "rejected", conversation, change, sweep=True)


async def take_over(hub: HubParts, actor: Principal, conversation_id: int) -> Changed:
    """Take a conversation from a waiting list (a supervisor from any queue's)."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=False, take=True)
    now, me, supervisor = hub.clock(), actor.agent_id(), is_supervisor(actor)
    change = await _run(lambda: take(hub.store, conversation.id, me, now=now, any_queue=supervisor))
    return await _done(hub, actor, "taken", conversation, change)


async def leave_conversation(hub: HubParts, actor: Principal, conversation_id: int) -> Changed:
    """Leave; the owner's part passes to another participant."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    now, me = hub.clock(), actor.agent_id()
    change = await _run(lambda: leave(hub.store, conversation.id, me, now=now))
    return await _done(hub, actor, "left", conversation, change, sweep=True)


async def mark_important(hub: HubParts, actor: Principal, conversation_id: int, important: bool | None) -> Changed:
    """Set the important flag (None: toggle it)."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    now, me = hub.clock(), actor.agent_id()
    change = await _run(lambda: set_important(hub.store, conversation.id, me, important, now=now))
    return await _done(hub, actor, "important", conversation, change)


async def agent_named(hub: HubParts, login: str) -> int:
    """The id of the active agent with ``login``; Invalid ``unknown_agent`` when there is none."""
    found = await find_agent_by_login(hub.store, login)
    if found is None:
        raise Invalid("unknown_agent", f"no active agent {login!r}", field="agent")
    return found[0].id


async def transfer(hub: HubParts, actor: Principal, conversation_id: int, target: Target) -> Changed:
    """To an agent (they own it at once) or a queue (it waits there)."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    agent_id = await target.agent_id(hub)
    store, now, me = hub.store, hub.clock(), actor.agent_id()
    if target.queue_id is not None:
        queue_id = target.queue_id
        change = await _run(lambda: transfer_to_queue(store, conversation.id, me, queue_id, now=now))
    else:
        assert agent_id is not None
        change = await _run(lambda: transfer_to_agent(store, conversation.id, me, agent_id, now=now))
    return await _done(hub, actor, "transferred", conversation, change, sweep=True)


async def invite_to(hub: HubParts, actor: Principal, conversation_id: int, target: Target) -> Changed:
    """Invite an agent, or a free member of a queue, silently (the customer sees nothing)."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    agent_id = await target.agent_id(hub)
    now, me = hub.clock(), actor.agent_id()
    change = await _run(
        lambda: invite(hub.store, conversation.id, me, now=now, agent_id=agent_id, queue_id=target.queue_id)
    )
    return await _done(hub, actor, "invited", conversation, change)


async def close(hub: HubParts, actor: Principal, conversation_id: int, status: str | None) -> Changed:
    """Close with a status from the queue's allowed set. One of several participants closes only their part
    (the others go on): audited as ``conversation.part_closed``, not ``conversation.closed``."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    now, me = hub.clock(), actor.agent_id()
    change = await _run(lambda: close_conversation(hub.store, conversation.id, me, status or None, now=now))
    action = "closed" if change.conversation.state is ConversationState.CLOSED else "part_closed"
    return await _done(hub, actor, action, conversation, change, sweep=True)
