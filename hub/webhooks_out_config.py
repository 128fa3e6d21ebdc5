"""``[[webhooks_out]]``: which URLs hear of which hub events, signed with which secret, and the delivery tuning.

Pure parsing and validation, no I/O; ``hub.settings`` calls it while it builds the settings. Event types are
the public contract of the outgoing webhooks (docs/integrations.md).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hub.errors import WHSEC_RECIPE, ConfigError

__all__ = [
    "EVENT_TYPES",
    "WebhookOut",
    "WebhooksDelivery",
    "check_secret",
    "check_url",
    "parse_webhooks_delivery",
    "parse_webhooks_out",
]

EVENT_TYPES: tuple[str, ...] = (
    "message.created",
    "message.delivery",
    "conversation.opened",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.handed_off",
    "conversation.closed",
    "contact.updated",
)
"""Every event type an integration may subscribe to, exactly as it appears in a delivery's ``type``."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEYS = {"id", "url", "secret", "events", "queues", "pause_after"}


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookOut:
    """One subscription: ``url`` hears of ``events`` (in ``queues`` only, when given), signed with ``secret``."""

    id: str
    url: str
    secret: str  # Standard Webhooks form: whsec_<base64>
    events: tuple[str, ...]
    queues: tuple[str, ...] | None = None  # None: every queue
    pause_after: int = 20  # consecutive failed attempts before the endpoint is paused


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhooksDelivery:
    """How deliveries are sent and retried (``[webhooks_delivery]``); the defaults suit production."""

    first_retry_seconds: float = 5.0  # the back-off doubles from here after each failed attempt
    max_retry_seconds: float = 3600.0  # and never waits longer than this between attempts
    give_up_after_hours: float = 24.0  # a delivery is retried at least this long (24 at least)
    timeout_seconds: float = 10.0  # one attempt's whole HTTP exchange
    concurrency: int = 16  # attempts in flight per hub process
    lease_seconds: float = 60.0  # a claimed delivery is another process's to retry after this
    poll_seconds: float = 1.0  # how often the dispatcher looks for due deliveries when nothing wakes it
    keep_days: float = 30.0  # delivered deliveries (and their attempts) are deleted this long after delivery


def check_secret(secret: str, key: str) -> str:
    """``secret`` if it is ``whsec_`` followed by base64 of at least 16 bytes; ConfigError naming ``key``."""
    if not secret.startswith("whsec_"):
        raise ConfigError(key, "must be a Standard Webhooks secret: whsec_ followed by base64")
    try:
        raw = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(key, "is not valid base64 after whsec_") from None
    if len(raw) < 16:
        raise ConfigError(key, "must hold at least 16 random bytes")
    return secret


def check_url(url: str, key: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, f"{url!r} is not an http(s) URL")
    return url


def check_events(value: Any, key: str) -> tuple[str, ...]:
    """A non-empty list of known event types, without repeats."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "must be a non-empty list of event types")
    for event in value:
        if event not in EVENT_TYPES:
            raise ConfigError(key, f"{event!r} is not one of {', '.join(EVENT_TYPES)}")
    if len(set(value)) != len(value):
        raise ConfigError(key, "names an event type twice")
    return tuple(value)


def check_queues(value: Any, key: str, queue_ids: set[str] | None) -> tuple[str, ...]:
    """A non-empty list of queue ids (known ones, when ``queue_ids`` is given)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "must be a non-empty list of queue ids")
    for queue in value:
        if queue_ids is not None and queue not in queue_ids:
            raise ConfigError(key, f"{queue!r} is not a configured queue")
    return tuple(dict.fromkeys(value))


def check_pause_after(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ConfigError(key, "must be a whole number from 1 to 10000")
    return value


def parse_webhooks_out(value: Any, queue_ids: set[str]) -> tuple[WebhookOut, ...]:
    """Every ``[[webhooks_out]]`` entry, strictly: unknown keys, unknown events or queues, bad secrets refused."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError("webhooks_out", "must be an array of tables ([[webhooks_out]])")
    found: list[WebhookOut] = []
    seen: set[str] = set()
    for i, entry in enumerate(value):
        where = f"webhooks_out[{i}]"
        for key in entry:
            if key not in _KEYS:
                raise ConfigError.unknown(f"{where}.{key}", _KEYS)
        for key in ("id", "url", "secret", "events"):
            if key not in entry:
                raise ConfigError(f"{where}.{key}", "is required" + (f"; {WHSEC_RECIPE}" if key == "secret" else ""))
        hook_id = entry["id"]
        if not isinstance(hook_id, str) or not _ID.match(hook_id):
            raise ConfigError(f"{where}.id", f"{hook_id!r} is not a valid id (letters, digits, '_', '-', '.')")
        if hook_id in seen:
            raise ConfigError(f"{where}.id", f"{hook_id!r} is defined twice")
        seen.add(hook_id)
        url, secret = entry["url"], entry["secret"]
        if not isinstance(url, str) or not isinstance(secret, str):
            raise ConfigError(where, "url and secret must be strings")
        found.append(
            WebhookOut(
                id=hook_id,
                url=check_url(url, f"{where}.url"),
                secret=_secret(secret, f"{where}.secret"),
                events=check_events(entry["events"], f"{where}.events"),
                queues=check_queues(entry["queues"], f"{where}.queues", queue_ids) if "queues" in entry else None,
                pause_after=check_pause_after(_number(entry.get("pause_after", 20)), f"{where}.pause_after"),
            )
        )
    return tuple(found)


def _secret(secret: str, key: str) -> str:
    """``check_secret`` for the configuration file, whose reader is told how to make a good one."""
    try:
        return check_secret(secret, key)
    except ConfigError as error:
        raise ConfigError(key, f"{error.problem}; {WHSEC_RECIPE}") from None


def _number(value: Any) -> Any:
    """A number given as text (an environment variable's value) as that number; anything else as it is, for the
    checks to refuse."""
    if not isinstance(value, str):
        return value
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def parse_webhooks_delivery(table: Mapping[str, Any]) -> WebhooksDelivery:
    """``[webhooks_delivery]``: positive numbers; retries last at least 24 hours."""
    numbers: dict[str, float | int] = {}
    fields: Sequence[str] = WebhooksDelivery.__dataclass_fields__.keys()  # type: ignore[assignment]
    for key, raw in table.items():
        where = f"webhooks_delivery.{key}"
        if key not in fields:
            raise ConfigError.unknown(where, fields)
        value = _number(raw)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(where, "must be a positive number")
        if key == "concurrency" and (not isinstance(value, int) or value > 256):
            raise ConfigError(where, "must be a whole number from 1 to 256")
        numbers[key] = value
    delivery = WebhooksDelivery(**numbers)  # type: ignore[arg-type]
    if delivery.give_up_after_hours < 24:
        raise ConfigError("webhooks_delivery.give_up_after_hours", "must be at least 24 (hours)")
    if delivery.max_retry_seconds < delivery.first_retry_seconds:
        raise ConfigError("webhooks_delivery.max_retry_seconds", "must not be less than first_retry_seconds")
    return delivery
