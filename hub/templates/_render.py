"""Rendering a saved version for a channel, and the provider-approved call (WhatsApp bindings) it maps
to. Refusals are ``TemplateError``s that name the code, the line and what is missing."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from jinja2 import UndefinedError
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.sandbox import safe_range

from hub.model import TEXT_LIMITS, Channel, TemplateBinding
from hub.templates._budget import BUDGET, MAX_OUTPUT_CHARS, RENDER_SECONDS, Budget, LimitExceeded
from hub.templates._compile import Compiled, compile_cached
from hub.templates._context import CONTEXT_NAMES, Record, contact_from_identity, context_record
from hub.templates._model import RenderedTemplate, TemplateDraft, TemplateError, TemplateVersion
from hub.templates._sandbox import NamedUndefined

__all__ = ["binding_for", "render", "render_source", "run", "source_for", "usable_on"]


def source_for(template: TemplateVersion | TemplateDraft, channel: Channel) -> str:
    """The channel's variant when there is one, else the default body."""
    if not template.variants:
        return template.body
    return template.variants.get(channel.value) or template.body


def run(compiled: Compiled, values: dict[str, Any]) -> str:
    if compiled.pattern is not None:
        # the fast path of plain substitution templates; same text as Jinja would give
        try:
            for record in compiled.records:
                if type(values[record]) is not Record:
                    raise KeyError(record)
            joined = compiled.pattern.format_map(values)
        except KeyError:
            pass  # a context field is missing: Jinja renders it and names what is missing
        else:
            if len(joined) > MAX_OUTPUT_CHARS:
                raise TemplateError("too_long", f"the output grew past {MAX_OUTPUT_CHARS} characters")
            return joined
    budget = Budget(deadline=time.monotonic() + RENDER_SECONDS)
    token = BUDGET.set(budget)
    try:
        # shared=True: the values are the whole namespace (no copy of the globals per render)
        values["range"] = safe_range
        template = compiled.template
        chunks: list[str] = []
        size = 0
        for chunk in template.root_render_func(template.new_context(values, shared=True)):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise LimitExceeded("too_long", f"the output grew past {MAX_OUTPUT_CHARS} characters")
            chunks.append(chunk)
        return "".join(chunks)
    except LimitExceeded as exc:
        raise TemplateError(exc.code, str(exc), line=_template_line(exc)) from None
    except SecurityError as exc:
        raise TemplateError("unsafe_template", str(exc), line=_template_line(exc)) from None
    except UndefinedError as exc:
        name = _undefined_name(exc)
        raise TemplateError(
            "missing_variables",
            f"{name or 'a value'} is not defined",
            line=_template_line(exc),
            missing=[name] if name else (),
        ) from None
    except OverflowError as exc:  # safe_range: "Range too big"
        raise TemplateError(
            "render_timeout", f"the template asks for too much work ({exc})", line=_template_line(exc)
        ) from None
    except RecursionError:
        raise TemplateError("render_timeout", "the template recurses too deeply") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateError("render_error", str(exc), line=_template_line(exc)) from None
    finally:
        BUDGET.reset(token)


def _undefined_name(exc: UndefinedError) -> str | None:
    # Jinja raises from NamedUndefined._fail_with_undefined_error; the frame holds the instance
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, NamedUndefined):
            return candidate.missing_name
        tb = tb.tb_next
    match = re.search(r"'([^']+)' is undefined", str(exc))
    return match.group(1) if match else None


def _template_line(exc: BaseException) -> int | None:
    """The template line of the innermost template frame (Jinja keeps a line map per template)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if isinstance(template, Template):
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _check_values(template: TemplateVersion | TemplateDraft, variables: Mapping[str, Any]) -> None:
    if not variables.keys() <= template.variables.keys():
        unknown = sorted(variables.keys() - template.variables.keys())
        raise TemplateError(
            "unknown_variables", f"template {template.name!r} has no variable(s) {', '.join(unknown)}", missing=unknown
        )
    for key, value in variables.items():
        if type(value) is str:
            if len(value) > MAX_OUTPUT_CHARS:
                raise TemplateError("too_long", f"variable {key!r} is longer than {MAX_OUTPUT_CHARS} characters")
        elif value is not None and not isinstance(value, (str, int, float, bool, datetime, date)):
            raise TemplateError("invalid_variables", f"variable {key!r} must be a string or a number")


def render(
    template: TemplateVersion,
    variables: Mapping[str, Any],
    *,
    channel: Channel,
    context: Mapping[str, Any] | None = None,
    provider: str | None = None,
) -> RenderedTemplate:
    """Render ``template`` for ``channel``; the text is stripped of surrounding blank space.

    ``context`` holds the conversation's contact, identity, agent, conversation and queue
    (mappings or the model dataclasses). ``provider`` ("twilio" | "cloud") narrows the
    WhatsApp binding; without it the binding carries every provider's mapping.
    Raises TemplateError; CPU-bound but bounded (a budget of steps, size and time)."""
    _check_values(template, variables)
    text = render_source(template, source_for(template, channel), variables, channel, context)
    return RenderedTemplate(
        text=text,
        name=template.name,
        version=template.version,
        tag=template.tag if channel is Channel.MESSENGER else None,
        binding=binding_for(template, variables, channel=channel, context=context, provider=provider),
    )


def render_source(
    template: TemplateVersion | TemplateDraft,
    source: str,
    variables: Mapping[str, Any],
    channel: Channel,
    context: Mapping[str, Any] | None,
) -> str:
    version = template.version if isinstance(template, TemplateVersion) else 0
    compiled = compile_cached(template.name, version, source)
    values: dict[str, Any] = {}
    if context:
        for key, obj in context.items():
            if key in CONTEXT_NAMES and obj is not None:
                values[key] = Record(key, obj if isinstance(obj, Mapping) else context_record(obj))
        if "contact" not in values and "identity" in values:
            # an identity nobody paired with a contact yet: the same stand-in as render_context
            values["contact"] = Record("contact", contact_from_identity(values["identity"]))
    for key, value in variables.items():
        if value is not None:
            values[key] = value
    if not compiled.names <= values.keys():
        missing = sorted(compiled.names - values.keys())
        first = compiled.first_line(missing)
        raise TemplateError(
            "missing_variables",
            f"missing value(s) for {', '.join(missing)}",
            line=first,
            missing=missing,
            channel=channel,
        )
    try:
        text = run(compiled, values).strip()
    except TemplateError as exc:
        exc.channel = channel
        raise
    if not text:
        raise TemplateError("empty_output", "the template renders to nothing", channel=channel)
    limit = TEXT_LIMITS[channel]
    if len(text) > limit:
        raise TemplateError(
            "too_long", f"renders {len(text)} characters; {channel.value} allows {limit}", channel=channel
        )
    return text


def _lookup(ref: str, variables: Mapping[str, Any], context: Mapping[str, Any] | None) -> str:
    if "." in ref:
        root, _, key = ref.partition(".")
        obj = (context or {}).get(root)
        record = obj if isinstance(obj, Mapping) else context_record(obj)
        value = record.get(key)
    else:
        value = variables.get(ref)
    if value is None:
        raise TemplateError("missing_variables", f"the provider template needs {ref}", missing=[ref])
    return str(value)


def binding_for(
    template: TemplateVersion | TemplateDraft,
    variables: Mapping[str, Any],
    *,
    channel: Channel,
    context: Mapping[str, Any] | None = None,
    provider: str | None = None,
) -> TemplateBinding | None:
    """The provider-approved call for WhatsApp (None on other channels or without bindings)."""
    if channel is not Channel.WHATSAPP or not template.bindings:
        return None
    twilio = template.bindings.get("twilio") if provider in (None, "twilio") else None
    cloud = template.bindings.get("cloud") if provider in (None, "cloud") else None
    if not twilio and not cloud:
        return None
    sid = None
    content_variables: tuple[tuple[str, str], ...] = ()
    if twilio:
        sid = str(twilio["content_sid"])
        mapping = twilio.get("variables", {})
        ordered = sorted(mapping.items(), key=lambda item: int(item[0]))
        content_variables = tuple((slot, _lookup(ref, variables, context)) for slot, ref in ordered)
    name = language = None
    parameters: tuple[str, ...] = ()
    if cloud:
        name, language = str(cloud["name"]), str(cloud["language"])
        parameters = tuple(_lookup(ref, variables, context) for ref in cloud.get("parameters", []))
    return TemplateBinding(
        content_sid=sid, content_variables=content_variables, name=name, language=language, parameters=parameters
    )


def usable_on(template: TemplateVersion, channel: Channel) -> bool:
    """Every saved template was rendered for every channel at save time, so all are usable;
    kept as one function so a later rule (e.g. per-channel opt-out) has one home."""
    return bool(source_for(template, channel).strip())
