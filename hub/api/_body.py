"""Reading request bodies the same way everywhere: a JSON object or a 400 with a code.

``parse_json`` is the one JSON reader for what a client sends (bodies, cursors): it
refuses what would otherwise fail later as a 500 — nesting deeper than ``MAX_DEPTH``
(100,000 levels would exhaust the recursion of any reader), integers outside 64 bits
(the database drivers overflow), ``NaN``/``Infinity``, NUL characters (PostgreSQL
cannot store them in text) and lone surrogates such as ``"\\ud800"`` (valid JSON escapes
that name no character: they cannot be written as UTF-8, so no database, log or
Markdown renderer takes them).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web

from hub.api.errors import ApiError

__all__ = ["MAX_DEPTH", "JsonRefused", "json_body", "optional_str", "parse_json", "required_str"]

MAX_DEPTH = 64
_INT64 = 2**63
_MAX_INT_DIGITS = len(str(_INT64)) + 1  # a sign and the digits of 2**63
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


class JsonRefused(ValueError):
    """Valid JSON the hub will not take; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _integer(text: str) -> int:
    value = int(text) if len(text) <= _MAX_INT_DIGITS else _INT64
    if not -_INT64 <= value < _INT64:
        raise JsonRefused("number_out_of_range", "integers must fit in 64 bits (-2^63 to 2^63-1)")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused("number_out_of_range", f"the number {text[:30]} is too large")
    return value


def _constant(name: str) -> Any:
    raise JsonRefused("invalid_json", f"{name} is not a JSON number")


def _refused_string(text: str, *, nul: bool) -> JsonRefused | None:
    if nul and "\x00" in text:
        return JsonRefused("invalid_json", "strings must not contain NUL characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return JsonRefused("invalid_json", "strings must be valid Unicode: a lone surrogate is not a character")
    return None


def _check_tree(value: Any, *, nul: bool) -> None:
    """Depth at most MAX_DEPTH, no lone surrogate and, when ``nul``, no NUL character in a key or string;
    no recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise JsonRefused("json_too_deep", f"the JSON is nested deeper than {MAX_DEPTH} levels")
            children = item.items() if isinstance(item, dict) else ((None, child) for child in item)
            for key, child in children:
                refused = _refused_string(key, nul=nul) if isinstance(key, str) else None
                if refused is not None:
                    raise refused
                stack.append((child, depth + 1))
        elif isinstance(item, str):
            refused = _refused_string(item, nul=nul)
            if refused is not None:
                raise refused


def parse_json(raw: bytes | str) -> Any:
    """``json.loads`` within the hub's limits; raises ValueError (JsonRefused for the limits)."""
    try:
        value = json.loads(raw, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JsonRefused("json_too_deep", f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    nul = b"\\u0000" in data
    # a lone surrogate comes from an escape or from bytes outside ASCII (json.loads lets both through)
    surrogates = not data.isascii() or _SURROGATE_ESCAPE.search(data) is not None
    if nul or surrogates or data.count(b"[") + data.count(b"{") > MAX_DEPTH:  # else none can be there
        _check_tree(value, nul=nul)
    return value


async def json_body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    try:
        body = parse_json(raw)
    except JsonRefused as exc:
        raise ApiError(400, exc.code, exc.message) from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def required_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_field", f"{key!r} is required and must be a non-empty string", field=key)
    return value


def optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"{key!r} must be a string", field=key)
    return value
