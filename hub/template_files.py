"""The template file format: a TOML front matter between ``---`` lines, then the Jinja body.

::

    ---
    name = "order_update"
    description = "Tell the customer where their order is"
    tag = "POST_PURCHASE_UPDATE"          # optional Messenger message tag

    [variables]                           # name = example value
    order = "A-1042"
    status = "shipped"

    [variants]                            # optional per-channel wording
    viber = '''
    Order {{ order }}: {{ status }}.'''

    [bindings.twilio]                     # optional provider-approved templates
    content_sid = "HX0123456789abcdef0123456789abcdef"
    variables = { "1" = "order", "2" = "status" }

    [bindings.cloud]
    name = "order_update"
    language = "en_US"
    parameters = ["order", "status"]
    ---
    Hello {{ contact.name }}, your order {{ order }} is {{ status }}.

The body is everything after the second ``---`` line, less the one newline that
ends the file. ``dump_template`` writes what ``parse_template`` reads back unchanged.
No I/O beyond the paths a caller gives to ``read_dir`` / ``write_dir``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from hub.templates import TemplateDraft, TemplateVersion

__all__ = ["SUFFIX", "TemplateFileError", "dump_template", "parse_template", "read_dir", "write_dir"]

SUFFIX = ".j2"
_FENCE = "---"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_FIELDS = {"name", "description", "tag", "variables", "variants", "bindings"}


class TemplateFileError(ValueError):
    """A file that is not a template file; names the file and, where known, the line."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        super().__init__(f"{source}{f':{line}' if line else ''}: {message}")
        self.source = source
        self.line = line


def parse_template(text: str, *, source: str = "<template>") -> TemplateDraft:
    """One file's text -> a draft (not yet validated as a template: ``hub.templates.validate``)."""
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if not lines or lines[0].strip() != _FENCE:
        raise TemplateFileError(source, "must start with a '---' line opening the front matter", 1)
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].rstrip() == _FENCE)
    except StopIteration:
        raise TemplateFileError(source, "the front matter has no closing '---' line") from None
    header = "\n".join(lines[1:end])
    body = "\n".join(lines[end + 1 :])
    if body.endswith("\n"):
        body = body[:-1]
    try:
        meta = tomllib.loads(header)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateFileError(source, f"front matter is not valid TOML ({exc})") from None
    unknown = sorted(set(meta) - _FIELDS)
    if unknown:
        raise TemplateFileError(source, f"unknown front matter key(s): {', '.join(unknown)}")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise TemplateFileError(source, 'front matter needs name = "..."')
    for key in ("variables", "variants", "bindings"):
        if not isinstance(meta.get(key, {}), dict):
            raise TemplateFileError(source, f"{key} must be a table")
    description, tag = meta.get("description"), meta.get("tag")
    if description is not None and not isinstance(description, str):
        raise TemplateFileError(source, "description must be a string")
    if tag is not None and not isinstance(tag, str):
        raise TemplateFileError(source, "tag must be a string")
    return TemplateDraft(
        name=name,
        body=body,
        description=description or None,
        variables={str(k): v for k, v in meta.get("variables", {}).items()},
        variants={str(k): v for k, v in meta.get("variants", {}).items()},
        tag=tag or None,
        bindings=meta.get("bindings", {}),
    )


def dump_template(template: TemplateDraft | TemplateVersion) -> str:
    """The file text for a template (round-trips through ``parse_template``)."""
    out = [_FENCE, f"name = {_string(template.name)}"]
    if template.description:
        out.append(f"description = {_string(template.description)}")
    if template.tag:
        out.append(f"tag = {_string(template.tag)}")
    if template.variables:
        out += ["", "[variables]"]
        out += [f"{_key(k)} = {_string(v)}" for k, v in template.variables.items()]
    if template.variants:
        out += ["", "[variants]"]
        out += [f"{_key(k)} = {_string(v, multiline=True)}" for k, v in sorted(template.variants.items())]
    for provider, table in sorted(template.bindings.items()):
        out += ["", f"[bindings.{_key(provider)}]"]
        out += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    out.append(_FENCE)
    return "\n".join(out) + "\n" + template.body + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(value: str, *, multiline: bool = False) -> str:
    # a literal multi-line string reads best for variants; fall back to an escaped basic
    # string (JSON's escapes are valid TOML) when the text could not be written literally
    if multiline and "'''" not in value and not value.endswith("'") and _literal_safe(value):
        return "'''\n" + value + "'''"
    return json.dumps(value, ensure_ascii=False)


def _literal_safe(value: str) -> bool:
    return all(ch in "\n\t" or (ord(ch) >= 0x20 and ord(ch) != 0x7F) for ch in value)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} into a template file")


def read_dir(directory: Path) -> list[TemplateDraft]:
    """Every ``*.j2`` file of ``directory``, by file name; raises TemplateFileError for the first bad one."""
    drafts: list[TemplateDraft] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        draft = parse_template(path.read_text(encoding="utf-8"), source=path.name)
        if draft.name in seen:
            raise TemplateFileError(path.name, f"template {draft.name!r} is also defined in {seen[draft.name]}")
        seen[draft.name] = path.name
        drafts.append(draft)
    return drafts


def write_dir(directory: Path, templates: list[TemplateVersion]) -> list[Path]:
    """Write one ``<name>.j2`` per template; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for template in templates:
        path = directory / f"{template.name}{SUFFIX}"
        path.write_text(dump_template(template), encoding="utf-8")
        written.append(path)
    return written
