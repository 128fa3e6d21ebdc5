"""What a save must check: the metadata (name, variables, tag, variants, bindings), then each source
(syntax, injection patterns, undeclared names) and a sandboxed render with the example values for
every channel."""

from __future__ import annotations

import re
from typing import Any

from hub.model import Channel
from hub.policy import MESSENGER_TAGS as _POLICY_TAGS
from hub.policy import TEMPLATE_ONLY_TAGS
from hub.templates._compile import RESERVED_NAMES, compile_source
from hub.templates._context import CONTEXT_NAMES, preview_context
from hub.templates._model import TemplateDraft, TemplateError, TemplateVersion
from hub.templates._render import binding_for, render_source, source_for
from hub.templates._sandbox import ENV

__all__ = ["MESSENGER_TAGS", "validate"]

#: Messenger message tags a template may be sent with outside the standard window: exactly those the outbound
#: policy accepts on a message the hub sends (one list, hub/policy.py; not a tag only Meta's own template may carry)
MESSENGER_TAGS = frozenset(_POLICY_TAGS) - frozenset(TEMPLATE_ONLY_TAGS)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_VARIABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_CONTEXT_REF = re.compile(r"^(contact|identity|agent|conversation|queue)\.[a-z_][a-z0-9_]*$")
_TWILIO_PLACEHOLDER = re.compile(r"^[1-9][0-9]{0,2}$")


def validate(template: TemplateDraft | TemplateVersion) -> None:
    """Everything a save must check; raises the first TemplateError found.

    Metadata first (name, variables, tag, variants, bindings), then each source:
    syntax, injection patterns, undeclared names, and a sandboxed render with the
    example values for every channel it may be sent on (empty or too long fails)."""
    _validate_metadata(template)
    declared = set(template.variables) | set(CONTEXT_NAMES)
    sources = [(None, template.body)] + [(Channel(k), v) for k, v in sorted(template.variants.items())]
    for variant_channel, source in sources:
        try:
            compiled = compile_source(source)
        except TemplateError as exc:
            exc.channel = variant_channel
            raise
        undeclared = sorted(compiled.names - declared)
        if undeclared:
            first = compiled.first_line(undeclared)
            raise TemplateError(
                "undeclared_variables",
                f"undeclared variable(s) {', '.join(undeclared)}; declare them with an example value",
                line=first,
                missing=undeclared,
                channel=variant_channel,
            )
    for channel in Channel:
        render_source(
            template, source_for(template, channel), dict(template.variables), channel, preview_context(channel)
        )
    for channel in Channel:
        binding_for(template, template.variables, channel=channel, context=preview_context(channel))


def _validate_metadata(template: TemplateDraft | TemplateVersion) -> None:
    def bad(message: str) -> TemplateError:
        return TemplateError("invalid_template", message)

    if not isinstance(template.name, str) or not _NAME.match(template.name):
        raise bad("name must be a slug: lower-case letters, digits, '_' or '-', at most 100 characters")
    if not isinstance(template.body, str) or not template.body.strip():
        raise TemplateError("empty_output", "the body is empty")
    if template.description is not None and not isinstance(template.description, str):
        raise bad("description must be a string")
    if not isinstance(template.variables, dict):
        raise bad("variables must be an object of name -> example value")
    for key, example in template.variables.items():
        if not isinstance(key, str) or not _VARIABLE.match(key):
            raise bad(f"variable name {key!r} must start with a letter and use letters, digits and '_'")
        if key in CONTEXT_NAMES or key in RESERVED_NAMES or key in ENV.globals:
            raise bad(f"variable name {key!r} is reserved")
        if not isinstance(example, str):
            raise bad(f"variable {key!r} needs an example value (a string)")
    if not isinstance(template.variants, dict):
        raise bad("variants must be an object of channel -> body")
    channels = {c.value for c in Channel}
    for key, body in template.variants.items():
        if key not in channels:
            raise bad(f"variant {key!r} is not a channel ({', '.join(sorted(channels))})")
        if not isinstance(body, str) or not body.strip():
            raise TemplateError("empty_output", f"the {key} variant is empty", channel=Channel(key))
    if template.tag in TEMPLATE_ONLY_TAGS:
        raise bad(
            f"tag {template.tag!r} may only carry {TEMPLATE_ONLY_TAGS[template.tag]}, not a hub template "
            f"({', '.join(sorted(MESSENGER_TAGS))})"
        )
    if template.tag is not None and template.tag not in MESSENGER_TAGS:
        raise bad(f"tag {template.tag!r} is not a Messenger message tag ({', '.join(sorted(MESSENGER_TAGS))})")
    _validate_bindings(template.bindings, set(template.variables))


def _validate_bindings(bindings: Any, declared: set[str]) -> None:
    def bad(message: str) -> TemplateError:
        return TemplateError("invalid_template", f"bindings: {message}")

    def check_ref(ref: Any, where: str) -> None:
        if not isinstance(ref, str) or not (ref in declared or _CONTEXT_REF.match(ref)):
            raise bad(f"{where} refers to {ref!r}, which is neither a declared variable nor contact.<field> etc.")

    if not isinstance(bindings, dict):
        raise bad("must be an object with 'twilio' and/or 'cloud'")
    unknown = set(bindings) - {"twilio", "cloud"}
    if unknown:
        raise bad(f"unknown provider(s) {', '.join(sorted(unknown))}; use 'twilio' or 'cloud'")
    twilio = bindings.get("twilio")
    if twilio is not None:
        if not isinstance(twilio, dict) or set(twilio) - {"content_sid", "variables"}:
            raise bad("twilio must be {content_sid, variables}")
        sid = twilio.get("content_sid")
        if not isinstance(sid, str) or not re.fullmatch(r"HX[0-9a-fA-F]{32}", sid):
            raise bad("twilio.content_sid must be a Content SID (HX followed by 32 hex digits)")
        mapping = twilio.get("variables", {})
        if not isinstance(mapping, dict):
            raise bad("twilio.variables must map placeholder numbers to variables")
        for slot, ref in mapping.items():
            if not isinstance(slot, str) or not _TWILIO_PLACEHOLDER.match(slot):
                raise bad(f"twilio placeholder {slot!r} must be a number as a string ('1', '2', ...)")
            check_ref(ref, f"twilio placeholder {slot}")
    cloud = bindings.get("cloud")
    if cloud is not None:
        if not isinstance(cloud, dict) or set(cloud) - {"name", "language", "parameters"}:
            raise bad("cloud must be {name, language, parameters}")
        if not isinstance(cloud.get("name"), str) or not re.fullmatch(r"[a-z0-9_]{1,512}", cloud["name"]):
            raise bad("cloud.name must be the approved template's name (lower-case, digits, '_')")
        if not isinstance(cloud.get("language"), str) or not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", cloud["language"]):
            raise bad("cloud.language must be a language code such as en or en_US")
        parameters = cloud.get("parameters", [])
        if not isinstance(parameters, list):
            raise bad("cloud.parameters must be a list of variables, in placeholder order")
        for i, ref in enumerate(parameters, start=1):
            check_ref(ref, f"cloud parameter {i}")
