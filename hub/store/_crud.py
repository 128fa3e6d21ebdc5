"""Helpers shared by the CRUD store modules (contacts, identities, tickets, admin):
opaque keyset cursors, LIKE patterns, and the two refusals a store function raises."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from hub.store._db import upsert

__all__ = [
    "BadCursor",
    "Conflict",
    "Invalid",
    "aware_datetime",
    "decode_cursor",
    "encode_cursor",
    "like_pattern",
    "normalise_phone",
    "upsert_ignore",
]


class Conflict(Exception):
    """The change clashes with what is stored (duplicate id, still in use). The API answers 409."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


class Invalid(Exception):
    """A reference in the input names nothing (unknown contact, agent, queue). The API answers 422 with
    ``code``: ``unknown_`` and what the field names, in the singular (``queues`` → ``unknown_queue``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    @property
    def code(self) -> str:
        return f"unknown_{_SINGULAR.get(self.field, self.field)}"


_SINGULAR = {"agents": "agent", "queues": "queue", "statuses": "status"}


class BadCursor(ValueError):
    """A ``next`` cursor we did not hand out."""


def encode_cursor(*key: Any) -> str:
    """An opaque cursor for keyset pagination: the sort key of the last row of a page."""
    raw = json.dumps(list(key), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: Callable[[Any], Any]) -> list[Any]:
    """The key of ``encode_cursor``, each part converted by its kind (``int``, ``str``,
    ``datetime.fromisoformat``); BadCursor for anything we did not hand out."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, list) or len(key) != len(kinds):
            raise BadCursor(cursor)
        return [kind(part) for kind, part in zip(kinds, key, strict=True)]
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadCursor(cursor) from exc


def aware_datetime(value: str) -> datetime:
    """A cursor part that must be an ISO 8601 time with its offset."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive time in a cursor")
    return parsed


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE wildcards escaped (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_PHONE_NOISE = str.maketrans("", "", " -().\u00a0/")


def normalise_phone(phone: str) -> str:
    """Spaces, dashes, dots and brackets removed, a leading ``00`` read as ``+``: one
    spelling per number, so a search for ``+420 777`` finds ``+420777123456``."""
    compact = phone.strip().translate(_PHONE_NOISE)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact


def upsert_ignore(dialect: str, table: Table, values: dict[str, Any]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING (the row may already be there)."""
    return upsert(dialect, table, values).on_conflict_do_nothing()
