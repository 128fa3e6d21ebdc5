"""Reply in a conversation, send a new message to an identity: render, ask the policy, queue.

What may be sent is hub.policy's decision; rendering is hub.templates'; queueing is the outbox's.
This module puts them in order for any actor, and turns each "no" into a ``Refusal``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from hub.bus import BusEvent
from hub.errors import Conflict, Invalid, NotFound
from hub.model import (
    Attachment,
    Channel,
    ChannelAccount,
    Conversation,
    ConversationState,
    Identity,
    Message,
    MessageKind,
    TemplateBinding,
)
from hub.outbox import facts_for, send_plan
from hub.policy import Draft, Eligibility, Refused, TemplateOption, binding_fits, decide, eligibility
from hub.routing import close_refusal
from hub.store.admin import get_queue, list_statuses
from hub.store.contacts import get_contact
from hub.store.outbound import ConversationTaken, NewOutbound, load_identity, open_conversation_of
from hub.store.templates import get_template, list_templates
from hub.templates import TemplateError, TemplateNotFound, TemplateVersion, render
from hub.usecases._parts import HubParts, OutboxPort
from hub.usecases.access import can_act, conversation_for
from hub.usecases.principal import Principal

__all__ = [
    "PROVIDER_KEYS",
    "PolicyRefusal",
    "Replied",
    "Send",
    "Sent",
    "check_eligibility",
    "reply",
    "send_new",
]

PROVIDER_KEYS = ("twilio", "cloud")


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """What the actor wants sent: ``text`` or a ``template`` (with ``variables``), and/or attachments."""

    text: str | None = None
    template: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    tag: str | None = None  # a Messenger message tag, upper case
    attachments: tuple[Attachment, ...] = ()


class PolicyRefusal(Invalid):
    """The outbound policy does not allow this send now: the rule, when the window closed, what instead."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(
            refused.rule,
            refused.message,
            rule=refused.rule,
            window_closed_at=refused.window_closed_at.isoformat() if refused.window_closed_at else None,
            alternatives=[a.to_json() for a in refused.alternatives],
        )
        self.refused = refused


@dataclass(frozen=True, slots=True, kw_only=True)
class Replied:
    """The queued message, the policy's plan for it, and the Messenger tag it goes with."""

    message: Message
    plan: dict[str, Any]
    tag: str | None
    events: list[BusEvent]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """A new message: its conversation as it is now (opened, reused or closed) and the queued message."""

    conversation: Conversation
    message: Message
    plan: dict[str, Any]
    tag: str | None
    opened: bool
    closed: bool
    events: list[BusEvent]


# ---------------------------------------------------------------- helpers


def _account(hub: HubParts, identity: Identity) -> ChannelAccount:
    try:
        return hub.settings.account(identity.account_id)
    except KeyError:
        raise Invalid(
            "account_not_configured",
            f"channel account {identity.account_id!r} is no longer configured; nothing can be sent to it",
        ) from None


async def _identity(hub: HubParts, identity_id: int) -> Identity:
    identity = await load_identity(hub.store, identity_id)
    if identity is None:
        raise NotFound("identity_not_found", f"no identity {identity_id}")
    return identity


def _options(templates: list[TemplateVersion]) -> list[TemplateOption]:
    return [
        TemplateOption(
            name=t.name,
            providers=frozenset(p for p in PROVIDER_KEYS if (t.bindings or {}).get(p)),
            tag=t.tag,
        )
        for t in templates
    ]


def _outbox(hub: HubParts) -> OutboxPort:
    if hub.outbox is None:
        raise RuntimeError("sending needs a running outbox")
    return hub.outbox


async def _plan(
    hub: HubParts,
    actor: Principal,
    identity: Identity,
    account: ChannelAccount,
    send: Send,
    conversation: Conversation | None,
) -> tuple[NewOutbound, dict[str, Any]]:
    """Render (if a template), ask the policy; a refusal raises, an allowed send becomes a NewOutbound."""
    store = hub.store
    now = hub.clock()
    text = send.text
    tag = send.tag
    binding: TemplateBinding | None = None
    version: int | None = None
    if send.template is not None:
        try:
            template = await get_template(store, send.template)
        except TemplateNotFound:
            raise Invalid("template_not_found", f"no template {send.template!r}", field="template") from None
        queue_id = conversation.queue_id if conversation else account.queue
        context: dict[str, Any] = {"identity": identity, "agent": actor.agent, "conversation": conversation}
        queue = await get_queue(store, queue_id)
        if queue is not None:
            context["queue"] = queue
        if identity.contact_id is not None:
            context["contact"] = await get_contact(store, identity.contact_id)
        provider = account.provider if account.provider in PROVIDER_KEYS else None
        try:
            # bounded, but up to a second of CPU: never on the event loop
            rendered = await asyncio.to_thread(
                render, template, send.variables, channel=identity.channel, context=context, provider=provider
            )
        except TemplateError as exc:
            raise Invalid(exc.code, exc.message, **exc.to_json()) from None
        text, version = rendered.text, rendered.version
        binding = rendered.binding if binding_fits(rendered.binding, account.provider) else None
        tag = tag or rendered.tag
    draft = Draft(text=text, attachments=send.attachments, template=send.template, binding=binding, tag=tag)
    options = _options(await list_templates(store))
    decision = decide(facts_for(identity, account.provider), draft, now, options)
    if isinstance(decision, Refused):
        raise PolicyRefusal(decision)
    if send.template is not None:
        kind = MessageKind.TEMPLATE
    elif send.attachments:
        kind = send.attachments[0].kind
    else:
        kind = MessageKind.TEXT
    plan = send_plan(decision, template=send.template, version=version, binding=binding)
    return (
        NewOutbound(
            account_id=identity.account_id,
            identity_id=identity.id,
            agent_id=actor.agent_id(),
            kind=kind,
            send_plan=plan,
            conversation_id=conversation.id if conversation else None,
            queue_id=account.queue,
            text=text,
            attachments=send.attachments,
            template_name=send.template,
            template_version=version,
            tag=(decision.tag or tag) if identity.channel is Channel.MESSENGER else None,
        ),
        plan,
    )


def _conversation_event(conversation_id: int, action: str, agent_id: int, **data: Any) -> BusEvent:
    return BusEvent(
        kind="conversation.updated",
        conversation_id=conversation_id,
        agent_id=agent_id,
        data={"action": action, "audience": [agent_id], **data},
    )


# -------------------------------------------------------------- use cases


async def check_eligibility(hub: HubParts, identity_id: int) -> tuple[Identity, Eligibility]:
    """What may be sent to the identity now, by the policy, with the templates there are."""
    identity = await _identity(hub, identity_id)
    account = _account(hub, identity)
    options = _options(await list_templates(hub.store))
    return identity, eligibility(facts_for(identity, account.provider), hub.clock(), options)


async def reply(hub: HubParts, actor: Principal, conversation_id: int, send: Send) -> Replied:
    """Queue a reply in an open conversation the actor takes part in (or supervises)."""
    conversation = await conversation_for(hub.store, actor, conversation_id, act=True)
    if conversation.state is ConversationState.CLOSED:
        raise Conflict("conversation_closed", "the conversation is closed; start a new one with /api/v1/outbound")
    identity = await _identity(hub, conversation.identity_id)
    account = _account(hub, identity)
    new, plan = await _plan(hub, actor, identity, account, send, conversation)
    queued = await _outbox(hub).accept(new, hub.clock())
    hub.bus.publish_all(queued.events)
    return Replied(message=queued.message, plan=plan, tag=new.tag, events=list(queued.events))


async def send_new(
    hub: HubParts, actor: Principal, identity_id: int, send: Send, *, close: bool = False, status: str | None = None
) -> Sent:
    """Send to an identity that wrote before: in their open conversation when the actor may act on it,
    else in a new active one the actor owns; ``close`` closes it with ``status`` once queued."""
    identity = await _identity(hub, identity_id)
    account = _account(hub, identity)
    store = hub.store
    open_ = await open_conversation_of(store, identity.id)
    conversation = None
    if open_ is not None:
        conversation, participants = open_
        if not can_act(actor, conversation, participants):
            raise Conflict(
                "conversation_taken",
                "this customer already has an open conversation that is not yours",
                conversation_id=conversation.id,
            )
    close_status = None
    if close:
        # queues and statuses live in the database (the API edits them); the config only seeded them
        queue_id = conversation.queue_id if conversation else account.queue
        queue = await get_queue(store, queue_id)
        if queue is None:
            raise Invalid("queue_not_found", f"the queue {queue_id!r} no longer exists", field="status")
        refusal = close_refusal(status, queue, [s.id for s in await list_statuses(store)])
        if refusal is not None:
            raise Invalid(refusal[0], refusal[1], field="status")
        close_status = status
    new, plan = await _plan(hub, actor, identity, account, send, conversation)
    if close_status is not None:
        new = replace(new, close_status=close_status)
    try:
        queued = await _outbox(hub).accept(new, hub.clock())
    except ConversationTaken:
        raise Conflict("conversation_taken", "this customer's conversation was opened meanwhile") from None
    result = queued.conversation or conversation  # read back when opened or closed; else unchanged
    assert result is not None
    events = list(queued.events)
    agent_id = actor.agent_id()
    if close_status is not None:
        events.append(_conversation_event(result.id, "closed", agent_id, status=close_status))
    elif queued.opened:
        events.append(_conversation_event(result.id, "opened", agent_id))
    hub.bus.publish_all(events)
    return Sent(
        conversation=result,
        message=queued.message,
        plan=plan,
        tag=new.tag,
        opened=queued.opened,
        closed=close_status is not None,
        events=events,
    )
