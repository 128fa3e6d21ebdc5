"""Structured logs: one JSON object per line off a terminal, readable text on one.

A filter redacts every configured secret from every record, whatever logged it; another stamps every record
with the correlation id of the request or background job (an ingest group, an outbox send, a routing sweep)
that logged it, kept in a context variable (``correlated``), so one id finds every line of one piece of work.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "CORRELATION_ID",
    "CorrelationIds",
    "JsonFormatter",
    "RedactSecrets",
    "configure_logging",
    "correlated",
    "new_correlation_id",
    "sane_correlation_id",
]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


CORRELATION_ID: ContextVar[str | None] = ContextVar("channelhub_correlation_id", default=None)
"""The id of the request or background job running in this context (None: neither)."""

_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")


def new_correlation_id(prefix: str = "") -> str:
    """A fresh id: 32 hex digits, after ``prefix-`` for a background job (``ingest-…``, ``send-…``)."""
    value = uuid.uuid4().hex
    return f"{prefix}-{value}" if prefix else value


def sane_correlation_id(value: str | None) -> str | None:
    """``value`` when it is safe to repeat in logs and headers (1-128 printable id characters), else None."""
    if value is None or not _SANE_ID.match(value):
        return None
    return value


@contextmanager
def correlated(correlation_id: str | None = None, *, prefix: str = "") -> Iterator[str]:
    """Run the block under ``correlation_id`` (or a new one with ``prefix``); the previous id comes back after."""
    value = correlation_id or new_correlation_id(prefix)
    token = CORRELATION_ID.set(value)
    try:
        yield value
    finally:
        CORRELATION_ID.reset(token)


class CorrelationIds(logging.Filter):
    """Gives every record ``correlation_id``: the current request's or job's id, or None outside both."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = CORRELATION_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactSecrets(logging.Filter):
    """Replaces secret values in the message, its arguments and extras with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg = self._clean(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._clean(value))
        return True


def configure_logging(level: str, fmt: str, secrets: Iterable[str], stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler.setFormatter(
        JsonFormatter()
        if use_json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s]: %(message)s")
    )
    handler.addFilter(CorrelationIds())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
