"""Properties of the outbound rules that must hold for every identity, message and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hub.model import Channel, Subscription, TemplateBinding
from hub.policy import (
    MESSENGER_TAGS,
    RETIRED_TAGS,
    Allowed,
    Draft,
    IdentityFacts,
    Refused,
    Rule,
    TemplateOption,
    decide,
    eligibility,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PROVIDERS = {Channel.MESSENGER: ["messenger"], Channel.WHATSAPP: ["twilio", "cloud"], Channel.VIBER: ["viber"]}
RULES = {value for name, value in vars(Rule).items() if name.isupper()}

seconds = st.integers(min_value=0, max_value=40 * 24 * 3600)


@st.composite
def identities(draw: st.DrawFn) -> IdentityFacts:
    channel = draw(st.sampled_from(list(Channel)))
    wrote = draw(st.booleans())
    last = EPOCH + timedelta(seconds=draw(seconds)) if wrote else None
    first = last - timedelta(seconds=draw(seconds)) if last else None
    subscription = draw(st.sampled_from([None, *Subscription])) if channel is Channel.VIBER else None
    return IdentityFacts(
        channel=channel,
        provider=draw(st.sampled_from(PROVIDERS[channel])),
        first_inbound_at=first,
        last_inbound_at=last,
        subscription=subscription,
        welcome_sent=draw(st.booleans()),
    )


bindings = st.sampled_from(
    [None, TemplateBinding(content_sid="HX1"), TemplateBinding(name="order_update", language="en")]
)
tags = st.sampled_from([None, *MESSENGER_TAGS, *sorted(RETIRED_TAGS), "NOT_A_TAG"])


@st.composite
def drafts(draw: st.DrawFn) -> Draft:
    template = draw(st.sampled_from([None, "order_update"]))
    return Draft(
        text=draw(st.one_of(st.none(), st.text(min_size=1, max_size=20), st.just("x" * 5000))),
        template=template,
        binding=draw(bindings) if template else None,
        tag=draw(tags),
    )


templates = st.lists(
    st.builds(
        TemplateOption,
        name=st.sampled_from(["a", "b", "c"]),
        providers=st.frozensets(st.sampled_from(["twilio", "cloud"])),
        tag=st.sampled_from([None, "HUMAN_AGENT", "ACCOUNT_UPDATE"]),
    ),
    max_size=3,
)


@given(identities(), drafts(), seconds, seconds, templates)
def test_allowed_at_t_is_allowed_at_any_earlier_time_after_the_last_inbound(
    identity: IdentityFacts, draft: Draft, later: int, earlier_fraction: int, options: list[TemplateOption]
) -> None:
    base = identity.last_inbound_at or EPOCH
    t = base + timedelta(seconds=later)
    t_earlier = base + timedelta(seconds=later * (earlier_fraction % 1000) // 1000)
    if isinstance(decide(identity, draft, t, options), Allowed):
        assert isinstance(decide(identity, draft, t_earlier, options), Allowed)


@given(identities(), drafts(), seconds, templates)
def test_the_templates_change_only_a_refusals_alternatives_never_the_decision(
    identity: IdentityFacts, draft: Draft, offset: int, options: list[TemplateOption]
) -> None:
    # the reply use case reads the templates only when the policy refuses without them (hub/usecases/outbound.py)
    now = EPOCH + timedelta(seconds=offset)
    without, with_them = decide(identity, draft, now), decide(identity, draft, now, options)
    assert type(without) is type(with_them)
    if isinstance(without, Allowed):
        assert without == with_them
    else:
        assert isinstance(with_them, Refused)
        assert (without.rule, without.message, without.window_closed_at) == (
            with_them.rule,
            with_them.message,
            with_them.window_closed_at,
        )


@given(identities(), drafts(), seconds, templates)
def test_every_refusal_names_a_known_rule_and_explains_itself(
    identity: IdentityFacts, draft: Draft, offset: int, options: list[TemplateOption]
) -> None:
    decision = decide(identity, draft, EPOCH + timedelta(seconds=offset), options)
    if isinstance(decision, Refused):
        assert decision.rule in RULES
        assert decision.message
        if decision.rule in (Rule.WINDOW_CLOSED, Rule.TAG_EXPIRED, Rule.TEMPLATE_BINDING_REQUIRED):
            assert decision.window_closed_at is not None


@given(identities(), seconds, templates)
def test_whatsapp_refusal_offers_a_template_whenever_one_has_a_binding_for_the_provider(
    identity: IdentityFacts, offset: int, options: list[TemplateOption]
) -> None:
    decision = decide(identity, Draft(text="hello"), EPOCH + timedelta(seconds=offset), options)
    if identity.channel is Channel.WHATSAPP and isinstance(decision, Refused) and decision.rule == Rule.WINDOW_CLOSED:
        bound = {t.name for t in options if identity.provider in t.providers}
        offered = {a.name for a in decision.alternatives if a.kind == "template"}
        assert offered == bound
        assert decision.alternatives


@given(identities(), seconds)
def test_messenger_window_refusal_always_offers_a_tag(identity: IdentityFacts, offset: int) -> None:
    decision = decide(identity, Draft(text="hello"), EPOCH + timedelta(seconds=offset))
    if identity.channel is Channel.MESSENGER and isinstance(decision, Refused) and decision.rule == Rule.WINDOW_CLOSED:
        assert any(a.kind == "tag" for a in decision.alternatives)


@given(identities(), seconds, templates)
def test_eligibility_agrees_with_decide_about_free_text(
    identity: IdentityFacts, offset: int, options: list[TemplateOption]
) -> None:
    now = EPOCH + timedelta(seconds=offset)
    result = eligibility(identity, now, options)
    assert result.free_text == isinstance(decide(identity, Draft(text="hello"), now, options), Allowed)
    if result.free_text_until is not None:
        assert result.free_text_until > now


@given(identities(), drafts(), seconds)
def test_a_cold_identity_is_never_allowed(identity: IdentityFacts, draft: Draft, offset: int) -> None:
    cold = IdentityFacts(channel=identity.channel, provider=identity.provider)
    assert isinstance(decide(cold, draft, EPOCH + timedelta(seconds=offset)), Refused)
