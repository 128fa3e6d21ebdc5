"""Field-level input checks for the CRUD routes (contacts, identities, tickets, admin).

Each check raises a 422 ``ApiError`` naming the field, so a client can put the
message next to the right input; nothing is written before every field passed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from typing import Any

from aiohttp import web

from hub.api.errors import ApiError

__all__ = [
    "MISSING",
    "boolean",
    "given",
    "integer",
    "invalid",
    "json_ok",
    "only_fields",
    "page",
    "parse_id",
    "path_id",
    "query_flag",
    "query_instant",
    "query_int",
    "query_time_text",
    "text",
]

MISSING: Any = object()
DEFAULT_PAGE = 50
MAX_PAGE = 200
_MAX_ID = 2**63 - 1
_MAX_ID_DIGITS = len(str(_MAX_ID))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_ok(data: Any, status: int = 200) -> web.Response:
    """A JSON answer; datetimes as ISO 8601 with their UTC offset."""
    if status == 204:
        return web.Response(status=204)
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=_default))


def invalid(field: str, message: str, code: str = "invalid_field") -> ApiError:
    return ApiError(422, code, message, field=field)


def only_fields(body: dict[str, Any], allowed: tuple[str, ...] | set[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            422,
            "unknown_field",
            f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
            if allowed
            else f"unknown field {unknown[0]!r}; this body takes no fields (send {{}} or nothing)",
            field=unknown[0],
        )


def text(
    body: dict[str, Any],
    key: str,
    *,
    required: bool = False,
    max_length: int = 200,
    nullable: bool = True,
) -> Any:
    """A stripped string, ``None`` (when nullable and given as null or ""), or MISSING when absent."""
    if key not in body:
        if required:
            raise invalid(key, f"{key!r} is required", "missing_field")
        return MISSING
    value = body[key]
    if value is None or (isinstance(value, str) and not value.strip()):
        if required or not nullable:
            raise invalid(key, f"{key!r} must not be empty")
        return None
    if not isinstance(value, str):
        raise invalid(key, f"{key!r} must be a string")
    value = value.strip()
    if len(value) > max_length:
        raise invalid(key, f"{key!r} is longer than {max_length} characters")
    return value


def integer(
    body: dict[str, Any],
    key: str,
    *,
    required: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
    nullable: bool = False,
) -> Any:
    if key not in body:
        if required:
            raise invalid(key, f"{key!r} is required", "missing_field")
        return MISSING
    value = body[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(key, f"{key!r} must be an integer")
    if minimum is not None and value < minimum:
        raise invalid(key, f"{key!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise invalid(key, f"{key!r} must be at most {maximum}")
    return value


def boolean(body: dict[str, Any], key: str) -> Any:
    if key not in body:
        return MISSING
    if not isinstance(body[key], bool):
        raise invalid(key, f"{key!r} must be true or false")
    return body[key]


def given(**values: Any) -> dict[str, Any]:
    """The fields that were present in the body (MISSING left out)."""
    return {k: v for k, v in values.items() if v is not MISSING}


def parse_id(raw: str) -> int | None:
    """A non-negative id written in ASCII digits that fits the database's 64-bit integers, else None.

    ``int()`` alone would take "-1", " 7", "1_000", "²" (a ValueError) and numbers past 2^63 (an
    OverflowError in the driver, a 500)."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_ID_DIGITS:
        return None
    value = int(raw)
    return value if value <= _MAX_ID else None


def path_id(request: web.Request, name: str = "id") -> int:
    """An integer id from the path; anything else names nothing, so 404."""
    raw = request.match_info[name]
    value = parse_id(raw)
    if value is None:
        raise ApiError(404, "not_found", f"no such {name} {raw[:40]!r}")
    return value


def query_int(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    value = parse_id(raw)
    if value is None:
        raise ApiError(422, "invalid_query", f"{key!r} must be an integer id", field=key)
    return value


def query_time_text(raw: str) -> str:
    """A date-time from a query string with its offset's ``+`` put back.

    ``?from=2026-03-03T10:00:00+01:00`` typed as it is arrives with a space for the ``+`` (form encoding), and
    refusing it would tell the caller to use the very format they used. Only the part after the date may hold
    one, so a space there can only have been a ``+``. Every route that reads a time from its query uses this."""
    return raw[:11] + raw[11:].replace(" ", "+")


def query_instant(raw: str, zone: tzinfo = UTC) -> datetime:
    """An ISO 8601 date or date-time from a query string, in UTC (one without an offset, a date too, is read in
    ``zone``). The "+" of an offset left unescaped in a URL arrives as a space: after the date it is read as the
    "+" it was. Raises ValueError when it is no date, OverflowError when it does not fit in UTC (year 1 or 9999
    with an offset)."""
    value = datetime.fromisoformat(query_time_text(raw))
    return (value if value.tzinfo is not None else value.replace(tzinfo=zone)).astimezone(UTC)


def query_flag(request: web.Request, key: str) -> bool:
    raw = request.query.get(key, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ApiError(422, "invalid_query", f"{key!r} must be 1 or 0", field=key)


def page_limit(request: web.Request) -> int:
    """``?limit=N``: how many items a page holds, 50 when not given, from 1 to 200.

    Every paged route reads it here, so ``limit=0`` or ``limit=201`` is the same 422 everywhere rather than
    a default on one route and an empty page on another."""
    limit = query_int(request, "limit")
    if limit is None:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(422, "invalid_query", f"'limit' must be from 1 to {MAX_PAGE}", field="limit")
    return limit


def page(request: web.Request) -> tuple[str | None, int]:
    """``?after=<next cursor>&limit=N`` (see ``page_limit``)."""
    return request.query.get("after") or None, page_limit(request)
