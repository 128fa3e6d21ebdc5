"""The size budget stops a string while it is being built, not after: memory stays bounded.

Each case is rendered once with a short value (which compiles the template), then
with a long one under tracemalloc; the peak must stay near the budget itself
(64 Ki characters), far below what building the string first would take.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hub.model import Channel
from hub.templates import MAX_OUTPUT_CHARS, TemplateDraft, TemplateError, TemplateVersion, render, validate

LONG = "x" * 60_000
PEAK_LIMIT = 4 * 1024 * 1024  # building any of these strings first would take 12 MB or more


def stored(body: str) -> TemplateVersion:
    """A saved template, as any agent may render it with their own values."""
    return TemplateVersion(
        name="chain",
        version=1,
        description=None,
        body=body,
        variables={"v": "x"},
        variants={},
        tag=None,
        bindings={},
    )


@contextmanager
def peak() -> Iterator[list[int]]:
    found: list[int] = []
    tracemalloc.start()
    try:
        yield found
    finally:
        found.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


BOMBS = [
    # a chain of concatenations of a long variable: 200 x 60,000 characters
    "{{ " + " ~ ".join(["v"] * 200) + " }}",
    "{% set s = " + " ~ ".join(["v"] * 200) + " %}{{ s|length }}",
    "{% for i in [1] %}{{ " + " ~ ".join(["v"] * 200) + " }}{% endfor %}",
    # a short list of references to a long string has a long text
    "{% set l = [v] * 200 %}{{ l }}",
    "{% set l = [v] * 200 %}{{ l ~ '' }}",
    "{% set l = [v] * 200 %}{{ l|string|length }}",
    "{% set l = [v] * 200 %}{{ l|upper|length }}",
    "{% set l = [v] * 200 %}{{ [l]|join|length }}",
    "{% set l = [v] * 200 %}{{ l|replace('a', 'b')|length }}",
    "{% set l = {'k': [v] * 200} %}{% for i in [1] %}{{ l }}{% endfor %}",
]


@pytest.mark.parametrize("body", BOMBS)
def test_a_long_value_is_stopped_before_the_string_is_built(body: str) -> None:
    template = stored(body)
    render(template, {"v": "x"}, channel=Channel.VIBER)  # compiles it; short values are fine
    with peak() as peaked, pytest.raises(TemplateError) as refused:
        render(template, {"v": LONG}, channel=Channel.VIBER)
    assert refused.value.code == "too_long"
    assert peaked[0] < PEAK_LIMIT, f"peak {peaked[0]} bytes"


def test_nine_thousand_concatenations_are_refused_at_save_without_building_them() -> None:
    body = "{% set x = 'x' * 60000 %}{{ " + "~".join(["x"] * 9000) + " }}"
    assert len(body) < 20_000
    draft = TemplateDraft(name="chain", body=body, variables={})
    with peak() as peaked, pytest.raises(TemplateError) as refused:
        validate(draft)
    assert refused.value.code == "too_long"
    # what remains is compiling a 9,000-operand expression (once per version); the string would be 540 MB
    assert peaked[0] < 128 * 1024 * 1024, f"peak {peaked[0]} bytes"


def test_a_saved_chain_of_nine_thousand_concatenations_renders_a_long_variable_in_bounded_memory() -> None:
    template = stored("{{ " + "~".join(["v"] * 9000) + " }}")
    with pytest.raises(TemplateError):
        render(template, {"v": "x"}, channel=Channel.VIBER)  # compiles it (9,000 characters: too long for Viber)
    with peak() as peaked, pytest.raises(TemplateError) as refused:
        render(template, {"v": "x" * 2000}, channel=Channel.VIBER)  # 18 MB if built first
    assert refused.value.code == "too_long"
    assert peaked[0] < PEAK_LIMIT, f"peak {peaked[0]} bytes"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("{{ 'a' ~ 1 ~ v ~ none }}", "a1xNone"),
        ("{{ [1, 'b'] }}|{{ {'k': v} }}", "[1, 'b']|{'k': 'x'}"),
        ("{{ ([v] * 3)|join('-') }} {{ [v, v]|string }}", "x-x-x ['x', 'x']"),
        ("{% for i in range(3) %}{{ i ~ v }}{% endfor %}", "0x1x2x"),
    ],
)
def test_ordinary_concatenation_and_printing_are_unchanged(body: str, text: str) -> None:
    assert render(stored(body), {"v": "x"}, channel=Channel.VIBER).text == text


def test_concatenation_up_to_the_budget_still_renders() -> None:
    half = "y" * (MAX_OUTPUT_CHARS // 2)
    assert render(stored("{{ (v ~ v)|length }}"), {"v": half}, channel=Channel.VIBER).text == str(MAX_OUTPUT_CHARS)


@pytest.mark.parametrize(
    "body",
    [
        "{{ " + "(" * 3000 + "v" + ")" * 3000 + " }}",
        "{{ " + "[" * 3000 + "]" * 3000 + " }}",
        "{{ " + "{'a': " * 2000 + "1" + "}" * 2000 + " }}",
        "{{ " + "(" * 150 + "v" + ")" * 150 + " }}",  # Jinja parses it; Python's compiler does not
    ],
)
def test_deeply_nested_brackets_are_a_syntax_error_at_save_and_at_render(body: str) -> None:
    with pytest.raises(TemplateError) as at_save:
        validate(TemplateDraft(name="nested", body=body, variables={"v": "x"}))
    assert at_save.value.code == "template_syntax"
    with pytest.raises(TemplateError) as at_render:
        render(stored(body), {"v": "x"}, channel=Channel.VIBER)
    assert at_render.value.code == "template_syntax"
