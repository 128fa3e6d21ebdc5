"""Rendering, refusals, variants, channel limits, bindings and filters of hub.templates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hub.model import TEXT_LIMITS, Channel, Contact, TemplateBinding
from hub.templates import (
    TemplateDraft,
    TemplateError,
    TemplateVersion,
    binding_for,
    context_record,
    preview_context,
    render,
    validate,
)

SID = "HX0123456789abcdef0123456789abcdef"


def version(body: str, variables: dict[str, str] | None = None, **fields: Any) -> TemplateVersion:
    return TemplateVersion(
        name=fields.pop("name", "t"),
        version=fields.pop("version", 1),
        description=None,
        body=body,
        variables=variables or {},
        variants=fields.pop("variants", {}),
        tag=fields.pop("tag", None),
        bindings=fields.pop("bindings", {}),
    )


def refusal(draft: TemplateDraft) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        validate(draft)
    return caught.value


# ------------------------------------------------------------------- rendering

RENDER_CASES = [
    ("Hi {{ name }}", {"name": "Ann"}, "Hi Ann"),
    ("  \n Hi {{ name }} \n\n", {"name": "Ann"}, "Hi Ann"),
    ("{% if n > 1 %}{{ n }} items{% else %}one item{% endif %}", {"n": 3}, "3 items"),
    ("{{ name | upper }} / {{ name | title }}", {"name": "ann lee"}, "ANN LEE / Ann Lee"),
    ("{{ name | truncate(8, true) }}", {"name": "a very long name"}, "a ver..."),
    ("{{ note | default('none', true) }}", {"note": ""}, "none"),
    ("{% for w in name.split() %}[{{ w }}]{% endfor %}", {"name": "a b"}, "[a][b]"),
    ("Agent {{ agent.display_name }} in {{ queue.name }}", {}, "Agent Sam in Support"),
]


@pytest.mark.parametrize(("body", "values", "expected"), RENDER_CASES)
def test_render_produces_the_expected_text(body: str, values: dict[str, Any], expected: str) -> None:
    template = version(body, dict.fromkeys(values, "x"))
    rendered = render(template, values, channel=Channel.WHATSAPP, context=preview_context(Channel.WHATSAPP))
    assert rendered.text == expected
    assert (rendered.name, rendered.version) == ("t", 1)


def test_render_names_every_missing_variable() -> None:
    template = version("{{ a }} {{ b }} {{ c }}", {"a": "1", "b": "2", "c": "3"})
    with pytest.raises(TemplateError) as caught:
        render(template, {"b": "x"}, channel=Channel.VIBER)
    assert caught.value.code == "missing_variables"
    assert caught.value.missing == ("a", "c")


def test_render_refuses_variables_the_template_does_not_declare() -> None:
    template = version("{{ a }}", {"a": "1"})
    with pytest.raises(TemplateError) as caught:
        render(template, {"a": "1", "b": "2"}, channel=Channel.VIBER)
    assert caught.value.code == "unknown_variables"
    assert caught.value.missing == ("b",)


def test_a_missing_context_field_is_named_with_its_object() -> None:
    template = version("Dear {{ contact.company }}")
    with pytest.raises(TemplateError) as caught:
        render(template, {}, channel=Channel.VIBER, context={"contact": {"name": "Ann"}})
    assert caught.value.code == "missing_variables"
    assert caught.value.missing == ("contact.company",)


def test_optional_context_fields_use_default() -> None:
    template = version("Dear {{ contact.company | default(contact.name) }}")
    contact = Contact(id=1, name="Ann")  # company is None: left out of the context
    rendered = render(template, {}, channel=Channel.VIBER, context={"contact": contact})
    assert rendered.text == "Dear Ann"


def test_context_record_leaves_out_none_and_secrets() -> None:
    record = context_record(Contact(id=3, name="Ann", phone="+1", time_zone=None))
    assert record == {"id": 3, "name": "Ann", "phone": "+1"}


# --------------------------------------------------------------------- refusals

REFUSALS = [
    ("Hi {{ name", {}, "template_syntax", 1),
    ("line one\n{% if x %}never closed", {"x": "1"}, "template_syntax", 2),
    ("Hi\n\n{{ order }}", {}, "undeclared_variables", 3),
    ("{{ contact.no_such_field }}", {}, "missing_variables", 1),
    ("{% if false %}x{% endif %}", {}, "empty_output", None),
    ("{{ 'x' * 3000 }}", {}, "too_long", None),
    ("{{ 1 / 0 }}", {}, "render_error", 1),
    ("{{ name | nosuchfilter }}", {"name": "a"}, "template_syntax", 1),
    ("{% include 'other' %}", {}, "unsafe_template", 1),
    ("{{ x.__class__ }}", {"x": "a"}, "unsafe_template", 1),
]


@pytest.mark.parametrize(("body", "variables", "code", "line"), REFUSALS)
def test_validate_refuses_with_code_and_line(body: str, variables: dict[str, str], code: str, line: int | None) -> None:
    error = refusal(TemplateDraft(name="t", body=body, variables=variables))
    assert error.code == code
    if line is not None:
        assert error.line == line


METADATA_REFUSALS = [
    {"name": "Not A Slug"},
    {"variables": {"contact": "x"}},
    {"variables": {"1bad": "x"}},
    {"variables": {"name": 3}},
    {"variants": {"telegram": "hi"}},
    {"tag": "PROMOTION"},
    {"bindings": {"twilio": {"content_sid": "nope"}}},
    {"bindings": {"twilio": {"content_sid": SID, "variables": {"1": "undeclared"}}}},
    {"bindings": {"twilio": {"content_sid": SID, "variables": {"one": "name"}}}},
    {"bindings": {"cloud": {"name": "order_update", "language": "english", "parameters": []}}},
    {"bindings": {"cloud": {"name": "order_update", "language": "en", "parameters": ["ghost"]}}},
    {"bindings": {"sms": {}}},
]


@pytest.mark.parametrize("fields", METADATA_REFUSALS)
def test_validate_refuses_malformed_metadata(fields: dict[str, Any]) -> None:
    draft = TemplateDraft(**{"name": "t", "body": "Hi {{ name }}", "variables": {"name": "Ann"}, **fields})
    assert refusal(draft).code == "invalid_template"


def test_validate_accepts_a_complete_template() -> None:
    validate(
        TemplateDraft(
            name="order_update",
            body="Hi {{ name }}, order {{ order }} shipped {{ when | date }}.",
            variables={"name": "Ann", "order": "A-1", "when": "2026-03-01T10:00:00Z"},
            variants={"viber": "Order {{ order }} is on its way 🚚"},
            tag="POST_PURCHASE_UPDATE",
            bindings={
                "twilio": {"content_sid": SID, "variables": {"1": "name", "2": "order"}},
                "cloud": {"name": "order_update", "language": "en_US", "parameters": ["contact.name", "order"]},
            },
        )
    )


# ------------------------------------------------------------ variants and limits


def test_a_variant_replaces_the_body_on_its_channel_only() -> None:
    template = version("Default {{ a }}", {"a": "1"}, variants={"viber": "Viber {{ a }}"})
    assert render(template, {"a": "x"}, channel=Channel.VIBER).text == "Viber x"
    assert render(template, {"a": "x"}, channel=Channel.MESSENGER).text == "Default x"


def test_each_variant_is_validated_on_its_own() -> None:
    draft = TemplateDraft(name="t", body="ok", variants={"messenger": "{{ nope }}"})
    error = refusal(draft)
    assert (error.code, error.channel) == ("undeclared_variables", Channel.MESSENGER)


@pytest.mark.parametrize("channel", list(Channel))
def test_the_channel_text_limit_is_exact(channel: Channel) -> None:
    limit = TEXT_LIMITS[channel]
    template = version("{{ text }}", {"text": "x"})
    assert len(render(template, {"text": "y" * limit}, channel=channel).text) == limit
    with pytest.raises(TemplateError) as caught:
        render(template, {"text": "y" * (limit + 1)}, channel=channel)
    assert caught.value.code == "too_long"


def test_a_body_too_long_for_messenger_is_refused_unless_messenger_has_a_variant() -> None:
    long_body = "x" * 2500
    assert refusal(TemplateDraft(name="t", body=long_body)).channel is Channel.MESSENGER
    validate(TemplateDraft(name="t", body=long_body, variants={"messenger": "short"}))


def test_limits_table_matches_the_providers() -> None:
    assert TEXT_LIMITS == {Channel.MESSENGER: 2000, Channel.WHATSAPP: 4096, Channel.VIBER: 7000}


# ----------------------------------------------------------------------- bindings

BINDINGS = {
    "twilio": {"content_sid": SID, "variables": {"2": "order", "1": "name"}},
    "cloud": {"name": "order_update", "language": "en_US", "parameters": ["name", "order", "contact.name"]},
}


def test_whatsapp_rendering_carries_both_provider_mappings() -> None:
    template = version("Hi {{ name }}", {"name": "A", "order": "B"}, bindings=BINDINGS)
    rendered = render(
        template, {"name": "Ann", "order": "A-7"}, channel=Channel.WHATSAPP, context={"contact": {"name": "Ann L"}}
    )
    assert rendered.binding == TemplateBinding(
        content_sid=SID,
        content_variables=(("1", "Ann"), ("2", "A-7")),
        name="order_update",
        language="en_US",
        parameters=("Ann", "A-7", "Ann L"),
    )


@pytest.mark.parametrize(("provider", "sid", "cloud_name"), [("twilio", SID, None), ("cloud", None, "order_update")])
def test_the_provider_narrows_the_binding(provider: str, sid: str | None, cloud_name: str | None) -> None:
    template = version("Hi", {"name": "A", "order": "B"}, bindings=BINDINGS)
    binding = binding_for(
        template,
        {"name": "a", "order": "b"},
        channel=Channel.WHATSAPP,
        context={"contact": {"name": "c"}},
        provider=provider,
    )
    assert binding is not None
    assert (binding.content_sid, binding.name) == (sid, cloud_name)


@pytest.mark.parametrize("channel", [Channel.MESSENGER, Channel.VIBER])
def test_other_channels_get_no_binding(channel: Channel) -> None:
    template = version("Hi", {"name": "A", "order": "B"}, bindings=BINDINGS)
    assert render(template, {"name": "a", "order": "b"}, channel=channel, context={}).binding is None


def test_the_messenger_tag_comes_with_messenger_only() -> None:
    template = version("Hi", tag="HUMAN_AGENT")
    assert render(template, {}, channel=Channel.MESSENGER).tag == "HUMAN_AGENT"
    assert render(template, {}, channel=Channel.WHATSAPP).tag is None


# ------------------------------------------------------------------------ filters

WHEN = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)
FILTER_CASES = [
    ("{{ when | date }}", "Europe/Prague", "02 Jul 2026"),
    ("{{ when | date }}", None, "01 Jul 2026"),
    ("{{ when | datetime }}", "America/New_York", "01 Jul 2026 18:30"),
    ("{{ when | time }}", "Asia/Tokyo", "07:30"),
    ("{{ when | date('%Y-%m-%d') }}", "Not/AZone", "2026-07-01"),
    ("{{ when | date('%Y-%m-%d') }}", "Europe", "2026-07-01"),
    ("{{ '2026-07-01T22:30:00Z' | datetime }}", "Europe/London", "01 Jul 2026 23:30"),
    ("{{ '2026-07-01' | date('%d.%m.') }}", "Europe/Prague", "01.07."),
    ("{{ '+14155550123' | phone }}", None, "+1 415 555 0123"),
    ("{{ 'whatsapp:+420600123456' | phone }}", None, "+420 600 123 456"),
    ("{{ '+442079460958' | phone }}", None, "+44 207 946 0958"),
    ("{{ '004915112345678' | phone }}", None, "+49 151 123 456 78"),
    ("{{ '0600 123 456' | phone }}", None, "0600 123 456"),
]


@pytest.mark.parametrize(("body", "zone", "expected"), FILTER_CASES)
def test_filters(body: str, zone: str | None, expected: str) -> None:
    template = version(body, {"when": "x"} if "when" in body else {})
    contact = {"name": "Ann", **({"time_zone": zone} if zone else {})}
    values = {"when": WHEN} if "when" in body else {}
    assert render(template, values, channel=Channel.VIBER, context={"contact": contact}).text == expected


def test_compiled_templates_are_cached_per_version() -> None:
    from hub.templates._compile import compile_cached

    template = version("Hi {{ name }}", {"name": "a"}, name="cache-probe", version=7)
    render(template, {"name": "a"}, channel=Channel.VIBER)
    before = compile_cached.cache_info().hits
    render(template, {"name": "b"}, channel=Channel.VIBER)
    assert compile_cached.cache_info().hits == before + 1


SUBSTITUTION_BODIES = [
    "Hi {{ name }}!",
    "Literal {braces} and {{ '{' }} and {0} stay: {{ name }}",
    "{{ name }}{{ name }} {# a comment #} {{ contact.name }} / {{ agent.display_name }}",
    "Trailing newline kept out\n",
    "{{ contact.items }}",  # a field, never the dict method: missing here, on both paths
]


@pytest.mark.parametrize("body", SUBSTITUTION_BODIES)
@pytest.mark.parametrize("value", ["Ann", "{name} {0} {{x}}", "ünï 🚚"])
def test_the_substitution_fast_path_renders_exactly_like_jinja(body: str, value: str) -> None:
    from dataclasses import replace

    from hub.templates._compile import compile_source
    from hub.templates._context import Record
    from hub.templates._render import run

    compiled = compile_source(body)
    slow = replace(compiled, pattern=None)
    ctx = {k: Record(k, v) for k, v in preview_context(Channel.VIBER).items()}
    try:
        expected: str | None = run(slow, {**ctx, "name": value})
    except TemplateError:
        expected = None
    if expected is None:
        with pytest.raises(TemplateError):
            run(compiled, {**ctx, "name": value})
    else:
        assert run(compiled, {**ctx, "name": value}) == expected


def test_simple_templates_take_the_fast_path_and_logic_does_not() -> None:
    from hub.templates._compile import compile_source

    assert (
        compile_source("Hi {{ name }} from {{ agent.display_name }}").pattern == "Hi {name} from {agent[display_name]}"
    )
    assert compile_source("Hi {{ name | upper }}").pattern is None
    assert compile_source("{% if a %}x{% endif %}").pattern is None


def test_context_objects_expose_fields_not_methods() -> None:
    template = version("{{ contact.keys }}")
    with pytest.raises(TemplateError) as caught:
        render(template, {}, channel=Channel.VIBER, context={"contact": {"name": "Ann"}})
    assert caught.value.missing == ("contact.keys",)
    assert render(template, {}, channel=Channel.VIBER, context={"contact": {"keys": "3 keys"}}).text == "3 keys"


def test_internal_guard_filters_cannot_be_named_in_a_template() -> None:
    error = refusal(TemplateDraft(name="t", body="{{ name | _guard_emit }}", variables={"name": "a"}))
    assert error.code == "unsafe_template"


def test_render_context_fills_contact_from_an_unpaired_identity() -> None:
    from hub.model import Identity
    from hub.templates import render_context

    identity = Identity(
        id=4, account_id="wa", channel=Channel.WHATSAPP, external_id="+1", display_name="Jo", phone="+1"
    )
    context = render_context(identity=identity)
    assert context["contact"] == {"name": "Jo", "phone": "+1"}
    assert context["identity"]["channel"] == "whatsapp"
    assert set(context) == {"contact", "identity"}
    paired = render_context(identity=identity, contact=Contact(id=1, name="Joanna Smith"))
    assert paired["contact"] == {"id": 1, "name": "Joanna Smith"}


def test_render_stands_in_a_contact_for_an_unpaired_identity() -> None:
    from hub.model import Identity

    identity = Identity(id=4, account_id="wa", channel=Channel.WHATSAPP, external_id="+1", display_name="Jo")
    template = version("Hi {{ contact.name }}")
    assert render(template, {}, channel=Channel.WHATSAPP, context={"identity": identity}).text == "Hi Jo"


def test_a_template_cannot_carry_a_tag_only_metas_own_template_may() -> None:
    """CUSTOMER_FEEDBACK may only carry Meta's Customer Feedback template: a hub template is text, never that."""
    draft = TemplateDraft(name="t", body="How did we do?", variables={}, tag="CUSTOMER_FEEDBACK")
    error = refusal(draft)
    assert error.code == "invalid_template"
    assert "Customer Feedback template" in str(error)
