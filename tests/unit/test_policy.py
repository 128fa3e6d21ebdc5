"""Table tests of the outbound rules, at the edges of every window (a second either side)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hub.model import Attachment, Channel, MessageKind, Subscription, TemplateBinding
from hub.policy import (
    RETIRED_TAGS,
    Allowed,
    Draft,
    IdentityFacts,
    Refused,
    Rule,
    TemplateOption,
    decide,
    eligibility,
    media_refusal,
)
from hub.ports import MB, MediaRules
from hub.registry import provider_facts

LAST = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
TWILIO_BINDING = TemplateBinding(content_sid="HX123", content_variables=(("1", "Jane"),))
CLOUD_BINDING = TemplateBinding(name="order_update", language="en_US", parameters=("Jane",))
TEMPLATES = (
    TemplateOption(name="order_update", providers=frozenset({"twilio", "cloud"})),
    TemplateOption(name="plain_hello"),
    TemplateOption(name="refund_done", tag="HUMAN_AGENT"),
)


def facts(channel: Channel, provider: str | None = None, **overrides: object) -> IdentityFacts:
    values: dict[str, object] = {
        "channel": channel,
        "provider": provider or channel.value,
        "first_inbound_at": LAST - DAY,
        "last_inbound_at": LAST,
    }
    if channel is Channel.VIBER:
        values["subscription"] = Subscription.SUBSCRIBED
    values.update(overrides)
    identity = IdentityFacts(**values)  # type: ignore[arg-type]
    if "media" in overrides:
        return identity
    return replace(identity, media=provider_facts()[identity.provider_name].media)  # as its adapter declares them


MESSENGER = facts(Channel.MESSENGER)
TWILIO = facts(Channel.WHATSAPP, "twilio")
CLOUD = facts(Channel.WHATSAPP, "cloud")
VIBER = facts(Channel.VIBER)

# (name, identity facts, draft, now, expected rule or None for allowed)
CASES: list[tuple[str, IdentityFacts, Draft, datetime, str | None]] = [
    # previous contact
    ("messenger cold", facts(Channel.MESSENGER, first_inbound_at=None, last_inbound_at=None), Draft(text="hi"), LAST,
     Rule.NO_PREVIOUS_CONTACT),
    ("twilio cold", facts(Channel.WHATSAPP, "twilio", first_inbound_at=None, last_inbound_at=None),
     Draft(template="order_update", binding=TWILIO_BINDING), LAST, Rule.NO_PREVIOUS_CONTACT),
    ("viber cold", facts(Channel.VIBER, first_inbound_at=None, last_inbound_at=None, subscription=None),
     Draft(text="hi"), LAST, Rule.NO_PREVIOUS_CONTACT),
    # Messenger standard window: 24 h
    ("messenger 1s before window edge", MESSENGER, Draft(text="hi"), LAST + DAY - SECOND, None),
    ("messenger at window edge", MESSENGER, Draft(text="hi"), LAST + DAY, Rule.WINDOW_CLOSED),
    ("messenger 1s after window edge", MESSENGER, Draft(text="hi"), LAST + DAY + SECOND, Rule.WINDOW_CLOSED),
    ("messenger HUMAN_AGENT 1s before 7 days", MESSENGER, Draft(text="hi", tag="HUMAN_AGENT"), LAST + WEEK - SECOND,
     None),
    ("messenger HUMAN_AGENT 1s after 7 days", MESSENGER, Draft(text="hi", tag="HUMAN_AGENT"), LAST + WEEK + SECOND,
     Rule.TAG_EXPIRED),
    ("messenger CUSTOMER_FEEDBACK text inside window", MESSENGER, Draft(text="hi", tag="CUSTOMER_FEEDBACK"),
     LAST + DAY - SECOND, None),
    ("messenger CUSTOMER_FEEDBACK text 1s after window", MESSENGER, Draft(text="hi", tag="CUSTOMER_FEEDBACK"),
     LAST + DAY + SECOND, Rule.TAG_TEMPLATE_ONLY),
    ("messenger CUSTOMER_FEEDBACK file 3 days after", MESSENGER,
     Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f.pdf"),), tag="customer_feedback"),
     LAST + 3 * DAY, Rule.TAG_TEMPLATE_ONLY),
    ("messenger CUSTOMER_FEEDBACK hub template 1s after 7 days", MESSENGER,
     Draft(template="survey", text="How did we do?", tag="CUSTOMER_FEEDBACK"), LAST + WEEK + SECOND,
     Rule.TAG_TEMPLATE_ONLY),
    ("messenger ACCOUNT_UPDATE after 30 days", MESSENGER, Draft(text="hi", tag="ACCOUNT_UPDATE"), LAST + 30 * DAY,
     None),
    ("messenger POST_PURCHASE_UPDATE 1s after window", MESSENGER, Draft(text="hi", tag="POST_PURCHASE_UPDATE"),
     LAST + DAY + SECOND, None),
    ("messenger CONFIRMED_EVENT_UPDATE", MESSENGER, Draft(text="hi", tag="CONFIRMED_EVENT_UPDATE"), LAST + 3 * DAY,
     None),
    ("messenger lower-case tag", MESSENGER, Draft(text="hi", tag="human_agent"), LAST + 2 * DAY, None),
    ("messenger retired tag inside window", MESSENGER, Draft(text="hi", tag="SHIPPING_UPDATE"), LAST,
     Rule.TAG_RETIRED),
    ("messenger unknown tag", MESSENGER, Draft(text="hi", tag="VIP_UPDATE"), LAST, Rule.TAG_UNKNOWN),
    ("messenger text at limit", MESSENGER, Draft(text="x" * 2000), LAST, None),
    ("messenger text over limit", MESSENGER, Draft(text="x" * 2001), LAST, Rule.TEXT_TOO_LONG),
    ("messenger image", MESSENGER, Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a.png"),)),
     LAST, None),
    ("messenger sticker not taken", MESSENGER,
     Draft(attachments=(Attachment(kind=MessageKind.STICKER, url="https://x/s"),)), LAST,
     Rule.ATTACHMENT_NOT_SUPPORTED),
    ("messenger file at 25 MB", MESSENGER,
     Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f", size=25 * MB),)), LAST, None),
    ("messenger file one byte over 25 MB", MESSENGER,
     Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f", size=25 * MB + 1),)), LAST,
     Rule.ATTACHMENT_TOO_LARGE),
    ("two attachments", MESSENGER, Draft(attachments=(
        Attachment(kind=MessageKind.IMAGE, url="https://x/1"), Attachment(kind=MessageKind.IMAGE, url="https://x/2"))),
     LAST, Rule.TOO_MANY_ATTACHMENTS),
    ("empty message", MESSENGER, Draft(), LAST, Rule.EMPTY_MESSAGE),
    # WhatsApp customer-service window: 24 h, both providers
    ("twilio 1s before window edge", TWILIO, Draft(text="hi"), LAST + DAY - SECOND, None),
    ("twilio 1s after window edge", TWILIO, Draft(text="hi"), LAST + DAY + SECOND, Rule.WINDOW_CLOSED),
    ("cloud 1s before window edge", CLOUD, Draft(text="hi"), LAST + DAY - SECOND, None),
    ("cloud 1s after window edge", CLOUD, Draft(text="hi"), LAST + DAY + SECOND, Rule.WINDOW_CLOSED),
    ("twilio media after window", TWILIO,
     Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a.png"),)), LAST + 2 * DAY,
     Rule.WINDOW_CLOSED),
    ("twilio template with content sid after window", TWILIO,
     Draft(template="order_update", binding=TWILIO_BINDING), LAST + 30 * DAY, None),
    ("cloud template with name after window", CLOUD, Draft(template="order_update", binding=CLOUD_BINDING),
     LAST + DAY + SECOND, None),
    ("twilio template without binding after window", TWILIO, Draft(template="plain_hello", text="hello"),
     LAST + DAY + SECOND, Rule.TEMPLATE_BINDING_REQUIRED),
    ("cloud template with only a twilio binding", CLOUD, Draft(template="order_update", binding=TWILIO_BINDING),
     LAST + DAY + SECOND, Rule.TEMPLATE_BINDING_REQUIRED),
    ("twilio template without binding inside window", TWILIO, Draft(template="plain_hello", text="hello"),
     LAST + DAY - SECOND, None),
    ("whatsapp tag refused", TWILIO, Draft(text="hi", tag="HUMAN_AGENT"), LAST, Rule.TAG_NOT_SUPPORTED),
    ("whatsapp text at limit", CLOUD, Draft(text="x" * 4096), LAST, None),
    ("whatsapp text over limit", CLOUD, Draft(text="x" * 4097), LAST, Rule.TEXT_TOO_LONG),
    ("whatsapp image at 5 MB", CLOUD,
     Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a", size=5 * MB),)), LAST, None),
    ("whatsapp image one byte over 5 MB", CLOUD,
     Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a", size=5 * MB + 1),)), LAST,
     Rule.ATTACHMENT_TOO_LARGE),
    # a provider's "MB" is read as 10^6 bytes: a file of 5 * 2^20 bytes is refused whichever the provider means
    ("whatsapp image of 5 binary megabytes", CLOUD,
     Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a", size=5 * 1024 * 1024),)), LAST,
     Rule.ATTACHMENT_TOO_LARGE),
    # Viber: subscription, not a window
    ("viber subscribed long after", VIBER, Draft(text="hi"), LAST + 90 * DAY, None),
    ("viber subscribed without a message", facts(Channel.VIBER, first_inbound_at=None, last_inbound_at=None),
     Draft(text="hi"), LAST, None),
    ("viber unsubscribed", facts(Channel.VIBER, subscription=Subscription.UNSUBSCRIBED), Draft(text="hi"), LAST,
     Rule.NOT_SUBSCRIBED),
    ("viber opened only", facts(Channel.VIBER, first_inbound_at=None, last_inbound_at=None,
                                subscription=Subscription.OPENED), Draft(text="hi"), LAST, Rule.WELCOME_ONLY),
    ("viber opened, welcome already sent", facts(Channel.VIBER, first_inbound_at=None, last_inbound_at=None,
                                                 subscription=Subscription.OPENED, welcome_sent=True),
     Draft(text="hi"), LAST, Rule.WELCOME_ONLY),
    ("viber text at limit", VIBER, Draft(text="x" * 7000), LAST, None),
    ("viber text over limit", VIBER, Draft(text="x" * 7001), LAST, Rule.TEXT_TOO_LONG),
    ("viber audio not taken", VIBER, Draft(attachments=(Attachment(kind=MessageKind.AUDIO, url="https://x/a"),)),
     LAST, Rule.ATTACHMENT_NOT_SUPPORTED),
    ("twilio file at 16 MB", TWILIO,
     Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f", size=16 * MB),)), LAST, None),
    ("twilio file one byte over 16 MB", TWILIO,
     Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f", size=16 * MB + 1),)), LAST,
     Rule.ATTACHMENT_TOO_LARGE),
    ("twilio image one byte over 5 MB", TWILIO,
     Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a", size=5 * MB + 1),)), LAST,
     Rule.ATTACHMENT_TOO_LARGE),
    ("twilio text file refused", TWILIO,
     Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f", mime_type="text/plain"),)), LAST,
     Rule.ATTACHMENT_TYPE_NOT_ALLOWED),
    ("twilio document with a caption", TWILIO,
     Draft(text="your invoice", attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f.pdf"),)), LAST,
     Rule.CAPTION_NOT_ALLOWED),
    ("cloud document with a caption", CLOUD,
     Draft(text="your invoice", attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f.pdf"),)), LAST,
     None),
    ("cloud file at 100 MB", CLOUD,
     Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f", size=100 * MB),)), LAST, None),
    ("cloud file one byte over 100 MB", CLOUD,
     Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f", size=100 * MB + 1),)), LAST,
     Rule.ATTACHMENT_TOO_LARGE),
    ("whatsapp gif image refused", CLOUD,
     Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a", mime_type="image/gif"),)), LAST,
     Rule.ATTACHMENT_TYPE_NOT_ALLOWED),
    ("whatsapp voice note with a caption", CLOUD,
     Draft(text="listen", attachments=(Attachment(kind=MessageKind.AUDIO, url="https://x/a.ogg"),)), LAST,
     Rule.CAPTION_NOT_ALLOWED),
    ("viber image at 1 MB", VIBER,
     Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a", size=MB),)), LAST, None),
    ("viber image one byte over 1 MB", VIBER,
     Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a", size=MB + 1),)), LAST,
     Rule.ATTACHMENT_TOO_LARGE),
    ("viber tag refused", VIBER, Draft(text="hi", tag="HUMAN_AGENT"), LAST, Rule.TAG_NOT_SUPPORTED),
]  # fmt: skip


@pytest.mark.parametrize(("identity", "draft", "now", "rule"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_policy_table(identity: IdentityFacts, draft: Draft, now: datetime, rule: str | None) -> None:
    decision = decide(identity, draft, now, TEMPLATES)
    if rule is None:
        assert isinstance(decision, Allowed), str(decision)
    else:
        assert isinstance(decision, Refused)
        assert decision.rule == rule
        assert decision.message


@pytest.mark.parametrize("tag", sorted(RETIRED_TAGS))
def test_every_retired_tag_is_refused_by_name(tag: str) -> None:
    decision = decide(MESSENGER, Draft(text="hi", tag=tag), LAST + 2 * DAY)
    assert isinstance(decision, Refused)
    assert decision.rule == Rule.TAG_RETIRED
    assert tag in decision.message


def test_messenger_inside_window_is_a_response_without_tag() -> None:
    decision = decide(MESSENGER, Draft(text="hi"), LAST + DAY - SECOND)
    assert decision == Allowed(basis="window", messaging_type="RESPONSE", free_text_until=LAST + DAY)


def test_messenger_outside_window_with_human_agent_is_a_message_tag() -> None:
    decision = decide(MESSENGER, Draft(text="hi", tag="HUMAN_AGENT"), LAST + 2 * DAY)
    assert decision == Allowed(basis="tag", messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")


def test_messenger_window_closed_names_the_edge_and_the_tags_still_valid() -> None:
    decision = decide(MESSENGER, Draft(text="hi"), LAST + 3 * DAY, TEMPLATES)
    assert isinstance(decision, Refused)
    assert decision.window_closed_at == LAST + DAY
    tags = {a.name: a.until for a in decision.alternatives if a.kind == "tag"}
    assert tags["HUMAN_AGENT"] == LAST + WEEK
    assert tags["ACCOUNT_UPDATE"] is None
    assert "refund_done" in {a.name for a in decision.alternatives if a.kind == "template"}
    assert "2 days ago" in decision.message


def test_messenger_tag_expired_drops_the_expired_tag_from_alternatives() -> None:
    decision = decide(MESSENGER, Draft(text="hi", tag="HUMAN_AGENT"), LAST + WEEK + SECOND, TEMPLATES)
    assert isinstance(decision, Refused)
    assert decision.window_closed_at == LAST + WEEK
    names = {a.name for a in decision.alternatives}
    assert "HUMAN_AGENT" not in names
    assert "POST_PURCHASE_UPDATE" in names


def test_whatsapp_window_closed_offers_only_templates_with_a_binding_for_the_provider() -> None:
    decision = decide(TWILIO, Draft(text="hi"), LAST + DAY + SECOND, TEMPLATES)
    assert isinstance(decision, Refused)
    assert decision.window_closed_at == LAST + DAY
    assert [a.name for a in decision.alternatives] == ["order_update"]


def test_whatsapp_window_closed_without_templates_says_wait_for_customer() -> None:
    decision = decide(CLOUD, Draft(text="hi"), LAST + 2 * DAY, ())
    assert isinstance(decision, Refused)
    assert [a.kind for a in decision.alternatives] == ["wait_for_customer"]


def test_whatsapp_template_outside_window_uses_the_binding() -> None:
    decision = decide(CLOUD, Draft(template="order_update", binding=CLOUD_BINDING), LAST + 2 * DAY)
    assert decision == Allowed(basis="template", use_template_binding=True)


def test_whatsapp_template_inside_window_goes_as_text() -> None:
    decision = decide(TWILIO, Draft(template="order_update", binding=TWILIO_BINDING, text="Hi Jane"), LAST)
    assert isinstance(decision, Allowed)
    assert decision.use_template_binding is False
    assert decision.free_text_until == LAST + DAY


def test_window_counts_from_the_provider_clock_even_when_it_is_ahead_of_ours() -> None:
    assert isinstance(decide(TWILIO, Draft(text="hi"), LAST - timedelta(minutes=5)), Allowed)


def test_viber_outside_the_session_is_allowed_but_billable() -> None:
    inside = decide(VIBER, Draft(text="hi"), LAST + DAY - SECOND)
    outside = decide(VIBER, Draft(text="hi"), LAST + DAY + SECOND)
    assert isinstance(inside, Allowed)
    assert isinstance(outside, Allowed)
    assert (inside.billable, outside.billable) == (False, True)


def test_viber_opened_only_explains_the_welcome_message() -> None:
    opened = facts(Channel.VIBER, first_inbound_at=None, last_inbound_at=None, subscription=Subscription.OPENED)
    decision = decide(opened, Draft(text="hi"), LAST)
    assert isinstance(decision, Refused)
    assert "welcome message" in decision.message
    assert "conversation_started" in decision.message


def test_viber_user_who_wrote_then_unsubscribed_is_refused() -> None:
    gone = facts(Channel.VIBER, subscription=Subscription.UNSUBSCRIBED)
    decision = decide(gone, Draft(text="hi"), LAST + SECOND)
    assert isinstance(decision, Refused)
    assert decision.rule == Rule.NOT_SUBSCRIBED


# refusals about who may be written to and when: each must say what is still allowed (an alternative)
_WHO_AND_WHEN = {
    Rule.NO_PREVIOUS_CONTACT,
    Rule.WINDOW_CLOSED,
    Rule.TEMPLATE_BINDING_REQUIRED,
    Rule.TAG_RETIRED,
    Rule.TAG_EXPIRED,
    Rule.TAG_UNKNOWN,
    Rule.TAG_TEMPLATE_ONLY,
    Rule.NOT_SUBSCRIBED,
    Rule.WELCOME_ONLY,
}


@pytest.mark.parametrize("templates", [TEMPLATES, ()], ids=["with templates", "without templates"])
@pytest.mark.parametrize(("name", "identity", "draft", "now", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_refusal_of_who_or_when_names_what_is_allowed_instead(
    name: str,
    identity: IdentityFacts,
    draft: Draft,
    now: datetime,
    expected: str | None,
    templates: tuple[TemplateOption, ...],
) -> None:
    decision = decide(identity, draft, now, templates)
    if isinstance(decision, Refused) and decision.rule in _WHO_AND_WHEN:
        assert decision.to_json()["alternatives"], name


def test_a_template_without_the_providers_binding_names_the_ones_that_have_it() -> None:
    draft = Draft(template="plain_hello", text="hello")
    with_bound = decide(TWILIO, draft, LAST + 2 * DAY, TEMPLATES)
    without = decide(TWILIO, draft, LAST + 2 * DAY, ())
    assert isinstance(with_bound, Refused)
    assert isinstance(without, Refused)
    assert [a.to_json() for a in with_bound.alternatives] == [{"kind": "template", "name": "order_update"}]
    assert "send one that has (order_update)" in with_bound.message
    assert [a.to_json() for a in without.alternatives] == [{"kind": "wait_for_customer"}]
    assert "wait for the customer to write" in without.message


def test_refusal_json_names_rule_edge_and_alternatives() -> None:
    decision = decide(CLOUD, Draft(text="hi"), LAST + 2 * DAY, TEMPLATES)
    assert isinstance(decision, Refused)
    assert decision.to_json() == {
        "rule": "window_closed",
        "message": decision.message,
        "window_closed_at": (LAST + DAY).isoformat(),
        "alternatives": [{"kind": "template", "name": "order_update"}],
    }


# ----------------------------------------------------------------- eligibility


def test_eligibility_messenger_inside_window() -> None:
    result = eligibility(MESSENGER, LAST + DAY - SECOND, TEMPLATES)
    assert result.free_text is True
    assert result.free_text_until == LAST + DAY
    assert result.blocking is None
    assert {t.tag for t in result.tags} >= {"HUMAN_AGENT", "ACCOUNT_UPDATE"}
    assert result.templates == ("order_update", "plain_hello", "refund_done")


def test_eligibility_messenger_after_window_lists_tags_until_and_tagged_templates() -> None:
    result = eligibility(MESSENGER, LAST + DAY + SECOND, TEMPLATES)
    assert result.free_text is False
    assert result.blocking is not None
    assert result.blocking.rule == Rule.WINDOW_CLOSED
    assert result.window_closed_at == LAST + DAY
    assert {t.tag: t.until for t in result.tags}["HUMAN_AGENT"] == LAST + WEEK
    assert result.templates == ("refund_done",)


def test_eligibility_messenger_after_seven_days_has_only_unlimited_tags() -> None:
    result = eligibility(MESSENGER, LAST + WEEK + SECOND, TEMPLATES)
    assert {t.tag for t in result.tags} == {"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"}
    assert result.templates == ()


def test_eligibility_whatsapp_after_window_lists_bound_templates() -> None:
    result = eligibility(CLOUD, LAST + DAY, TEMPLATES)
    assert result.free_text is False
    assert result.templates == ("order_update",)
    assert result.blocking is not None
    assert result.blocking.rule == Rule.WINDOW_CLOSED


def test_eligibility_cold_identity_is_blocked_with_nothing_offered() -> None:
    cold = facts(Channel.WHATSAPP, "twilio", first_inbound_at=None, last_inbound_at=None)
    result = eligibility(cold, LAST, TEMPLATES)
    assert result.blocking is not None
    assert result.blocking.rule == Rule.NO_PREVIOUS_CONTACT
    assert (result.free_text, result.templates, result.tags) == (False, (), ())


def test_eligibility_viber_subscribed_out_of_session_is_billable() -> None:
    result = eligibility(VIBER, LAST + 2 * DAY, TEMPLATES)
    assert result.free_text is True
    assert result.billable is True
    assert result.to_json()["notes"]


# ------------------------------------------------------------------ a wrong tag's alternatives are timely


def _tag_names(decision: Refused) -> dict[str, datetime | None]:
    return {a.name: a.until for a in decision.alternatives if a.kind == "tag" and a.name}


@pytest.mark.parametrize(
    ("now", "offers_human_agent"),
    [(LAST + 2 * DAY, True), (LAST + WEEK - SECOND, True), (LAST + WEEK, False), (LAST + 30 * DAY, False)],
)
def test_a_retired_tag_offers_human_agent_only_while_its_own_window_is_open(
    now: datetime, offers_human_agent: bool
) -> None:
    decision = decide(MESSENGER, Draft(text="hi", tag="SHIPPING_UPDATE"), now, TEMPLATES)
    assert isinstance(decision, Refused)
    assert decision.rule == Rule.TAG_RETIRED
    tags = _tag_names(decision)
    assert ("HUMAN_AGENT" in tags) is offers_human_agent
    assert "CUSTOMER_FEEDBACK" not in tags  # only Meta's Customer Feedback template may carry it
    if offers_human_agent:
        assert tags["HUMAN_AGENT"] == LAST + WEEK  # with the end of its window
        assert any(a.kind == "template" and a.name == "refund_done" for a in decision.alternatives)
    else:
        assert all(a.name != "refund_done" for a in decision.alternatives)
    assert {"ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE", "CONFIRMED_EVENT_UPDATE"} <= set(tags)  # no time limit


def test_an_unknown_tag_offers_only_the_tags_still_valid() -> None:
    decision = decide(MESSENGER, Draft(text="hi", tag="NOT_A_TAG"), LAST + 10 * DAY)
    assert isinstance(decision, Refused)
    assert decision.rule == Rule.TAG_UNKNOWN
    assert "HUMAN_AGENT" not in _tag_names(decision)


@pytest.mark.parametrize(
    ("size", "said"),
    [
        (MB + 1, "up to 1 MB (1,000,000 bytes); this one is 1,000,001 bytes"),
        (MB + 40_000, "up to 1 MB (1,000,000 bytes); this one is 1,040,000 bytes"),
        (MB + 60_000, "up to 1 MB; this one is 1.1 MB"),
        (3 * MB // 2, "up to 1 MB; this one is 1.5 MB"),
    ],
)
def test_a_size_refusal_shows_the_difference_even_for_one_byte_over(size: int, said: str) -> None:
    draft = Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a", size=size),))
    decision = decide(VIBER, draft, LAST)
    assert isinstance(decision, Refused)
    assert decision.rule == Rule.ATTACHMENT_TOO_LARGE
    assert said in decision.message


def test_a_media_refusal_names_the_provider_whose_rules_it_is() -> None:
    draft = Draft(attachments=(Attachment(kind=MessageKind.FILE, url="https://x/f", size=16 * MB + 1),))
    twilio = decide(TWILIO, draft, LAST)
    assert isinstance(twilio, Refused)
    assert twilio.message == (
        "whatsapp.twilio takes file attachments up to 16 MB (16,000,000 bytes); this one is 16,000,001 bytes"
    )
    assert decide(CLOUD, draft, LAST) == Allowed(basis="window", free_text_until=LAST + DAY)
    audio = decide(VIBER, Draft(attachments=(Attachment(kind=MessageKind.AUDIO, url="https://x/a"),)), LAST)
    assert isinstance(audio, Refused)
    assert audio.message == "viber does not take audio attachments (it takes image, video, file)"


def test_a_provider_that_declares_no_media_rules_takes_no_attachments() -> None:
    bare = facts(Channel.WHATSAPP, "relay", media=None)
    assert decide(bare, Draft(text="hi"), LAST) == Allowed(basis="window", free_text_until=LAST + DAY)
    decision = decide(bare, Draft(attachments=(Attachment(kind=MessageKind.IMAGE, url="https://x/a"),)), LAST)
    assert isinstance(decision, Refused)
    assert decision.rule == Rule.ATTACHMENT_NOT_SUPPORTED
    assert decision.message == "whatsapp.relay does not take image attachments (it takes none)"


RULES = MediaRules(
    sizes={MessageKind.IMAGE: 10, MessageKind.FILE: 10},
    types={MessageKind.IMAGE: frozenset({"image/png"})},
    uncaptioned=frozenset({MessageKind.FILE}),
    per_message=2,
)


@pytest.mark.parametrize(
    ("text", "attachments", "rule"),
    [
        (None, [(MessageKind.IMAGE, "image/png", 10), (MessageKind.FILE, None, 10)], None),
        (None, [(MessageKind.IMAGE, "image/png", 1)] * 3, Rule.TOO_MANY_ATTACHMENTS),  # the count first
        ("t", [(MessageKind.VIDEO, "image/gif", 11)], Rule.ATTACHMENT_NOT_SUPPORTED),  # then the kind
        ("t", [(MessageKind.IMAGE, "image/gif", 11)], Rule.ATTACHMENT_TYPE_NOT_ALLOWED),  # its type
        ("t", [(MessageKind.FILE, "text/plain", 11)], Rule.ATTACHMENT_TOO_LARGE),  # its size (any file type)
        ("t", [(MessageKind.FILE, "text/plain", 10)], Rule.CAPTION_NOT_ALLOWED),  # a caption last
        (
            "t",
            [(MessageKind.IMAGE, "image/png", 10), (MessageKind.IMAGE, "image/gif", 1)],
            Rule.ATTACHMENT_TYPE_NOT_ALLOWED,
        ),
    ],
)
def test_media_rules_are_checked_count_first_then_kind_type_size_and_caption(
    text: str | None, attachments: list[tuple[MessageKind, str | None, int]], rule: str | None
) -> None:
    draft = Draft(
        text=text,
        attachments=tuple(Attachment(kind=k, url="https://x/a", mime_type=m, size=n) for k, m, n in attachments),
    )
    refused = media_refusal(draft, "relay", RULES)
    assert (refused.rule if refused else None) == rule
    if rule == Rule.TOO_MANY_ATTACHMENTS:
        assert refused is not None
        assert refused.message == "relay takes 2 attachments per message; send them one by one"


def test_messenger_window_closed_after_the_human_agent_week_suggests_only_what_it_offers() -> None:
    decision = decide(MESSENGER, Draft(text="hi"), LAST + WEEK + 2 * DAY, TEMPLATES)
    assert isinstance(decision, Refused)
    assert decision.rule is Rule.WINDOW_CLOSED
    tags = [a.name for a in decision.alternatives if a.kind == "tag"]
    assert "HUMAN_AGENT" not in tags
    assert tags  # the tags without a time limit
    assert all(tag in decision.message for tag in tags)
    assert "HUMAN_AGENT for a person's reply" not in decision.message
    assert "HUMAN_AGENT tag's 7 days ended 2 days ago" in decision.message


# ------------------------------------------------------------------ HUMAN_AGENT is a person's tag


def test_an_automated_message_outside_the_window_cannot_use_human_agent() -> None:
    """Meta prohibits automated messages with HUMAN_AGENT: a bot's (or the hub's own) is refused and offered the
    tags it may use instead; a person's is sent with the tag."""
    now = LAST + 2 * DAY
    bot = decide(MESSENGER, Draft(text="hi", tag="HUMAN_AGENT", automated=True), now, TEMPLATES)
    assert isinstance(bot, Refused)
    assert bot.rule == Rule.TAG_HUMAN_ONLY == "tag_human_only"
    assert bot.window_closed_at == LAST + DAY
    offered = [a.name for a in bot.alternatives]
    assert "HUMAN_AGENT" not in offered
    assert "refund_done" not in offered  # a template tagged HUMAN_AGENT is no way out either
    assert "POST_PURCHASE_UPDATE" in offered
    person = decide(MESSENGER, Draft(text="hi", tag="HUMAN_AGENT"), now, TEMPLATES)
    assert person == Allowed(basis="tag", messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")


def test_an_automated_message_keeps_the_window_and_the_other_tags() -> None:
    inside = decide(MESSENGER, Draft(text="hi", tag="HUMAN_AGENT", automated=True), LAST + DAY - SECOND)
    assert isinstance(inside, Allowed)
    assert (inside.messaging_type, inside.tag) == ("RESPONSE", None)
    tagged = decide(MESSENGER, Draft(text="hi", tag="POST_PURCHASE_UPDATE", automated=True), LAST + 3 * DAY)
    assert tagged == Allowed(basis="tag", messaging_type="MESSAGE_TAG", tag="POST_PURCHASE_UPDATE")


def test_a_bots_window_closed_refusal_and_eligibility_never_offer_human_agent() -> None:
    now = LAST + 2 * DAY
    refused = decide(MESSENGER, Draft(text="hi", automated=True), now, TEMPLATES)
    assert isinstance(refused, Refused)
    assert refused.rule == Rule.WINDOW_CLOSED
    assert "HUMAN_AGENT" not in [a.name for a in refused.alternatives]
    assert "never HUMAN_AGENT" in refused.message
    told = eligibility(MESSENGER, now, TEMPLATES, automated=True)
    assert "HUMAN_AGENT" not in [t.tag for t in told.tags]
    assert "refund_done" not in told.templates
    assert "HUMAN_AGENT" in [t.tag for t in eligibility(MESSENGER, now, TEMPLATES).tags]


@pytest.mark.parametrize(
    ("after", "words"),
    [(SECOND, "1 second ago"), (2 * SECOND, "2 seconds ago"), (timedelta(hours=1, minutes=30), "1 hour ago"),
     (timedelta(hours=36), "1 day ago"), (3 * DAY, "3 days ago")],
)  # fmt: skip
def test_a_refusal_says_how_long_ago_in_plain_words(after: timedelta, words: str) -> None:
    decision = decide(TWILIO, Draft(text="hi"), LAST + DAY + after)
    assert isinstance(decision, Refused)
    assert f"closed {words}:" in decision.message


# ------------------------------------------------------------------ a tag only Meta's own template may carry


@pytest.mark.parametrize("automated", [False, True], ids=["person", "bot"])
def test_customer_feedback_on_text_after_the_window_names_what_is_allowed_instead(automated: bool) -> None:
    """Meta: CUSTOMER_FEEDBACK may only carry its Customer Feedback template (a survey form the hub does not
    send); free text with it "is prohibited and will fail". The refusal says so and offers the tags that apply."""
    now = LAST + 2 * DAY
    tagged = (*TEMPLATES, TemplateOption(name="survey", tag="CUSTOMER_FEEDBACK"))
    draft = Draft(text="How did we do?", tag="CUSTOMER_FEEDBACK", automated=automated)
    decision = decide(MESSENGER, draft, now, tagged)
    assert isinstance(decision, Refused)
    assert decision.rule == Rule.TAG_TEMPLATE_ONLY == "tag_template_only"
    assert "Customer Feedback template" in decision.message
    assert "which the hub does not send" in decision.message
    assert decision.window_closed_at == LAST + DAY
    tags = _tag_names(decision)
    assert "CUSTOMER_FEEDBACK" not in tags
    assert all(a.name != "survey" for a in decision.alternatives)  # a template carrying it is no way out either
    assert {"ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE", "CONFIRMED_EVENT_UPDATE"} <= set(tags)
    assert ("HUMAN_AGENT" in tags) is not automated
    if not automated:
        assert "HUMAN_AGENT for a person's reply within 7 days" in decision.message


def test_customer_feedback_is_never_offered_by_eligibility_nor_named_as_allowed() -> None:
    tagged = (*TEMPLATES, TemplateOption(name="survey", tag="CUSTOMER_FEEDBACK"))
    for now in (LAST, LAST + 2 * DAY):
        result = eligibility(MESSENGER, now, tagged)
        assert "CUSTOMER_FEEDBACK" not in {t.tag for t in result.tags}
        assert ("survey" in result.templates) is (now == LAST)  # inside the window every template goes as text
    unknown = decide(MESSENGER, Draft(text="hi", tag="NOT_A_TAG"), LAST)
    assert isinstance(unknown, Refused)
    assert "CUSTOMER_FEEDBACK" not in unknown.message
