"""Compiling a template's source: parse, refuse what only an injection attempt would write, rewrite the
tree through the sandbox's guards, and note the names it reads; plain substitutions also get a fast
path that renders without Jinja. Compiled once per (name, version, source)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.environment import Template
from jinja2.exceptions import SecurityError

from hub.templates._context import CONTEXT_NAMES
from hub.templates._model import TemplateError
from hub.templates._sandbox import ENV, FILTERS, Guard, unsafe_attribute

__all__ = ["MAX_SOURCE_CHARS", "RESERVED_NAMES", "Compiled", "compile_cached", "compile_source"]

MAX_SOURCE_CHARS = 20_000

# Names that only ever appear in template-injection payloads: refused even when declared.
RESERVED_NAMES = frozenset(
    {
        "self",
        "config",
        "request",
        "session",
        "g",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "url_for",
        "get_flashed_messages",
        "os",
        "sys",
        "builtins",
        "dict",
        "environment",
        "context",
        "caller_frame",
    }
)
# Filters that read attributes by name, run format strings or dump objects.
_UNSAFE_FILTERS = frozenset(
    {"attr", "format", "map", "selectattr", "rejectattr", "groupby", "xmlattr", "pprint", "tojson", "safe", "sum"}
)


@dataclass(frozen=True, slots=True)
class Compiled:
    template: Template
    names: frozenset[str]  # free names the template reads (variables and context objects)
    lines: Mapping[str, int]  # first line each free name appears on
    # plain substitution templates (text, {{ name }}, {{ contact.name }} only) also compile to
    # a list of parts joined without Jinja: (None, text) or (name, field-or-None)
    pattern: str | None = None  # those parts as a str.format_map pattern (braces of the text doubled)
    records: tuple[str, ...] = ()  # context objects the pattern indexes ({contact[name]})

    def first_line(self, names: Iterable[str]) -> int | None:
        """The first line any of ``names`` appears on (None when unknown): where an error about them points."""
        return min(self.lines.get(name, 0) for name in names) or None


def _format_pattern(parts: tuple[tuple[str | None, str | None], ...] | None) -> str | None:
    if parts is None:
        return None
    pattern = []
    for name, text in parts:
        if name is None:
            pattern.append((text or "").replace("{", "{{").replace("}", "}}"))
        else:
            pattern.append("{" + name + (f"[{text}]" if text else "") + "}")
    return "".join(pattern)


def _substitution_parts(tree: nodes.Template) -> tuple[tuple[str | None, str | None], ...] | None:
    parts: list[tuple[str | None, str | None]] = []
    for output in tree.body:
        if not isinstance(output, nodes.Output):
            return None
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append((None, node.data))
            elif isinstance(node, nodes.Name) and node.ctx == "load":
                parts.append((node.name, None))
            elif (
                isinstance(node, nodes.Getattr)
                and isinstance(node.node, nodes.Name)
                and node.node.name in CONTEXT_NAMES
            ):
                parts.append((node.node.name, node.attr))
            else:
                return None
    return tuple(parts)


def _static_check(tree: nodes.Template) -> None:
    """Refuse what only an injection attempt would write, before anything runs."""
    for node in tree.find_all(nodes.Node):
        line = getattr(node, "lineno", None)
        if isinstance(node, (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            raise TemplateError("unsafe_template", "templates cannot load other templates", line=line)
        if isinstance(node, nodes.Getattr) and unsafe_attribute(node.attr):
            raise TemplateError("unsafe_template", f"attribute {node.attr!r} is not allowed", line=line)
        item = node.arg.value if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) else None
        if isinstance(item, str) and unsafe_attribute(item):
            raise TemplateError("unsafe_template", f"item {item!r} is not allowed", line=line)
        if isinstance(node, nodes.Name) and node.name in RESERVED_NAMES:
            raise TemplateError("unsafe_template", f"{node.name!r} is not available in templates", line=line)
        if isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value:
            raise TemplateError("unsafe_template", "strings containing '__' are not allowed", line=line)
        if isinstance(node, nodes.Filter) and node.name:
            if node.name in _UNSAFE_FILTERS or node.name.startswith("_"):
                raise TemplateError("unsafe_template", f"filter {node.name!r} is not allowed", line=line)
            if node.name not in FILTERS:
                known = ", ".join(sorted(FILTERS))
                raise TemplateError("template_syntax", f"no filter named {node.name!r} (have: {known})", line=line)
        if isinstance(node, nodes.Mod) and isinstance(node.left, nodes.Const) and isinstance(node.left.value, str):
            raise TemplateError("unsafe_template", "string formatting with % is not allowed", line=line)


def compile_source(source: str) -> Compiled:
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateError("too_long", f"the template source is longer than {MAX_SOURCE_CHARS} characters")
    try:
        return _compile_tree(source)
    except (RecursionError, SyntaxError):
        # thousands of nested brackets: Jinja's parser, its code generator and Python's compiler all recurse
        raise TemplateError("template_syntax", "the template nests brackets or blocks too deeply") from None


def _compile_tree(source: str) -> Compiled:
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError("template_syntax", exc.message or "syntax error", line=exc.lineno) from None
    _static_check(tree)
    Guard().visit_node(tree, buffered=False)
    names = frozenset(meta.find_undeclared_variables(tree)) - set(ENV.globals)
    lines: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.name in names and node.ctx == "load":
            lines.setdefault(node.name, node.lineno)
    try:
        template = ENV.from_string(tree)
    except TemplateSyntaxError as exc:
        raise TemplateError("template_syntax", exc.message or "syntax error", line=exc.lineno) from None
    except SecurityError as exc:
        raise TemplateError("unsafe_template", str(exc)) from None
    parts = _substitution_parts(tree)
    records = tuple(sorted({name for name, field in parts or () if name and field}))
    return Compiled(template, names, lines, _format_pattern(parts), records)


@functools.lru_cache(maxsize=2048)
def compile_cached(name: str, version: int, source: str) -> Compiled:
    """Compiled once per (name, version); the source is part of the key so a version
    number reused by another database (tests, a restored backup) never serves stale code."""
    return compile_source(source)
