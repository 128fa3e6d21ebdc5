"""Reply in a conversation, send a new message to an identity: render, ask the policy, queue.

What may be sent is hub.policy's decision; rendering is hub.templates'; queueing is the outbox's.
This module puts them in order for any actor, and turns each "no" into a ``Refusal``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

from hub.audit import entry_values, record
from hub.bus import BusEvent
from hub.errors import Conflict, Forbidden, Invalid, NotFound, PolicyRefusal
from hub.events import ConversationOpened, ConversationUpdated
from hub.metrics import template_render_refused
from hub.model import (
    Attachment,
    Author,
    Button,
    Channel,
    Contact,
    Conversation,
    ConversationState,
    Identity,
    Message,
    MessageKind,
    Queue,
    TemplateBinding,
)
from hub.outbox import facts_for, send_plan
from hub.policy import (
    Draft,
    Eligibility,
    Refused,
    TemplateOption,
    binding_fits,
    button_refusal,
    decide,
    eligibility,
)
from hub.ports import ButtonLimits
from hub.quick_replies import with_choices
from hub.registry import provider_facts
from hub.routing import close_refusal
from hub.store.admin import get_queue, list_statuses
from hub.store.contacts import get_contact
from hub.store.conversations import ConversationAccess, get_conversation
from hub.store.outbound import ConversationTaken, NewOutbound, NotTheBots, load_identity, open_conversation_of
from hub.store.outbound import start_chat as open_owned_chat
from hub.store.templates import get_template, list_templates
from hub.templates import (
    RenderedTemplate,
    TemplateError,
    TemplateNotFound,
    TemplateVersion,
    render,
    render_context,
)
from hub.usecases._parts import HubParts, OutboxPort
from hub.usecases.media import resolve_uploads
from hub.usecases.permissions import can_act, is_bot, permitted
from hub.usecases.principal import ActorKind, Principal

__all__ = [
    "PROVIDER_KEYS",
    "Checked",
    "ReadByTurn",
    "RenderedReply",
    "Replied",
    "Send",
    "Sent",
    "Started",
    "check_eligibility",
    "may_send_now",
    "render_reply",
    "reply",
    "send_new",
    "start_chat",
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
    buttons: tuple[Button, ...] = ()  # quick replies: native where the channel shows them, else numbered text


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadByTurn:
    """A bot's reply's conversation and identity as its turn read them before the bot was asked
    (hub/bots/runner.py): not read again. Whether the conversation is still the bot's is checked where the
    reply is written (``hub.store.outbound.NotTheBots``); the identity's window facts are asked again by the
    outbox before it sends."""

    conversation: Conversation
    identity: Identity


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedReply:
    """A template rendered into a conversation (nothing queued) and the channel it was rendered for."""

    template: RenderedTemplate
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """A chat started with no message: the conversation (new, or the identity's open one the actor is in)."""

    conversation: Conversation
    opened: bool
    events: list[BusEvent]


# ---------------------------------------------------------------- helpers

_NOT_CONFIGURED = "channel account {!r} is no longer configured; nothing can be sent to it"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reads:
    """Everything a send reads before anything is decided: read first, then decide, then write once."""

    found: ConversationAccess | None = None  # a reply's conversation, with who takes part
    open_: tuple[Conversation, dict[int, str]] | None = None  # a new message's identity's open conversation
    identity: Identity | None = None
    template: TemplateVersion | None = None  # the one the send names, if it exists
    queue: Queue | None = None  # for the template's context
    contact: Contact | None = None


async def _read(
    hub: HubParts,
    send: Send,
    *,
    conversation_id: int | None = None,
    identity_id: int | None = None,
    known: ReadByTurn | None = None,
) -> _Reads:
    """What a reply (``conversation_id``) or a new message (``identity_id``) needs to be decided (``known``: a
    bot's reply whose turn read the conversation and identity already; only a bot's, so no participants)."""
    store = hub.store
    found = open_ = None
    identity: Identity | None = None
    if known is not None:
        found, identity = ConversationAccess(known.conversation, {}, set()), known.identity
    elif conversation_id is not None:
        found = await get_conversation(store, conversation_id)
        identity_id = found.conversation.identity_id if found is not None else None
    if identity is None and identity_id is not None:
        identity = await load_identity(store, identity_id)
    if identity is not None and conversation_id is None:
        open_ = await open_conversation_of(store, identity.id)
    template = queue = contact = None
    if send.template is not None and identity is not None:
        conversation = found.conversation if found is not None else open_[0] if open_ is not None else None
        queue_id = conversation.queue_id if conversation is not None else _home_queue(hub, identity)
        queue = await get_queue(store, queue_id) if queue_id is not None else None
        if identity.contact_id is not None:
            contact = await get_contact(store, identity.contact_id)
        with suppress(TemplateNotFound):  # refused as template_not_found once the actor may send at all
            template = await get_template(store, send.template)
    return _Reads(
        found=found,
        open_=open_,
        identity=identity,
        template=template,
        queue=queue,
        contact=contact,
    )


def _home_queue(hub: HubParts, identity: Identity) -> str | None:
    try:
        return hub.settings.account(identity.account_id).queue
    except KeyError:
        return None  # refused as account_not_configured before the template is rendered


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


async def _rendered(
    actor: Principal,
    reads: _Reads,
    variables: dict[str, Any],
    template: TemplateVersion,
    conversation: Conversation | None,
    provider: str | None,
) -> RenderedTemplate:
    """``template`` rendered for the identity's channel with the conversation's context: what a send queues and
    what an agent's render of it shows, built in this one place so the two cannot differ. Refusals are Invalid."""
    identity = reads.identity
    assert identity is not None
    context = render_context(
        contact=reads.contact if identity.contact_id is not None else None,
        identity=identity,
        agent=actor.agent,
        conversation=conversation,
        queue=reads.queue,
    )
    try:
        # bounded, but up to a second of CPU: never on the event loop
        return await asyncio.to_thread(
            render,
            template,
            variables,
            channel=identity.channel,
            context=context,
            provider=provider if provider in PROVIDER_KEYS else None,
        )
    except TemplateError as exc:
        raise Invalid(exc.code, exc.message, **exc.to_json()) from None


async def _plan(
    hub: HubParts,
    actor: Principal,
    reads: _Reads,
    send: Send,
    conversation: Conversation | None,
) -> tuple[NewOutbound, dict[str, Any]]:
    """The identity's account checked, the template rendered (if any), the policy asked; a refusal raises,
    an allowed send becomes a NewOutbound. Reads only the templates, and only to list a refusal's alternatives."""
    identity = reads.identity
    assert identity is not None
    try:
        account = hub.settings.account(identity.account_id)
    except KeyError:
        raise Invalid("account_not_configured", _NOT_CONFIGURED.format(identity.account_id)) from None
    facts = facts_for(identity, account.provider)
    text = send.text
    tag = send.tag
    binding: TemplateBinding | None = None
    version: int | None = None
    if send.template is not None:
        template = reads.template
        if template is None:
            raise Invalid("template_not_found", f"no template {send.template!r}", field="template")
        try:
            rendered = await _rendered(actor, reads, send.variables, template, conversation, account.provider)
        except Invalid as exc:
            template_render_refused(hub, exc.code)
            raise
        text, version = rendered.text, rendered.version
        binding = rendered.binding if binding_fits(rendered.binding, account.provider) else None
        tag = tag or rendered.tag
    buttons = send.buttons
    if buttons:
        limits = _button_limits(account.adapter_name)
        refused = button_refusal(buttons, limits)
        if refused is not None:
            raise PolicyRefusal(refused.rule, refused.message)
        if limits is None:  # the channel cannot show them: the text lists them, numbered
            text, buttons = with_choices(text, buttons), ()
    draft = Draft(
        text=text,
        attachments=send.attachments,
        template=send.template,
        binding=binding,
        tag=tag,
        automated=_author(actor) is not Author.AGENT,
    )
    now = hub.clock()
    decision = decide(facts, draft, now)
    if isinstance(decision, Refused):
        # the templates there are only feed a refusal's alternatives, never the decision itself
        # (tests/unit/test_policy_properties.py): most sends are allowed and never read them
        decision = decide(facts, draft, now, _options(await list_templates(hub.store)))
    if isinstance(decision, Refused):
        raise PolicyRefusal(
            decision.rule,
            decision.message,
            window_closed_at=decision.window_closed_at,
            alternatives=[a.to_json() for a in decision.alternatives],
        )
    if send.template is not None:
        kind = MessageKind.TEMPLATE
    elif send.attachments:
        kind = send.attachments[0].kind
    else:
        kind = MessageKind.TEXT
    plan = send_plan(decision, template=send.template, version=version, binding=binding)
    if buttons:
        plan["buttons"] = [b.to_json() for b in buttons]
    return (
        NewOutbound(
            account_id=identity.account_id,
            identity_id=identity.id,
            agent_id=None if is_bot(actor) or actor.kind is ActorKind.SYSTEM else actor.agent_id(),
            author=_author(actor),
            kind=kind,
            send_plan=plan,
            conversation_id=conversation.id if conversation else None,
            queue_id=account.queue,
            text=text,
            attachments=send.attachments,
            template_name=send.template,
            template_version=version,
            tag=(decision.tag or tag) if identity.channel is Channel.MESSENGER else None,
            bot_queues=actor.queues if is_bot(actor) else (),
        ),
        plan,
    )


def _author(actor: Principal) -> Author:
    """Who the message is from: a bot, the hub itself (system), or an agent."""
    if is_bot(actor):
        return Author.BOT
    return Author.SYSTEM if actor.kind is ActorKind.SYSTEM else Author.AGENT


def _button_limits(adapter_name: str) -> ButtonLimits | None:
    facts = provider_facts().get(adapter_name)
    return facts.buttons if facts is not None else None


def _conversation_event(conversation_id: int, action: str, agent_id: int, **data: Any) -> ConversationUpdated:
    return ConversationUpdated(
        conversation_id=conversation_id, action=action, by=agent_id, audience=(agent_id,), details=data
    )


# -------------------------------------------------------------- use cases


def _send_audit(
    hub: HubParts, actor: Principal, send: Send, *, close_status: str | None = None
) -> Callable[[int, int], list[dict[str, Any]]]:
    """``message.sent`` in the audit log for a message queued to send (and, with ``close_status``, the close,
    found under ``conversation.closed`` as well): entries the outbox appends in the send's own transaction."""
    at = hub.clock()

    def entries(conversation_id: int, message_id: int) -> list[dict[str, Any]]:
        after: dict[str, Any] = {"message_id": message_id, "template": send.template}
        if close_status is not None:
            after["closed_with"] = close_status
        target = f"conversation:{conversation_id}"
        found = [
            entry_values(
                "message.sent", actor=actor, at=at, target=target, conversation_id=conversation_id, after=after
            )
        ]
        if close_status is not None:
            closed = {"state": "closed", "status": close_status}
            found.append(
                entry_values(
                    "conversation.closed",
                    actor=actor,
                    at=at,
                    target=target,
                    conversation_id=conversation_id,
                    after=closed,
                )
            )
        return found

    return entries


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """What may be sent to an identity now, and the queue a new message to them goes in (their open
    conversation's, else their account's): its statuses are the ones *Send and close* may use."""

    identity: Identity
    eligibility: Eligibility
    queue: str | None


async def check_eligibility(hub: HubParts, identity_id: int) -> Checked:
    """What may be sent to the identity now, by the policy, with the templates there are; and where it goes."""
    identity = await load_identity(hub.store, identity_id)
    if identity is None:
        raise NotFound("identity_not_found", f"no identity {identity_id}")
    allowed = await may_send_now(hub, identity)
    found = await open_conversation_of(hub.store, identity.id)
    queue = found[0].queue_id if found is not None else _home_queue(hub, identity)
    return Checked(identity=identity, eligibility=allowed, queue=queue)


async def may_send_now(
    hub: HubParts, identity: Identity, *, automated: bool = False, templates: list[TemplateVersion] | None = None
) -> Eligibility:
    """What may be sent to ``identity`` now (the console's window badge, a webhook bot's ``eligibility`` with
    ``automated``: never the HUMAN_AGENT tag); ``templates``: the current ones, when the caller read them (a
    bot's turn reads them with the conversation)."""
    if templates is None:
        templates = await list_templates(hub.store)
    try:
        account = hub.settings.account(identity.account_id)
    except KeyError:
        raise Invalid("account_not_configured", _NOT_CONFIGURED.format(identity.account_id)) from None
    return eligibility(facts_for(identity, account.provider), hub.clock(), _options(templates), automated=automated)


async def render_reply(
    hub: HubParts, actor: Principal, conversation_id: int, template: str, variables: dict[str, Any]
) -> RenderedReply:
    """What a reply with ``template`` in the conversation would say, rendered as the reply renders it (the same
    context: the identity, its contact, the conversation's queue, the actor); nothing is queued. NotFound for no
    such conversation or template, Forbidden when the actor may not act on it, Invalid when it cannot render."""
    reads = await _read(hub, Send(template=template, variables=variables), conversation_id=conversation_id)
    conversation = permitted(actor, reads.found, conversation_id, act=True)
    if reads.identity is None:
        raise NotFound("identity_not_found", f"no identity {conversation.identity_id}")
    if reads.template is None:
        raise NotFound("not_found", str(TemplateNotFound(template)))
    try:
        provider: str | None = hub.settings.account(reads.identity.account_id).provider
    except KeyError:
        provider = None
    rendered = await _rendered(actor, reads, variables, reads.template, conversation, provider)
    return RenderedReply(template=rendered, channel=reads.identity.channel)


async def reply(
    hub: HubParts, actor: Principal, conversation_id: int, send: Send, *, known: ReadByTurn | None = None
) -> Replied:
    """Queue a reply in an open conversation the actor takes part in (or supervises); ``known``: a bot's
    turn read the conversation and identity already."""
    if known is not None and (not is_bot(actor) or known.conversation.id != conversation_id):
        raise ValueError("only a bot's turn passes what it read, of its own conversation")
    outbox = _outbox(hub)
    send = replace(send, attachments=await resolve_uploads(hub, actor, send.attachments))
    reads = await _read(hub, send, conversation_id=conversation_id, known=known)
    conversation = permitted(actor, reads.found, conversation_id, act=True)
    if conversation.state is ConversationState.CLOSED:
        raise Conflict("conversation_closed", "the conversation is closed; start a new one with /api/v1/outbound")
    if reads.identity is None:
        raise NotFound("identity_not_found", f"no identity {conversation.identity_id}")
    new, plan = await _plan(hub, actor, reads, send, conversation)
    try:
        # a bot's reply also stops its silence clock, in the same transaction (hub/store/bots.py ``answered``)
        queued = await outbox.accept(replace(new, audit=_send_audit(hub, actor, send)), hub.clock())
    except NotTheBots as exc:  # taken from the bot meanwhile: refused as ``permitted`` refuses it
        if exc.reason == "not_found":
            raise NotFound("not_found", f"no conversation {conversation_id}") from None
        raise Forbidden("not_with_bot", "the conversation is no longer with a bot") from None
    hub.bus.publish_all(queued.events)
    return Replied(message=queued.message, plan=plan, tag=new.tag, events=list(queued.events))


async def send_new(
    hub: HubParts, actor: Principal, identity_id: int, send: Send, *, close: bool = False, status: str | None = None
) -> Sent:
    """Send to an identity that wrote before: in their open conversation when the actor may act on it,
    else in a new active one the actor owns; ``close`` closes it with ``status`` once queued. A bot answers in
    its own conversations (``reply``) and never starts or owns one: refused."""
    if is_bot(actor):
        raise Forbidden("agents_only", "a bot replies, hands off or closes; this action is for agents")
    outbox = _outbox(hub)
    send = replace(send, attachments=await resolve_uploads(hub, actor, send.attachments))
    reads = await _read(hub, send, identity_id=identity_id)
    identity = reads.identity
    if identity is None:
        raise NotFound("identity_not_found", f"no identity {identity_id}")
    try:
        account = hub.settings.account(identity.account_id)
    except KeyError:
        raise Invalid("account_not_configured", _NOT_CONFIGURED.format(identity.account_id)) from None
    conversation = None
    if reads.open_ is not None:
        conversation, participants = reads.open_
        if not can_act(actor, conversation, participants):
            raise Conflict(
                "conversation_taken",
                "this customer already has an open conversation that is not yours",
                conversation_id=conversation.id,
            )
    close_status = None
    if close:
        # queues and statuses live in the database (the API edits them); the config only seeded them
        store = hub.store
        queue_id = conversation.queue_id if conversation else account.queue
        queue = await get_queue(store, queue_id)
        if queue is None:
            raise Invalid("queue_not_found", f"the queue {queue_id!r} no longer exists", field="status")
        refusal = close_refusal(status, queue, [s.id for s in await list_statuses(store)])
        if refusal is not None:
            raise Invalid(refusal[0], refusal[1], field="status")
        close_status = status
    new, plan = await _plan(hub, actor, reads, send, conversation)
    new = replace(new, close_status=close_status, audit=_send_audit(hub, actor, send, close_status=close_status))
    try:
        queued = await outbox.accept(new, hub.clock())
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


async def start_chat(hub: HubParts, actor: Principal, identity_id: int) -> Started:
    """Start a chat without a message ("start chat": the manual makes it optional): an active conversation owned by the
    actor, or the identity's open one when the actor may act on it; nothing is sent, so no window rule is
    asked now: it applies to the first message the agent sends in it."""
    store = hub.store
    identity = await load_identity(store, identity_id)
    if identity is None:
        raise NotFound("identity_not_found", f"no identity {identity_id}")
    try:
        account = hub.settings.account(identity.account_id)
    except KeyError:
        raise Invalid("account_not_configured", _NOT_CONFIGURED.format(identity.account_id)) from None
    agent_id = actor.agent_id()
    found = await open_conversation_of(store, identity.id)
    if found is not None:
        conversation, participants = found
        if not can_act(actor, conversation, participants):
            raise Conflict(
                "conversation_taken",
                "this customer already has an open conversation that is not yours",
                conversation_id=conversation.id,
            )
        return Started(conversation=conversation, opened=False, events=[])
    try:
        conversation = await open_owned_chat(
            store,
            account_id=identity.account_id,
            identity_id=identity.id,
            queue_id=account.queue,
            agent_id=agent_id,
            now=hub.clock(),
        )
    except ConversationTaken:
        raise Conflict("conversation_taken", "this customer's conversation was opened meanwhile") from None
    await record(
        store,
        "conversation.opened",
        actor=actor,
        at=hub.clock(),
        target=f"conversation:{conversation.id}",
        conversation_id=conversation.id,
        after={"state": conversation.state.value, "queue": conversation.queue_id, "identity": identity.id},
    )
    events: list[BusEvent] = [
        ConversationOpened(conversation_id=conversation.id, agent_id=agent_id, identity_id=identity.id),
        _conversation_event(conversation.id, "opened", agent_id),
    ]
    hub.bus.publish_all(events)
    return Started(conversation=conversation, opened=True, events=events)
