"""What a template is: the draft an admin submits, a saved version, a rendered result, and the
errors of templates. No rendering here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.model import Channel, TemplateBinding

__all__ = [
    "RenderedTemplate",
    "TemplateDraft",
    "TemplateError",
    "TemplateExists",
    "TemplateInUse",
    "TemplateNotFound",
    "TemplateVersion",
    "binding_json",
]


class TemplateError(Exception):
    """A template cannot be saved or rendered; ``code`` is machine-readable, ``line`` 1-based."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        line: int | None = None,
        missing: Iterable[str] = (),
        channel: Channel | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line
        self.missing = tuple(missing)
        self.channel = channel

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        on = f" [{self.channel.value}]" if self.channel else ""
        return f"{self.code}{on}: {self.message}{where}"

    def to_json(self) -> dict[str, Any]:
        """The extra fields of the API error body."""
        body: dict[str, Any] = {"line": self.line}
        if self.missing:
            body["missing"] = list(self.missing)
        if self.channel is not None:
            body["channel"] = self.channel.value
        return body


class TemplateNotFound(LookupError):
    def __init__(self, name: str, version: int | None = None) -> None:
        super().__init__(f"template {name!r}" + (f" has no version {version}" if version else " does not exist"))
        self.name = name
        self.version = version


class TemplateExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"template {name!r} already exists")
        self.name = name


class TemplateInUse(Exception):
    """Delete refused: queued outbound messages were rendered from it and still need it."""

    def __init__(self, name: str, pending: int) -> None:
        super().__init__(f"template {name!r} is used by {pending} pending outbound message(s)")
        self.name = name
        self.pending = pending


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateDraft:
    """What an admin submits; becomes a ``TemplateVersion`` once saved.

    ``variables``: name -> example value. ``variants``: channel value -> body.
    ``bindings``::

        {"twilio": {"content_sid": "HX...", "variables": {"1": "name", "2": "order"}},
         "cloud": {"name": "order_update", "language": "en_US", "parameters": ["name", "order"]}}

    where each referenced value is a declared variable or ``contact.name``-style context field.
    """

    name: str
    body: str
    description: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    tag: str | None = None
    bindings: dict[str, Any] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """The fields a new version compares on (import skips unchanged templates)."""
        return {
            "description": self.description or None,
            "body": self.body,
            "variables": dict(self.variables),
            "variants": dict(self.variants),
            "tag": self.tag or None,
            "bindings": self.bindings,
        }


@dataclass(frozen=True, slots=True)
class TemplateVersion:
    """One immutable saved version. A message records (name, version)."""

    name: str
    version: int
    description: str | None
    body: str
    variables: dict[str, str]
    variants: dict[str, str]
    tag: str | None
    bindings: dict[str, Any]
    created_at: datetime | None = None
    created_by: int | None = None

    def draft(self) -> TemplateDraft:
        return TemplateDraft(
            name=self.name,
            body=self.body,
            description=self.description,
            variables=dict(self.variables),
            variants=dict(self.variants),
            tag=self.tag,
            bindings=self.bindings,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "body": self.body,
            "variables": self.variables,
            "variants": self.variants,
            "tag": self.tag,
            "bindings": self.bindings,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedTemplate:
    text: str
    name: str
    version: int
    tag: str | None  # Messenger message tag (only when rendering for Messenger)
    binding: TemplateBinding | None  # the provider-approved call (WhatsApp only)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "name": self.name,
            "version": self.version,
            "tag": self.tag,
            "binding": binding_json(self.binding),
        }


def binding_json(binding: TemplateBinding | None) -> dict[str, Any] | None:
    if binding is None:
        return None
    body: dict[str, Any] = {}
    if binding.content_sid:
        body["twilio"] = {"content_sid": binding.content_sid, "content_variables": dict(binding.content_variables)}
    if binding.name:
        body["cloud"] = {"name": binding.name, "language": binding.language, "parameters": list(binding.parameters)}
    return body
