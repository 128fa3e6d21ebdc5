"""The "Page in iframe" widget's URL: a queue's template filled with one conversation's variables.

Pure: no I/O. An admin configures ``[[queues]] iframe_url`` (a URL template with ``{variables}``)
and ``iframe_hosts`` (the hosts it may point at). The template is checked when the configuration
is read: its scheme and host are literal text (no variable can change where the page comes from),
the host is allowed, and it names only known variables. The URL is built on the server: every
value is percent-encoded whole (``/``, ``?``, ``#``, ``&`` included), so a customer's name cannot
add a path, a parameter or a fragment, and the result is checked against the allow-list again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from string import Formatter
from urllib.parse import quote, urlsplit

__all__ = [
    "BOT_PREFIX",
    "IFRAME_VARIABLES",
    "IframeRefused",
    "build_iframe_url",
    "check_iframe_template",
    "normalise_host",
]

IFRAME_VARIABLES = frozenset(
    {
        "conversation_id",
        "identity_id",
        "contact_id",
        "customer_name",
        "phone",
        "channel",
        "account_id",
        "queue",
        "queue_name",
    }
)
"""What ``{...}`` may name, besides ``{bot.NAME}`` (a field a bot collected in the conversation)."""

BOT_PREFIX = "bot."
_SCHEMES = ("http", "https")


class IframeRefused(ValueError):
    """A template or a built URL that is not allowed; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalise_host(host: str) -> str:
    """A host as the allow-list compares it: trimmed, lower-case, no trailing dot."""
    return host.strip().lower().rstrip(".")


def _fields(template: str) -> list[tuple[str, str | None]]:
    """(literal, variable) pairs; IframeRefused for broken braces, format specs or conversions."""
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise IframeRefused("invalid_iframe_url", f"not a valid template: {exc}") from None
    pairs: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (spec or conversion):
            raise IframeRefused("invalid_iframe_url", f"{{{name}}} may not carry a format or a conversion")
        pairs.append((literal, name))
    return pairs


def _allowed_variable(name: str) -> bool:
    if name in IFRAME_VARIABLES:
        return True
    field = name.removeprefix(BOT_PREFIX)
    return name.startswith(BOT_PREFIX) and field.replace("_", "").isalnum()


def check_iframe_template(template: str, hosts: Collection[str]) -> None:
    """Quietly, or IframeRefused saying what is wrong with the template for these allowed hosts."""
    pairs = _fields(template)
    prefix = pairs[0][0] if pairs else ""
    fixed = urlsplit(prefix)
    if fixed.scheme not in _SCHEMES or not fixed.netloc:
        raise IframeRefused("invalid_iframe_url", "must start with a literal http:// or https:// address")
    has_variables = any(name is not None for _, name in pairs)
    after_host = prefix[len(fixed.scheme) + 3 + len(fixed.netloc) :]
    if has_variables and not after_host:
        raise IframeRefused("invalid_iframe_url", "a variable may not touch the host: put a '/' before it")
    if "@" in fixed.netloc or fixed.hostname is None:
        raise IframeRefused("invalid_iframe_url", "the address may not carry a user name or password")
    allowed = {normalise_host(h) for h in hosts}
    if normalise_host(fixed.hostname) not in allowed:
        raise IframeRefused(
            "iframe_host_not_allowed", f"host {fixed.hostname!r} is not in iframe_hosts ({', '.join(sorted(allowed))})"
        )
    for _, name in pairs:
        if name is not None and not _allowed_variable(name):
            known = ", ".join(sorted(IFRAME_VARIABLES))
            raise IframeRefused("unknown_iframe_variable", f"unknown variable {{{name}}}; known: {known}, bot.NAME")


def build_iframe_url(template: str, hosts: Collection[str], values: Mapping[str, object]) -> str:
    """The template filled with ``values`` (each percent-encoded whole; a missing one is empty),
    checked again against the allowed hosts. IframeRefused when the template or the result is not allowed."""
    check_iframe_template(template, hosts)
    out = []
    for literal, name in _fields(template):
        out.append(literal)
        if name is not None:
            value = values.get(name)
            out.append("" if value is None else quote(str(value), safe=""))
    url = "".join(out)
    built = urlsplit(url)
    if built.scheme not in _SCHEMES or normalise_host(built.hostname or "") not in {normalise_host(h) for h in hosts}:
        raise IframeRefused("iframe_host_not_allowed", "the built address is not on an allowed host")
    return url
