"""Reading request bodies the same way everywhere: a JSON object or a 400 with a code."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.api.errors import ApiError

__all__ = ["json_body", "optional_str", "required_str"]


async def json_body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    try:
        body = json.loads(raw)
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
