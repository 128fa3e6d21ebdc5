"""Message templates: validate at save, render in a sandbox, map to provider-approved templates.

Pure: no I/O, no database, no HTTP. Admin-written Jinja runs in a locked-down
``ImmutableSandboxedEnvironment`` with ``StrictUndefined``, a short list of
filters and no globals but ``range``; every loop iteration, call and buffered
output is counted against a per-render budget (steps, characters, wall time),
so a hostile or careless template fails fast instead of hanging the server.
See docs/decisions/0005-message-templates-sandbox-and-validation.md.

Error codes (``TemplateError.code``): ``invalid_template`` (name, variables,
variants, tag or bindings malformed), ``template_syntax``, ``unsafe_template``,
``undeclared_variables``, ``missing_variables``, ``unknown_variables``,
``render_error``, ``render_timeout``, ``empty_output``, ``too_long``,
``invalid_variables`` (a value that is not a string, number or date).

The package's modules, one job each: ``_model`` (drafts, versions, errors), ``_context`` (what a
template reads), ``_budget``, ``_filters`` and ``_sandbox`` (where it runs), ``_compile``, ``_render`` and
``_validate``.
"""

from __future__ import annotations

from hub.model import TEXT_LIMITS  # re-exported
from hub.templates._budget import MAX_OUTPUT_CHARS, MAX_STEPS, RENDER_SECONDS
from hub.templates._compile import MAX_SOURCE_CHARS
from hub.templates._context import CONTEXT_NAMES, EXAMPLE_CONTEXT, context_record, preview_context, render_context
from hub.templates._model import (
    RenderedTemplate,
    TemplateDraft,
    TemplateError,
    TemplateExists,
    TemplateInUse,
    TemplateNotFound,
    TemplateVersion,
)
from hub.templates._render import binding_for, render, source_for, usable_on
from hub.templates._sandbox import FILTERS
from hub.templates._validate import MESSENGER_TAGS, validate

__all__ = [
    "CONTEXT_NAMES",
    "EXAMPLE_CONTEXT",
    "FILTERS",
    "MAX_OUTPUT_CHARS",
    "MAX_SOURCE_CHARS",
    "MAX_STEPS",
    "MESSENGER_TAGS",
    "RENDER_SECONDS",
    "TEXT_LIMITS",
    "RenderedTemplate",
    "TemplateDraft",
    "TemplateError",
    "TemplateExists",
    "TemplateInUse",
    "TemplateNotFound",
    "TemplateVersion",
    "binding_for",
    "context_record",
    "preview_context",
    "render",
    "render_context",
    "source_for",
    "usable_on",
    "validate",
]
