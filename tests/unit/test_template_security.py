"""Well-known server-side template injection payloads and resource bombs.

Each must be refused at save (``validate``) AND be unable to do harm when it
reaches ``render`` anyway (a row written before the rules, a forged import):
rendering either refuses or produces harmless text, never Python internals,
and always returns promptly.
"""

from __future__ import annotations

import pytest

from hub.model import Channel
from hub.templates import TemplateDraft, TemplateError, TemplateVersion, preview_context, render, validate

SSTI_PAYLOADS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__.os }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request }}",
    "{{ request.application.__globals__.__builtins__.__import__('os') }}",
    "{{ range.__globals__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ '{0.__class__}'.format(name) }}",
    "{{ '{0.__class__.__mro__}'.format(name) }}",
    "{{ name.format_map({}) }}",
    "{{ name|attr('__class__') }}",
    "{{ name|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ name['__class__'] }}",
    "{{ name['\\x5f\\x5fclass\\x5f\\x5f'] }}",
    "{{ name|map(attribute='__class__')|list }}",
    "{{ [name]|selectattr('__class__')|list }}",
    "{{ '%s' % name }}",
    "{{ name|format(1) }}",
    "{% set x = name.__class__ %}{{ x }}",
    "{% include 'secret.txt' %}",
    "{% import 'macros' as m %}{{ m }}",
    "{% extends 'base' %}",
    "{{ loop.__class__ }}{% for i in [1] %}{{ loop.__class__ }}{% endfor %}",
    "{{ contact.__class__.__init__ }}",
    "{{ contact.update({'name': 'x'}) }}",
    "{{ name.__len__() }}",
]

BOMBS = [
    "{% for i in range(10**9) %}x{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ name * 100000000 }}",
    "{{ [1] * 10**8 }}",
    "{{ 9 ** (9 ** 9) }}",
    "{{ 'a'.ljust(10**9) }}",
    "{{ 'a'.center(10**9) }}",
    "{{ 'abc'|center(999999999) }}",
    "{{ ('x' * 60000).replace('x', 'xx') }}",
    "{{ ('x' * 60000)|replace('x', 'yyyy') }}",
    "{% set a = 'x' * 30000 %}{% set b = a ~ a ~ a %}{{ b }}",
    "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('ab') }}",
    "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{% for i in range(99999) %}{{ 'x' * 1000 }}{% endfor %}",
    "{% macro m() %}{% for i in range(99999) %}static text repeated {% endfor %}{% endmacro %}{{ m() }}",
    "{% for x in [1] recursive %}{{ loop(range(100000)) }}{% endfor %}",
    "{{ range(100000)|join }}",
    "{{ range(100000)|join('x' * 60000) }}",
    "{{ ('x' * 60000).join(range(100000)) }}",
]

# methods and filters whose output is not bounded by their input are simply not there
UNAVAILABLE = [
    "{{ ('\t' * 60000).expandtabs(60000) }}",
    "{{ ('x ' * 30000)|wordwrap(1, wrapstring='y' * 60000) }}",
    "{{ name.encode() }}",
    "{{ name.translate({}) }}",
    "{{ name|indent(60000) }}",
]


def draft(body: str) -> TemplateDraft:
    return TemplateDraft(name="evil", body=body, variables={"name": "Ann"})


def stored(body: str) -> TemplateVersion:
    """As if the payload had reached the database without validation."""
    return TemplateVersion(
        name="evil",
        version=1,
        description=None,
        body=body,
        variables={"name": "Ann"},
        variants={},
        tag=None,
        bindings={},
    )


def _assert_harmless(text: str) -> None:
    for leak in ("<class", "<built-in", "<function", "<module", "__", "Environment", "os.", "popen", "mappingproxy"):
        assert leak not in text


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_injection_payload_is_refused_at_save(payload: str) -> None:
    with pytest.raises(TemplateError) as caught:
        validate(draft(payload))
    assert caught.value.code in {"unsafe_template", "undeclared_variables", "template_syntax", "missing_variables"}


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_injection_payload_cannot_execute_at_render(payload: str) -> None:
    outcome = _render_or_refusal(payload)
    if isinstance(outcome, TemplateError):
        assert outcome.code in {"unsafe_template", "missing_variables", "template_syntax"}
        assert "<class" not in outcome.message
    else:
        _assert_harmless(outcome)


def _render_or_refusal(payload: str) -> str | TemplateError:
    try:
        return render(
            stored(payload), {"name": "Ann"}, channel=Channel.VIBER, context=preview_context(Channel.VIBER)
        ).text
    except TemplateError as exc:
        return exc


@pytest.mark.parametrize("payload", BOMBS)
def test_resource_bomb_is_refused_at_save(payload: str) -> None:
    with pytest.raises(TemplateError) as caught:
        validate(draft(payload))
    assert caught.value.code in {"render_timeout", "too_long"}


@pytest.mark.parametrize("payload", BOMBS)
def test_resource_bomb_is_stopped_at_render(payload: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(stored(payload), {"name": "Ann"}, channel=Channel.VIBER, context=preview_context(Channel.VIBER))
    assert caught.value.code in {"render_timeout", "too_long"}


def test_a_declared_variable_cannot_smuggle_a_reserved_name() -> None:
    with pytest.raises(TemplateError) as caught:
        validate(TemplateDraft(name="evil", body="{{ config }}", variables={"config": "x"}))
    assert caught.value.code in {"invalid_template", "unsafe_template"}


def test_variable_values_are_data_not_code() -> None:
    template = TemplateVersion(
        name="echo",
        version=1,
        description=None,
        body="{{ v }}",
        variables={"v": "x"},
        variants={},
        tag=None,
        bindings={},
    )
    payload = "{{ ''.__class__.__mro__ }}"
    assert render(template, {"v": payload}, channel=Channel.VIBER).text == payload


def test_rendering_outside_the_sandbox_entry_point_is_refused() -> None:
    from hub.templates._compile import compile_source

    compiled = compile_source("{% for i in range(3) %}{{ i }}{% endfor %}")
    with pytest.raises(Exception, match="only through"):
        compiled.template.render()


@pytest.mark.parametrize("payload", UNAVAILABLE)
def test_unbounded_methods_and_filters_are_unavailable(payload: str) -> None:
    with pytest.raises(TemplateError) as at_save:
        validate(draft(payload))
    assert at_save.value.code in {"unsafe_template", "template_syntax"}
    with pytest.raises(TemplateError) as at_render:
        render(stored(payload), {"name": "Ann"}, channel=Channel.VIBER, context=preview_context(Channel.VIBER))
    assert at_render.value.code in {"unsafe_template", "template_syntax"}
