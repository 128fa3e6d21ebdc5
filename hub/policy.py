"""Pure outbound rules: may this be sent to this identity now, and how? No I/O.

The API (before queueing), the console (eligibility) and the delivery worker
(right before the provider call) all ask this one module, so they cannot
disagree. Every window is measured from the identity's last inbound message by
the provider's clock (per identity, not per conversation). Facts and numbers:
channels.md 1.5 (Messenger), 2.3 / 3.3 (WhatsApp), 4.7 (Viber), 5 (summary).
Media rules are no facts of this module's: each provider's adapter declares its
own (``IdentityFacts.media``, from ``hub.ports.ProviderFacts.media``), and
``media_refusal`` checks a draft against them.

Shape:

* ``IdentityFacts`` + ``Draft`` + ``now`` -> ``decide`` -> ``Allowed`` | ``Refused``
* ``IdentityFacts`` + ``now`` + templates -> ``eligibility`` -> ``Eligibility``
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hub.model import (
    TEXT_LIMITS,
    Attachment,
    Button,
    Channel,
    MessageKind,
    Subscription,
    TemplateBinding,
    registry_name,
)
from hub.ports import KB, MB, ButtonLimits, MediaRules

__all__ = [
    "CUSTOMER_SERVICE_WINDOW",
    "MESSENGER_TAGS",
    "RETIRED_TAGS",
    "STANDARD_WINDOW",
    "TEMPLATE_ONLY_TAGS",
    "Allowed",
    "Alternative",
    "Decision",
    "Draft",
    "Eligibility",
    "IdentityFacts",
    "Refused",
    "Rule",
    "TagWindow",
    "TemplateOption",
    "binding_fits",
    "button_refusal",
    "decide",
    "eligibility",
    "media_refusal",
]

#: Messenger standard messaging window (channels.md 1.5)
STANDARD_WINDOW = timedelta(hours=24)
#: WhatsApp customer-service window, Twilio and Cloud API alike (channels.md 2.3, 3.3)
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
#: Viber in-session period: outside it a message is "chatbot-initiated" and billable (channels.md 4.7)
VIBER_SESSION = timedelta(hours=24)

#: Messenger message tags still accepted, with their own limit after the last inbound (None = no time limit)
MESSENGER_TAGS: dict[str, timedelta | None] = {
    "HUMAN_AGENT": timedelta(days=7),
    "CUSTOMER_FEEDBACK": timedelta(days=7),
    "CONFIRMED_EVENT_UPDATE": None,
    "POST_PURCHASE_UPDATE": None,
    "ACCOUNT_UPDATE": None,
}
_HUMAN = "HUMAN_AGENT"
#: tags Meta allows only on one message type the hub never sends, with what that type is: such a tag is refused
#: outside the standard window (free text, files and hub templates may not carry it) and offered nowhere. Meta allows
#: CUSTOMER_FEEDBACK on its Customer Feedback template alone (docs/channels.md, *Messenger message tags*; ADR 0046)
TEMPLATE_ONLY_TAGS: dict[str, str] = {
    "CUSTOMER_FEEDBACK": "Meta's Customer Feedback template (a CSAT, NPS or CES survey form)",
}
#: tags Meta retired on 4 March 2020 (and the News-Page-only one); refused by name
RETIRED_TAGS: frozenset[str] = frozenset(
    {
        "APPLICATION_UPDATE",
        "APPOINTMENT_UPDATE",
        "CONFIRMED_EVENT_REMINDER",
        "ISSUE_RESOLUTION",
        "PAYMENT_UPDATE",
        "PERSONAL_FINANCE_UPDATE",
        "RESERVATION_UPDATE",
        "SHIPPING_UPDATE",
        "TICKET_UPDATE",
        "TRANSPORTATION_UPDATE",
        "COMMUNITY_ALERT",
        "GAME_EVENT",
        "PAIRING_UPDATE",
        "FEATURE_FUNCTIONALITY_UPDATE",
        "NON_PROMOTIONAL_SUBSCRIPTION",
    }
)

#: the tags the hub may send a message with, in the order a refusal lists them
_SENDABLE_TAGS = tuple(tag for tag in MESSENGER_TAGS if tag not in TEMPLATE_ONLY_TAGS)


class Rule:
    """The machine-readable refusal codes (``Refused.rule``)."""

    NO_PREVIOUS_CONTACT = "no_previous_contact"
    WINDOW_CLOSED = "window_closed"
    TEMPLATE_BINDING_REQUIRED = "template_binding_required"
    TAG_RETIRED = "tag_retired"
    TAG_EXPIRED = "tag_expired"
    TAG_UNKNOWN = "tag_unknown"
    TAG_NOT_SUPPORTED = "tag_not_supported"
    TAG_HUMAN_ONLY = "tag_human_only"
    TAG_TEMPLATE_ONLY = "tag_template_only"
    NOT_SUBSCRIBED = "not_subscribed"
    WELCOME_ONLY = "welcome_only"
    TEXT_TOO_LONG = "text_too_long"
    ATTACHMENT_NOT_SUPPORTED = "attachment_not_supported"
    ATTACHMENT_TOO_LARGE = "attachment_too_large"
    ATTACHMENT_TYPE_NOT_ALLOWED = "attachment_type_not_allowed"
    TOO_MANY_ATTACHMENTS = "too_many_attachments"
    CAPTION_NOT_ALLOWED = "caption_not_allowed"
    EMPTY_MESSAGE = "empty_message"


# ---------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityFacts:
    """What the rules need to know about one customer on one channel account."""

    channel: Channel
    provider: str  # messenger | twilio | cloud | viber
    first_inbound_at: datetime | None = None
    last_inbound_at: datetime | None = None  # provider clock
    subscription: Subscription | None = None
    welcome_sent: bool = False
    # the provider's media rules, as its adapter declares them (``ProviderFacts.media``; hub.outbox.facts_for
    # reads them); None: it takes no attachments
    media: MediaRules | None = None

    @property
    def provider_name(self) -> str:
        """The provider's registry name, as refusals name it: the channel, or ``channel.provider`` when the
        channel has several providers (``whatsapp.twilio``), as ``ChannelAccount.adapter_name``."""
        return registry_name(self.channel, self.provider)


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """The message an agent wants to send. ``template`` names a hub template;
    ``binding`` is its provider-approved counterpart, if it has one."""

    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    template: str | None = None
    binding: TemplateBinding | None = None
    tag: str | None = None
    #: written by a bot or the hub itself, not by a person: Meta prohibits automated messages with HUMAN_AGENT
    automated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateOption:
    """A template the agent could pick: which providers it has a binding for, and its Messenger tag."""

    name: str
    providers: frozenset[str] = frozenset()
    tag: str | None = None


# --------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class Alternative:
    """Something still allowed: ``template`` (name), ``tag`` (name, until), ``wait_for_customer``."""

    kind: str
    name: str | None = None
    until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.name is not None:
            data["name"] = self.name
        if self.kind == "tag":
            data["until"] = self.until.isoformat() if self.until else None
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Allowed:
    """How to send it: what the provider call needs and why it is allowed."""

    basis: str  # window | tag | template | subscribed
    messaging_type: str | None = None  # Messenger: RESPONSE | MESSAGE_TAG
    tag: str | None = None
    use_template_binding: bool = False
    free_text_until: datetime | None = None
    billable: bool = False  # Viber chatbot-initiated (outside the 24 h session)

    def to_json(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "messaging_type": self.messaging_type,
            "tag": self.tag,
            "use_template_binding": self.use_template_binding,
            "free_text_until": self.free_text_until.isoformat() if self.free_text_until else None,
            "billable": self.billable,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """Not allowed: the rule, a sentence for the agent, when the window closed, what is allowed instead."""

    rule: str
    message: str
    window_closed_at: datetime | None = None
    alternatives: tuple[Alternative, ...] = ()

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "window_closed_at": self.window_closed_at.isoformat() if self.window_closed_at else None,
            "alternatives": [a.to_json() for a in self.alternatives],
        }


Decision = Allowed | Refused


@dataclass(frozen=True, slots=True, kw_only=True)
class TagWindow:
    tag: str
    until: datetime | None  # None: no time limit

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "until": self.until.isoformat() if self.until else None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Eligibility:
    """What an agent may send to this identity right now."""

    free_text: bool
    free_text_until: datetime | None
    tags: tuple[TagWindow, ...]
    templates: tuple[str, ...]
    blocking: Refused | None = None
    billable: bool = False
    window_closed_at: datetime | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "free_text": self.free_text,
            "free_text_until": self.free_text_until.isoformat() if self.free_text_until else None,
            "tags": [t.to_json() for t in self.tags],
            "templates": list(self.templates),
            "rule": self.blocking.rule if self.blocking else None,
            "message": self.blocking.message if self.blocking else None,
            "window_closed_at": self.window_closed_at.isoformat() if self.window_closed_at else None,
            "billable": self.billable,
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------- decisions


def binding_fits(binding: TemplateBinding | None, provider: str) -> bool:
    """True when ``binding`` is a provider-approved template this provider can send."""
    if binding is None:
        return False
    if provider == "twilio":
        return bool(binding.content_sid)
    if provider == "cloud":
        return bool(binding.name) and bool(binding.language)
    return False


def _ago(delta: timedelta) -> str:
    """How long ago, in words an agent reads ("1 second ago", "2 hours ago", "1 day ago")."""
    seconds = int(delta.total_seconds())
    if seconds < 90:
        count, unit = max(seconds, 0), "second"
    elif seconds < 90 * 60:
        count, unit = seconds // 60, "minute"
    elif seconds < 36 * 3600:
        count, unit = seconds // 3600, "hour"
    else:
        count, unit = seconds // 86400, "day"
    return f"{count} {unit}{'' if count == 1 else 's'} ago"


def _is_open(last: datetime, length: timedelta, now: datetime) -> bool:
    """A window is open strictly before its edge: at ``last + length`` it is closed."""
    return now < last + length


def decide(facts: IdentityFacts, draft: Draft, now: datetime, templates: Sequence[TemplateOption] = ()) -> Decision:
    """May ``draft`` go to this identity at ``now``? ``templates`` feed the alternatives of a refusal."""
    if not draft.text and not draft.attachments and draft.template is None:
        return Refused(rule=Rule.EMPTY_MESSAGE, message="the message has no text, attachment or template")
    contact = _previous_contact(facts, templates)
    if contact is not None:
        return contact
    content = _content(facts, draft, now, templates)
    if content is not None:
        return content
    match facts.channel:
        case Channel.MESSENGER:
            return _messenger(facts, draft, now, templates)
        case Channel.WHATSAPP:
            return _whatsapp(facts, draft, now, templates)
        case Channel.VIBER:
            return _viber(facts, draft, now)
    raise AssertionError(f"no rules for channel {facts.channel!r}")  # pragma: no cover


def _previous_contact(facts: IdentityFacts, templates: Sequence[TemplateOption]) -> Refused | None:
    """We never write first: the customer must have written to this account (a Viber subscription counts)."""
    if facts.channel is Channel.VIBER:
        if facts.subscription is Subscription.UNSUBSCRIBED:
            return Refused(
                rule=Rule.NOT_SUBSCRIBED,
                message="this Viber user unsubscribed from the bot; they can be messaged again once they write to it",
                alternatives=(Alternative(kind="wait_for_customer"),),
            )
        if facts.subscription is Subscription.OPENED and facts.first_inbound_at is None:
            done = " and it was already sent" if facts.welcome_sent else ""
            return Refused(
                rule=Rule.WELCOME_ONLY,
                message=(
                    "this Viber user only opened the chat and did not subscribe: only the single welcome message "
                    f"answering conversation_started is possible{done}; wait until they write"
                ),
                alternatives=(Alternative(kind="wait_for_customer"),),
            )
        if facts.subscription is Subscription.SUBSCRIBED or facts.first_inbound_at is not None:
            return None
    elif facts.first_inbound_at is not None and facts.last_inbound_at is not None:
        return None
    return Refused(
        rule=Rule.NO_PREVIOUS_CONTACT,
        message="this customer never wrote to this channel account; we never write first: "
        "they can be answered once they write to it",
        alternatives=(Alternative(kind="wait_for_customer"),),
    )


def _tags_instead(
    facts: IdentityFacts, now: datetime, templates: Sequence[TemplateOption], *, automated: bool = False
) -> tuple[Alternative, ...]:
    """The tags (and tagged templates) a refused tag can be swapped for now: only those whose own window
    is still open (HUMAN_AGENT: 7 days after the customer's last message, and only for a person), each with its end."""
    if facts.last_inbound_at is None:
        return ()
    return _tag_alternatives(facts.last_inbound_at, now, templates, automated=automated)


def _content(
    facts: IdentityFacts, draft: Draft, now: datetime, templates: Sequence[TemplateOption] = ()
) -> Refused | None:
    """Checks of the message itself: tag names, text length, attachments. Only the alternatives offered for
    a wrong tag depend on time (a tag whose window has passed is no alternative)."""
    if draft.tag is not None:
        tag = draft.tag.strip().upper()
        if facts.channel is not Channel.MESSENGER:
            return Refused(
                rule=Rule.TAG_NOT_SUPPORTED,
                message=f"message tags exist only on Messenger, not on {facts.channel.value}: send it without a tag",
            )
        if tag in RETIRED_TAGS:
            return Refused(
                rule=Rule.TAG_RETIRED,
                message=f"the message tag {tag} was retired by Meta and is no longer accepted",
                alternatives=_tags_instead(facts, now, templates, automated=draft.automated),
            )
        if tag not in MESSENGER_TAGS:
            return Refused(
                rule=Rule.TAG_UNKNOWN,
                message=f"{draft.tag!r} is not a Messenger message tag (allowed: {', '.join(_SENDABLE_TAGS)})",
                alternatives=_tags_instead(facts, now, templates, automated=draft.automated),
            )
    limit = TEXT_LIMITS[facts.channel]
    if draft.text is not None and len(draft.text) > limit:
        return Refused(
            rule=Rule.TEXT_TOO_LONG,
            message=f"{facts.channel.value} takes at most {limit} characters in one message; "
            f"this one has {len(draft.text)}",
        )
    return media_refusal(draft, facts.provider_name, facts.media)


def _type_refusal(who: str, attachment: Attachment, types: frozenset[str] | None) -> Refused | None:
    """``who`` does not take the attachment's file type for its kind; ``types`` None: any type."""
    mime = (attachment.mime_type or "").split(";", 1)[0].strip().lower()
    if types is None or not mime or mime in types:
        return None
    return Refused(
        rule=Rule.ATTACHMENT_TYPE_NOT_ALLOWED,
        message=f"{who} does not take {mime} as {attachment.kind.value} (it takes {', '.join(sorted(types))})",
    )


def _caption_refusal(
    who: str, attachment: Attachment, text: str | None, uncaptioned: Collection[MessageKind]
) -> Refused | None:
    """``who`` sends the attachment's kind without a caption, and the draft has text."""
    if not text or attachment.kind not in uncaptioned:
        return None
    return Refused(
        rule=Rule.CAPTION_NOT_ALLOWED,
        message=f"{who} cannot caption {attachment.kind.value}; send the text in a message of its own",
    )


def _sizes(limit: int, size: int) -> tuple[str, str]:
    """A limit and a file's size in words an agent can tell apart: MB to a tenth (KB under one MB), in the
    decimal units providers' limits are read in (``hub.ports.MB``), and the exact bytes of both when those
    figures are the same (a file one byte over 1 MB is not "1.0 MB" against "1 MB")."""
    most, this = _rounded(limit), _rounded(size)
    if most == this:
        return f"{most} ({limit:,} bytes)", f"{size:,} bytes"
    return most, this


def _rounded(size: int) -> str:
    unit, scale = ("MB", MB) if size >= MB else ("KB", KB)
    return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"


def _valid_tags(last: datetime, now: datetime, *, automated: bool = False) -> list[TagWindow]:
    """The tags that may be used now; for an automated message, never HUMAN_AGENT (a person's reply only); never a
    tag for a message type the hub does not send (``TEMPLATE_ONLY_TAGS``)."""
    tags = []
    for tag, limit in MESSENGER_TAGS.items():
        if (automated and tag == _HUMAN) or tag in TEMPLATE_ONLY_TAGS:
            continue
        if limit is None:
            tags.append(TagWindow(tag=tag, until=None))
        elif _is_open(last, limit, now):
            tags.append(TagWindow(tag=tag, until=last + limit))
    return tags


def _tags_still_open(last: datetime, now: datetime, *, automated: bool = False) -> str:
    """What a window_closed refusal suggests: the same tags its alternatives offer (HUMAN_AGENT only while its
    own 7 days last, and only to a person)."""
    human = MESSENGER_TAGS[_HUMAN]
    assert human is not None
    others = ", ".join(t.tag for t in _valid_tags(last, now, automated=automated))
    if automated:
        return (
            f"an automated message may use a message tag that applies ({others}) but never HUMAN_AGENT, "
            "which is for a person's reply; or wait for the customer to write"
        )
    if _is_open(last, human, now):
        return "send with an allowed message tag (HUMAN_AGENT for a person's reply within 7 days)"
    ended = f"the HUMAN_AGENT tag's {human.days} days ended {_ago(now - (last + human))}"
    if not others:
        return f"{ended}; wait for the customer to write"
    return f"{ended}; send with a message tag that still applies ({others}) or wait for the customer to write"


def _tag_alternatives(
    last: datetime, now: datetime, templates: Iterable[TemplateOption], *, automated: bool = False
) -> tuple[Alternative, ...]:
    valid = _valid_tags(last, now, automated=automated)
    names = {t.tag for t in valid}
    alternatives = [Alternative(kind="tag", name=t.tag, until=t.until) for t in valid]
    alternatives += [Alternative(kind="template", name=t.name) for t in templates if t.tag and t.tag.upper() in names]
    return tuple(alternatives)


def _messenger(facts: IdentityFacts, draft: Draft, now: datetime, templates: Sequence[TemplateOption]) -> Decision:
    assert facts.last_inbound_at is not None
    last = facts.last_inbound_at
    window_end = last + STANDARD_WINDOW
    if _is_open(last, STANDARD_WINDOW, now):
        return Allowed(basis="window", messaging_type="RESPONSE", free_text_until=window_end)
    automated = draft.automated
    if draft.tag is None:
        return Refused(
            rule=Rule.WINDOW_CLOSED,
            message=f"the 24-hour standard messaging window closed {_ago(now - window_end)}: "
            + _tags_still_open(last, now, automated=automated),
            window_closed_at=window_end,
            alternatives=_tag_alternatives(last, now, templates, automated=automated),
        )
    tag = draft.tag.strip().upper()
    if tag == _HUMAN and automated:
        return Refused(
            rule=Rule.TAG_HUMAN_ONLY,
            message="the HUMAN_AGENT tag is only for a person's reply (Meta prohibits automated messages with it), "
            f"and the 24-hour standard messaging window closed {_ago(now - window_end)}: "
            + _tags_still_open(last, now, automated=True),
            window_closed_at=window_end,
            alternatives=_tag_alternatives(last, now, templates, automated=True),
        )
    if tag in TEMPLATE_ONLY_TAGS:
        return Refused(
            rule=Rule.TAG_TEMPLATE_ONLY,
            message=f"the {tag} tag may only carry {TEMPLATE_ONLY_TAGS[tag]}, which the hub does not send, not "
            f"text, files or a hub template; the 24-hour standard messaging window closed {_ago(now - window_end)}: "
            + _tags_still_open(last, now, automated=automated),
            window_closed_at=window_end,
            alternatives=_tag_alternatives(last, now, templates, automated=automated),
        )
    limit = MESSENGER_TAGS[tag]
    if limit is not None and not _is_open(last, limit, now):
        closed = last + limit
        return Refused(
            rule=Rule.TAG_EXPIRED,
            message=f"the {tag} tag may be used up to {limit.days} days after the customer's last message; "
            f"that ended {_ago(now - closed)}",
            window_closed_at=closed,
            alternatives=_tag_alternatives(last, now, templates, automated=automated),
        )
    return Allowed(basis="tag", messaging_type="MESSAGE_TAG", tag=tag)


def _whatsapp(facts: IdentityFacts, draft: Draft, now: datetime, templates: Sequence[TemplateOption]) -> Decision:
    assert facts.last_inbound_at is not None
    last = facts.last_inbound_at
    window_end = last + CUSTOMER_SERVICE_WINDOW
    if _is_open(last, CUSTOMER_SERVICE_WINDOW, now):
        # inside the window a hub template goes as its rendered text (a free service message)
        return Allowed(basis="window", free_text_until=window_end)
    usable = tuple(Alternative(kind="template", name=t.name) for t in templates if facts.provider in t.providers)
    if draft.template is not None and not draft.attachments and binding_fits(draft.binding, facts.provider):
        return Allowed(basis="template", use_template_binding=True)
    if draft.template is not None:
        instead = (
            f"send one that has ({', '.join(a.name for a in usable if a.name)})"
            if usable
            else "no template has one, so wait for the customer to write"
        )
        return Refused(
            rule=Rule.TEMPLATE_BINDING_REQUIRED,
            message=(
                f"the 24-hour customer-service window closed {_ago(now - window_end)}; template "
                f"{draft.template!r} has no approved WhatsApp template for {facts.provider}, so it cannot be sent: "
                + instead
            ),
            window_closed_at=window_end,
            alternatives=usable or (Alternative(kind="wait_for_customer"),),
        )
    return Refused(
        rule=Rule.WINDOW_CLOSED,
        message=(
            f"the 24-hour customer-service window closed {_ago(now - window_end)}: "
            "only an approved WhatsApp template can be sent until the customer writes again"
        ),
        window_closed_at=window_end,
        alternatives=usable or (Alternative(kind="wait_for_customer"),),
    )


def _viber(facts: IdentityFacts, draft: Draft, now: datetime) -> Allowed:
    last = facts.last_inbound_at
    in_session = last is not None and _is_open(last, VIBER_SESSION, now)
    return Allowed(
        basis="subscribed",
        free_text_until=None,
        billable=not in_session,
    )


# ----------------------------------------------------------------- eligibility


def eligibility(
    facts: IdentityFacts, now: datetime, templates: Sequence[TemplateOption] = (), *, automated: bool = False
) -> Eligibility:
    """Everything an agent may send right now, for the console's "send a message" panel (``automated``: what a
    bot may send, which is never with the HUMAN_AGENT tag)."""
    blocked = _previous_contact(facts, templates)
    if blocked is not None:
        return Eligibility(free_text=False, free_text_until=None, tags=(), templates=(), blocking=blocked)
    names = tuple(t.name for t in templates)
    match facts.channel:
        case Channel.MESSENGER:
            assert facts.last_inbound_at is not None
            last = facts.last_inbound_at
            tags = tuple(_valid_tags(last, now, automated=automated))
            if _is_open(last, STANDARD_WINDOW, now):
                return Eligibility(free_text=True, free_text_until=last + STANDARD_WINDOW, tags=tags, templates=names)
            valid = {t.tag for t in tags}
            usable = tuple(t.name for t in templates if t.tag and t.tag.upper() in valid)
            refused = _messenger(facts, Draft(text="x", automated=automated), now, templates)
            assert isinstance(refused, Refused)
            return Eligibility(
                free_text=False,
                free_text_until=None,
                tags=tags,
                templates=usable,
                blocking=refused,
                window_closed_at=last + STANDARD_WINDOW,
                notes=("free text still possible with one of the tags",),
            )
        case Channel.WHATSAPP:
            assert facts.last_inbound_at is not None
            last = facts.last_inbound_at
            if _is_open(last, CUSTOMER_SERVICE_WINDOW, now):
                return Eligibility(
                    free_text=True, free_text_until=last + CUSTOMER_SERVICE_WINDOW, tags=(), templates=names
                )
            refused = _whatsapp(facts, Draft(text="x"), now, templates)
            assert isinstance(refused, Refused)
            return Eligibility(
                free_text=False,
                free_text_until=None,
                tags=(),
                templates=tuple(t.name for t in templates if facts.provider in t.providers),
                blocking=refused,
                window_closed_at=last + CUSTOMER_SERVICE_WINDOW,
            )
        case Channel.VIBER:
            allowed = _viber(facts, Draft(text="x"), now)
            notes = ("outside the 24-hour session: chatbot-initiated, billable",) if allowed.billable else ()
            return Eligibility(
                free_text=True, free_text_until=None, tags=(), templates=names, billable=allowed.billable, notes=notes
            )
    raise AssertionError(f"no rules for channel {facts.channel!r}")  # pragma: no cover


# ------------------------------------------------------------------ quick replies and buttons


def button_refusal(buttons: Sequence[Button], limits: ButtonLimits | None) -> Refused | None:
    """Whether the provider can show these quick replies / buttons (``limits`` None: it cannot, and they go
    as numbered text, which always fits). The refusal names the rule and the limit."""
    for button in buttons:
        if not button.title.strip():
            return Refused(rule="button_title_empty", message="every button needs a title")
        if not button.payload:
            return Refused(rule="button_payload_empty", message=f"the button {button.title!r} needs a payload")
    if limits is None:
        return None
    if len(buttons) > limits.most:
        return Refused(
            rule="too_many_buttons", message=f"this channel shows at most {limits.most} buttons; {len(buttons)} given"
        )
    if len(buttons) <= limits.unique_titles_up_to:
        seen: set[str] = set()
        for button in buttons:
            if button.title in seen:
                return Refused(
                    rule="button_title_not_unique",
                    message=f"the title {button.title!r} is on more than one button; this channel's buttons need "
                    "titles unique within the message",
                )
            seen.add(button.title)
    for button in buttons:
        if len(button.title) > limits.title_length:
            return Refused(
                rule="button_title_too_long",
                message=f"the button title {button.title!r} is longer than this channel's "
                f"{limits.title_length} characters",
            )
        if len(button.payload) > limits.payload_length:
            return Refused(
                rule="button_payload_too_long",
                message=f"a button payload is longer than this channel's {limits.payload_length} characters",
            )
    return None


# ------------------------------------------------------------------ media


def media_refusal(draft: Draft, who: str, rules: MediaRules | None) -> Refused | None:
    """Whether the provider ``who`` (its registry name, e.g. ``whatsapp.twilio``, as the refusal names it) takes
    the draft's attachments under its media rules (``rules`` None: it takes none), checked in this order: how
    many in one message, then for each attachment its kind, its file type, its size, and whether the draft's text
    can caption it. ``decide`` asks it with the identity's rules."""
    if not draft.attachments:
        return None
    most = rules.per_message if rules is not None else 1
    if len(draft.attachments) > most:
        return Refused(
            rule=Rule.TOO_MANY_ATTACHMENTS,
            message=f"{who} takes {_attachments(most)} per message; send them one by one",
        )
    for attachment in draft.attachments:
        kind = attachment.kind.value
        if rules is None or attachment.kind not in rules.sizes:
            takes = ", ".join(k.value for k in rules.sizes) if rules is not None else "none"
            return Refused(
                rule=Rule.ATTACHMENT_NOT_SUPPORTED,
                message=f"{who} does not take {kind} attachments (it takes {takes})",
            )
        refused = _type_refusal(who, attachment, rules.types.get(attachment.kind))
        if refused is not None:
            return refused
        limit = rules.sizes[attachment.kind]
        if attachment.size is not None and attachment.size > limit:
            said, this = _sizes(limit, attachment.size)
            return Refused(
                rule=Rule.ATTACHMENT_TOO_LARGE,
                message=f"{who} takes {kind} attachments up to {said}; this one is {this}",
            )
        refused = _caption_refusal(who, attachment, draft.text, rules.uncaptioned)
        if refused is not None:
            return refused
    return None


def _attachments(count: int) -> str:
    return "one attachment" if count == 1 else f"{count} attachments"
