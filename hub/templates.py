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
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes, pass_context
from jinja2 import filters as jinja_filters
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from hub.model import TEXT_LIMITS, Channel, TemplateBinding  # TEXT_LIMITS re-exported
from hub.policy import MESSENGER_TAGS as _POLICY_TAGS

__all__ = [
    "CONTEXT_NAMES",
    "EXAMPLE_CONTEXT",
    "MESSENGER_TAGS",
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

#: names the hub puts in every render context; variables may not reuse them
CONTEXT_NAMES: tuple[str, ...] = ("contact", "identity", "agent", "conversation", "queue")

#: Messenger message tags a template may be sent with outside the standard window
#: the tags a template may carry: exactly those the outbound policy accepts (one list, hub/policy.py)
MESSENGER_TAGS = frozenset(_POLICY_TAGS)

MAX_SOURCE_CHARS = 20_000
MAX_OUTPUT_CHARS = 64 * 1024  # any intermediate string or the whole output, before the channel limit
MAX_STEPS = 200_000  # loop iterations + calls + buffered outputs in one render
RENDER_SECONDS = 1.0
_MAX_INT_BITS = 10_000

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_VARIABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_CONTEXT_REF = re.compile(r"^(contact|identity|agent|conversation|queue)\.[a-z_][a-z0-9_]*$")
_TWILIO_PLACEHOLDER = re.compile(r"^[1-9][0-9]{0,2}$")

# Names that only ever appear in template-injection payloads: refused even when declared.
_RESERVED_NAMES = frozenset(
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
# Attributes that reach Python internals or run format strings; anything starting with "_" too.
_UNSAFE_ATTRIBUTES = frozenset(
    {
        "mro",
        "format",
        "format_map",
        "globals",
        "subclasses",
        "builtins",
        "import_module",
        "modules",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "func_globals",
        "func_code",
        "im_func",
        "im_self",
        "im_class",
        "tb_frame",
        "tb_next",
        "co_code",
        "environment",
        "eval_ctx",
        "exported_vars",
        "system",
        "popen",
    }
)
# Filters that read attributes by name, run format strings or dump objects.
_UNSAFE_FILTERS = frozenset(
    {"attr", "format", "map", "selectattr", "rejectattr", "groupby", "xmlattr", "pprint", "tojson", "safe", "sum"}
)


# ------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------- data model


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


# ------------------------------------------------------------------ render context


class _Record(dict[str, Any]):
    """A context object (contact, agent, ...) as a read-only mapping that knows its name,
    so a missing field is reported as ``contact.company`` rather than ``company``."""

    __slots__ = ("path",)

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.path = path


def context_record(obj: Any, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A dataclass (Contact, Identity, Agent, Conversation, Queue) as plain fields for a template.

    ``None`` fields are left out: with StrictUndefined ``{{ contact.company }}`` then fails
    clearly, and ``{{ contact.company | default('') }}`` is how a template says "optional"."""
    if obj is None:
        return {}
    names = getattr(obj, "__dataclass_fields__", None)
    raw: Mapping[str, Any] = {n: getattr(obj, n) for n in names} if names else dict(obj)
    skip = set(exclude) | {"credentials"}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in skip or value is None:
            continue
        if isinstance(value, (str, int, float, bool, datetime, date)):
            out[key] = value.value if hasattr(value, "value") and isinstance(value, str) else value
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
    return out


def render_context(
    *, contact: Any = None, identity: Any = None, agent: Any = None, conversation: Any = None, queue: Any = None
) -> dict[str, dict[str, Any]]:
    """The render context of a conversation, the same for every caller (API render, outbound send).

    Each argument is a model dataclass or a mapping (None leaves the object out). An identity
    not paired with a contact still gives ``contact.name`` / ``contact.phone`` from what the
    channel told us, so greeting templates work before anyone fills in the CRM."""
    identity_fields = context_record(identity)
    contact_fields = context_record(contact) if contact is not None else _contact_from_identity(identity_fields)
    context = {
        "contact": contact_fields,
        "identity": identity_fields,
        "agent": context_record(agent, exclude=("pause_reason", "pause_paid", "presence_since")),
        "conversation": context_record(conversation),
        "queue": context_record(queue),
    }
    given = {"identity": identity, "agent": agent, "conversation": conversation, "queue": queue}
    return {key: value for key, value in context.items() if key == "contact" or given[key] is not None}


def _contact_from_identity(identity: Mapping[str, Any]) -> dict[str, Any]:
    pairs = (("name", "display_name"), ("phone", "phone"))
    return {key: identity[source] for key, source in pairs if identity.get(source)}


_EXAMPLE_TIME = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)

#: what validation and preview render with when no conversation is at hand
EXAMPLE_CONTEXT: Mapping[str, Mapping[str, Any]] = {
    "contact": {
        "id": 1,
        "name": "Ann Example",
        "company": "Example Ltd",
        "phone": "+14155550123",
        "email": "ann@example.com",
        "time_zone": "Europe/Berlin",
    },
    "identity": {
        "id": 1,
        "account_id": "main",
        "channel": "whatsapp",
        "external_id": "+14155550123",
        "display_name": "Ann",
        "phone": "+14155550123",
    },
    "agent": {"id": 1, "login": "sam", "display_name": "Sam", "role": "agent"},
    "conversation": {
        "id": 1,
        "account_id": "main",
        "channel": "whatsapp",
        "queue_id": "support",
        "state": "active",
        "opened_at": _EXAMPLE_TIME,
        "important": False,
    },
    "queue": {"id": "support", "name": "Support", "number": 100},
}


def preview_context(channel: Channel) -> dict[str, dict[str, Any]]:
    """The example context, adjusted to the channel being previewed."""
    ctx = {key: dict(value) for key, value in EXAMPLE_CONTEXT.items()}
    ctx["identity"]["channel"] = channel.value
    ctx["conversation"]["channel"] = channel.value
    return ctx


# ------------------------------------------------------------------------ filters


def _zone(context: Context) -> ZoneInfo | None:
    contact = context.get("contact")
    name = contact.get("time_zone") if isinstance(contact, Mapping) else None
    if not name or not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _as_datetime(value: Any) -> datetime | date:
    if isinstance(value, (datetime, date)):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date or date-time") from None
    raise ValueError(f"{type(value).__name__} is not a date")


def _format_when(context: Context, value: Any, fmt: str) -> str:
    when = _as_datetime(value)
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        zone = _zone(context)
        if zone is not None:
            when = when.astimezone(zone)
    if len(fmt) > 100:
        raise ValueError("date format is too long")
    return when.strftime(fmt)


@pass_context
def _date_filter(context: Context, value: Any, fmt: str = "%d %b %Y") -> str:
    """``{{ when | date }}``: the calendar day in the contact's time zone (UTC when unknown)."""
    return _format_when(context, value, fmt)


@pass_context
def _datetime_filter(context: Context, value: Any, fmt: str = "%d %b %Y %H:%M") -> str:
    """``{{ when | datetime }}``: date and time in the contact's time zone (UTC when unknown)."""
    return _format_when(context, value, fmt)


@pass_context
def _time_filter(context: Context, value: Any, fmt: str = "%H:%M") -> str:
    return _format_when(context, value, fmt)


def _phone_filter(value: Any) -> str:
    """``{{ contact.phone | phone }}``: E.164 made readable (+1 415 555 0123; others in groups)."""
    text = str(value).strip()
    for prefix in ("whatsapp:", "tel:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return text
    if not text.startswith("+") and not text.startswith("00"):
        return text  # a national number: we cannot know how it groups
    if text.startswith("00"):
        digits = digits[2:]
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 {digits[1:4]} {digits[4:7]} {digits[7:]}"
    size = 1 if digits[0] in "17" else 2 if digits[:2] in _TWO_DIGIT_COUNTRY_CODES else 3
    head, rest = digits[:size], digits[size:]
    groups = [rest[i : i + 3] for i in range(0, len(rest), 3)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        last = groups.pop()
        groups[-1] += last
    return " ".join(["+" + head, *groups])


# ITU-T E.164 country codes of two digits (the others have one: 1, 7; or three)
_TWO_DIGIT_COUNTRY_CODES = frozenset(
    [
        "20",
        "27",
        "30",
        "31",
        "32",
        "33",
        "34",
        "36",
        "39",
        "40",
        "41",
        "43",
        "44",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "84",
        "86",
        "90",
        "91",
        "92",
        "93",
        "94",
        "95",
        "98",
    ]
)


def _replace_filter(value: Any, old: str, new: str, count: int | None = None) -> str:
    text = _text(value)
    old, new = _text(old), _text(new)
    hits = (len(text) + 1) if old == "" else text.count(old)
    if count is not None:
        hits = min(hits, max(int(count), 0))
    if len(text) + hits * len(new) > MAX_OUTPUT_CHARS:
        raise _LimitExceeded("too_long", f"replace would exceed {MAX_OUTPUT_CHARS} characters")
    return text.replace(old, new) if count is None else text.replace(old, new, int(count))


def _join_filter(value: Any, d: str = "") -> str:
    """``join`` that counts the characters before building the string."""
    separator = str(d)
    parts: list[str] = []
    size = 0
    for item in value:
        text = _text(item)
        size += len(text) + len(separator)
        if size > MAX_OUTPUT_CHARS + len(separator):
            raise _LimitExceeded("too_long", f"join would exceed {MAX_OUTPUT_CHARS} characters")
        parts.append(text)
    return separator.join(parts)


# Methods of str, list and dict a template may call: their output is bounded by the
# input and by integer arguments (which the sandbox caps). No format, expandtabs, encode.
_SAFE_METHODS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "find", "get", "index", "isalnum",
        "isalpha", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper",
        "items", "join", "keys", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
        "replace", "rfind", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith",
        "strip", "swapcase", "title", "upper", "values", "zfill",
    }
)  # fmt: skip

_FILTER_NAMES = (
    "abs",
    "capitalize",
    "center",
    "count",
    "d",
    "default",
    "first",
    "float",
    "int",
    "last",
    "length",
    "list",
    "lower",
    "max",
    "min",
    "reverse",
    "round",
    "sort",
    "string",
    "title",
    "trim",
    "truncate",
    "unique",
    "upper",
    "wordcount",
)


# Filters that turn their value into text first: a list's text is sized before it is built.
_TEXT_FILTERS = frozenset(
    {"capitalize", "center", "lower", "string", "title", "trim", "truncate", "upper", "wordcount"}
)


def _guarded_filter(func: Callable[..., Any], *, text: bool = False) -> Callable[..., Any]:
    """Count the call and keep arguments and result within the size limits."""

    value_at = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # after the environment or context

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if text and len(args) > value_at:
            _text(args[value_at])
        for arg in (*args[1:], *kwargs.values()):
            _check_argument(arg)
        result = func(*args, **kwargs)
        _check_size(result)
        return result

    return guarded


# -------------------------------------------------------------------- the sandbox


class _LimitExceeded(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class _Budget:
    deadline: float
    steps: int = 0
    buffered: int = 0


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _tick() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:
        raise _LimitExceeded("render_timeout", "templates render only through hub.templates.render")
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise _LimitExceeded("render_timeout", f"the template did more than {MAX_STEPS} steps")
    if budget.steps % 64 == 0 and time.monotonic() > budget.deadline:
        raise _LimitExceeded("render_timeout", f"the template took longer than {RENDER_SECONDS:g}s")
    return budget


def _check_size(value: Any) -> None:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_OUTPUT_CHARS:
        raise _LimitExceeded("too_long", f"a value grew past {MAX_OUTPUT_CHARS} characters")


def _check_argument(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT_CHARS:
        raise _LimitExceeded("too_long", f"argument {value} is larger than {MAX_OUTPUT_CHARS}")
    _check_size(value)


def _text_size(value: Any, limit: int) -> int:
    """About how long ``str(value)`` would be, counted without building it; stops once past ``limit``.

    A list of 60,000 references to one 60,000-character string is small, but its text is 3.6 GB."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 24  # numbers (their size is capped), None, dates
    return total


def _text(value: Any) -> str:
    """``str(value)``, refused before it is built when it would pass the size limit."""
    if type(value) is str:
        return value
    container = isinstance(value, (list, tuple, dict, set, frozenset))
    if container and _text_size(value, MAX_OUTPUT_CHARS) > MAX_OUTPUT_CHARS:
        raise _LimitExceeded("too_long", f"a value's text would exceed {MAX_OUTPUT_CHARS} characters")
    text = str(value)
    _check_size(text)
    return text


class _Undefined(StrictUndefined):
    """StrictUndefined that names the missing thing (``order`` or ``contact.company``)."""

    __slots__ = ()

    @property
    def missing_name(self) -> str:
        obj = self._undefined_obj
        name = str(self._undefined_name)
        if isinstance(obj, _Record):
            return f"{obj.path}.{name}"
        return name


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, narrowed further and with every loop/call/output counted."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or attr in _UNSAFE_ATTRIBUTES:
            return False
        if callable(value) and isinstance(obj, (str, list, tuple, dict)):
            # methods of plain values: only those whose output cannot explode (see _SAFE_METHODS)
            return attr in _SAFE_METHODS and bool(super().is_safe_attribute(obj, attr, value))
        return bool(super().is_safe_attribute(obj, attr, value))

    def getattr(self, obj: Any, attribute: str) -> Any:
        # context objects are records of fields, not Python objects: no dict methods
        if type(obj) is _Record:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        if __obj is not safe_range and isinstance(getattr(__obj, "__self__", None), (str, list, tuple, dict)):
            for arg in (*args, *kwargs.values()):
                _check_argument(arg)
            method = getattr(__obj, "__name__", "")
            if method == "replace" and isinstance(__obj.__self__, str) and len(args) >= 2:
                return _replace_filter(__obj.__self__, args[0], args[1], args[2] if len(args) > 2 else None)
            if method == "join" and isinstance(__obj.__self__, str) and len(args) == 1 and not kwargs:
                return _join_filter(args[0], __obj.__self__)
        result = ImmutableSandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        _check_size(result)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed in templates")
        both_ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and both_ints and abs(left) > 1 and right * abs(left).bit_length() > _MAX_INT_BITS:
            raise _LimitExceeded("too_long", "the power is too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT_CHARS:
                    raise _LimitExceeded("too_long", f"repetition would exceed {MAX_OUTPUT_CHARS} characters")
            if both_ints and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise _LimitExceeded("too_long", "the product is too large")
        sequences = isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple))
        if operator == "+" and sequences and len(left) + len(right) > MAX_OUTPUT_CHARS:
            raise _LimitExceeded("too_long", f"concatenation would exceed {MAX_OUTPUT_CHARS} characters")
        return super().call_binop(context, operator, left, right)


# Reached from the rewritten AST as filters (a direct call; users cannot name a filter
# starting with "_"): every loop item, every buffered output and every ``~`` result.
def _guard_iter(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _tick()
        yield item


def _guard_emit(value: Any) -> Any:
    budget = _tick()
    budget.buffered += len(_text(value))
    if budget.buffered > MAX_OUTPUT_CHARS:
        raise _LimitExceeded("too_long", f"the output grew past {MAX_OUTPUT_CHARS} characters")
    return value


def _guard_concat(operands: tuple[Any, ...]) -> str:
    """``a ~ b ~ c``: the running length is checked before each operand is added, so a chain of thousands
    of long operands stops at the first one past the limit instead of after joining them all."""
    parts: list[str] = []
    size = 0
    for operand in operands:
        text = _text(operand)
        size += len(text)
        if size > MAX_OUTPUT_CHARS:
            raise _LimitExceeded("too_long", f"concatenation would exceed {MAX_OUTPUT_CHARS} characters")
        parts.append(text)
    return "".join(parts)


def _finalize(value: Any) -> Any:
    """What every ``{{ ... }}`` prints, sized before it is turned into text."""
    return _text(value)


class _Guard:
    """Rewrites the parsed template so loops, buffered output and ``~`` pass through guards."""

    _BUFFERING = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.AssignBlock)

    def visit_node(self, node: nodes.Node, *, buffered: bool) -> None:
        if isinstance(node, nodes.For):
            node.iter = self._call("guard_iter", node.iter)
        if isinstance(node, nodes.Output) and buffered:
            node.nodes = [self._call("guard_emit", child) for child in node.nodes]
        inner = buffered or isinstance(node, self._BUFFERING)
        for name in node.fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, nodes.Concat):
                        value[i] = self._concat(item)
                    if isinstance(item, nodes.Node):
                        self.visit_node(item, buffered=inner)
            elif isinstance(value, nodes.Node):
                if isinstance(value, nodes.Concat):
                    setattr(node, name, self._concat(value))
                self.visit_node(value, buffered=inner)

    @staticmethod
    def _call(guard: str, arg: nodes.Node) -> nodes.Filter:
        return nodes.Filter(arg, f"_{guard}", [], [], None, None, lineno=arg.lineno)

    @classmethod
    def _concat(cls, concat: nodes.Concat) -> nodes.Filter:
        # the operands as a tuple (references, no text yet), joined by _guard_concat
        return cls._call("guard_concat", nodes.Tuple(concat.nodes, "load", lineno=concat.lineno))


def _build_environment() -> _Sandbox:
    env = _Sandbox(
        undefined=_Undefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        cache_size=0,
        finalize=_finalize,
    )
    env.globals.clear()
    env.globals["range"] = safe_range
    builtin = jinja_filters.FILTERS
    env.filters.clear()
    for name in _FILTER_NAMES:
        env.filters[name] = _guarded_filter(builtin[name], text=name in _TEXT_FILTERS)
    env.filters["replace"] = _guarded_filter(_replace_filter)
    env.filters["join"] = _guarded_filter(_join_filter)
    env.filters["date"] = _guarded_filter(_date_filter)
    env.filters["datetime"] = _guarded_filter(_datetime_filter)
    env.filters["time"] = _guarded_filter(_time_filter)
    env.filters["phone"] = _guarded_filter(_phone_filter)
    env.filters["_guard_iter"] = _guard_iter
    env.filters["_guard_emit"] = _guard_emit
    env.filters["_guard_concat"] = _guard_concat
    return env


_ENV = _build_environment()
FILTERS: frozenset[str] = frozenset(name for name in _ENV.filters if not name.startswith("_"))


# -------------------------------------------------------------------- compilation


@dataclass(frozen=True, slots=True)
class _Compiled:
    template: Template
    names: frozenset[str]  # free names the template reads (variables and context objects)
    lines: Mapping[str, int]  # first line each free name appears on
    # plain substitution templates (text, {{ name }}, {{ contact.name }} only) also compile to
    # a list of parts joined without Jinja: (None, text) or (name, field-or-None)
    pattern: str | None = None  # those parts as a str.format_map pattern (braces of the text doubled)
    records: tuple[str, ...] = ()  # context objects the pattern indexes ({contact[name]})


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
        if isinstance(node, nodes.Getattr) and _unsafe_attribute(node.attr):
            raise TemplateError("unsafe_template", f"attribute {node.attr!r} is not allowed", line=line)
        item = node.arg.value if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) else None
        if isinstance(item, str) and _unsafe_attribute(item):
            raise TemplateError("unsafe_template", f"item {item!r} is not allowed", line=line)
        if isinstance(node, nodes.Name) and node.name in _RESERVED_NAMES:
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


def _unsafe_attribute(name: str) -> bool:
    return name.startswith("_") or name in _UNSAFE_ATTRIBUTES


def _compile_source(source: str) -> _Compiled:
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateError("too_long", f"the template source is longer than {MAX_SOURCE_CHARS} characters")
    try:
        return _compile_tree(source)
    except (RecursionError, SyntaxError):
        # thousands of nested brackets: Jinja's parser, its code generator and Python's compiler all recurse
        raise TemplateError("template_syntax", "the template nests brackets or blocks too deeply") from None


def _compile_tree(source: str) -> _Compiled:
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError("template_syntax", exc.message or "syntax error", line=exc.lineno) from None
    _static_check(tree)
    _Guard().visit_node(tree, buffered=False)
    names = frozenset(meta.find_undeclared_variables(tree)) - set(_ENV.globals)
    lines: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.name in names and node.ctx == "load":
            lines.setdefault(node.name, node.lineno)
    try:
        template = _ENV.from_string(tree)
    except TemplateSyntaxError as exc:
        raise TemplateError("template_syntax", exc.message or "syntax error", line=exc.lineno) from None
    except SecurityError as exc:
        raise TemplateError("unsafe_template", str(exc)) from None
    parts = _substitution_parts(tree)
    records = tuple(sorted({name for name, field in parts or () if name and field}))
    return _Compiled(template, names, lines, _format_pattern(parts), records)


@functools.lru_cache(maxsize=2048)
def _compiled(name: str, version: int, source: str) -> _Compiled:
    """Compiled once per (name, version); the source is part of the key so a version
    number reused by another database (tests, a restored backup) never serves stale code."""
    return _compile_source(source)


# ----------------------------------------------------------------------- rendering


def source_for(template: TemplateVersion | TemplateDraft, channel: Channel) -> str:
    """The channel's variant when there is one, else the default body."""
    if not template.variants:
        return template.body
    return template.variants.get(channel.value) or template.body


def _run(compiled: _Compiled, values: dict[str, Any]) -> str:
    if compiled.pattern is not None:
        # the fast path of plain substitution templates; same text as Jinja would give
        try:
            for record in compiled.records:
                if type(values[record]) is not _Record:
                    raise KeyError(record)
            joined = compiled.pattern.format_map(values)
        except KeyError:
            pass  # a context field is missing: Jinja renders it and names what is missing
        else:
            if len(joined) > MAX_OUTPUT_CHARS:
                raise TemplateError("too_long", f"the output grew past {MAX_OUTPUT_CHARS} characters")
            return joined
    budget = _Budget(deadline=time.monotonic() + RENDER_SECONDS)
    token = _BUDGET.set(budget)
    try:
        # shared=True: the values are the whole namespace (no copy of the globals per render)
        values["range"] = safe_range
        template = compiled.template
        chunks: list[str] = []
        size = 0
        for chunk in template.root_render_func(template.new_context(values, shared=True)):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise _LimitExceeded("too_long", f"the output grew past {MAX_OUTPUT_CHARS} characters")
            chunks.append(chunk)
        return "".join(chunks)
    except _LimitExceeded as exc:
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
        _BUDGET.reset(token)


def _undefined_name(exc: UndefinedError) -> str | None:
    # Jinja raises from _Undefined._fail_with_undefined_error; the frame holds the instance
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, _Undefined):
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
    text = _render_source(template, source_for(template, channel), variables, channel, context)
    return RenderedTemplate(
        text=text,
        name=template.name,
        version=template.version,
        tag=template.tag if channel is Channel.MESSENGER else None,
        binding=binding_for(template, variables, channel=channel, context=context, provider=provider),
    )


def _render_source(
    template: TemplateVersion | TemplateDraft,
    source: str,
    variables: Mapping[str, Any],
    channel: Channel,
    context: Mapping[str, Any] | None,
) -> str:
    version = template.version if isinstance(template, TemplateVersion) else 0
    compiled = _compiled(template.name, version, source)
    values: dict[str, Any] = {}
    if context:
        for key, obj in context.items():
            if key in CONTEXT_NAMES and obj is not None:
                values[key] = _Record(key, obj if isinstance(obj, Mapping) else context_record(obj))
        if "contact" not in values and "identity" in values:
            # an identity nobody paired with a contact yet: the same stand-in as render_context
            values["contact"] = _Record("contact", _contact_from_identity(values["identity"]))
    for key, value in variables.items():
        if value is not None:
            values[key] = value
    if not compiled.names <= values.keys():
        missing = sorted(compiled.names - values.keys())
        first = min(compiled.lines.get(name, 0) for name in missing) or None
        raise TemplateError(
            "missing_variables",
            f"missing value(s) for {', '.join(missing)}",
            line=first,
            missing=missing,
            channel=channel,
        )
    try:
        text = _run(compiled, values).strip()
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


# ---------------------------------------------------------------------- validation


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
            compiled = _compile_source(source)
        except TemplateError as exc:
            exc.channel = variant_channel
            raise
        undeclared = sorted(compiled.names - declared)
        if undeclared:
            first = min(compiled.lines.get(name, 0) for name in undeclared) or None
            raise TemplateError(
                "undeclared_variables",
                f"undeclared variable(s) {', '.join(undeclared)}; declare them with an example value",
                line=first,
                missing=undeclared,
                channel=variant_channel,
            )
    for channel in Channel:
        _render_source(
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
        if key in CONTEXT_NAMES or key in _RESERVED_NAMES or key in _ENV.globals:
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


def usable_on(template: TemplateVersion, channel: Channel) -> bool:
    """Every saved template was rendered for every channel at save time, so all are usable;
    kept as one function so a later rule (e.g. per-channel opt-out) has one home."""
    return bool(source_for(template, channel).strip())
