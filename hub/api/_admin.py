"""What the admin modules (queues, statuses, agents, accounts) share: the id pattern, who may change
things, the 409/422 answers to the store's refusals, and the audit record of a change."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from hub.api._fields import MISSING, invalid
from hub.api._hub import actor
from hub.api.errors import ApiError
from hub.api.keys import CLOCK, STORE
from hub.audit import record
from hub.model import Role
from hub.store._crud import Conflict, Invalid

__all__ = ["ADMIN", "ID", "SUPERVISION", "audit", "conflict_error", "invalid_error", "string_list"]

#: a queue's or a status's id
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ADMIN = (Role.ADMIN,)
SUPERVISION = (Role.SUPERVISOR, Role.ADMIN)


def conflict_error(exc: Conflict) -> ApiError:
    return ApiError(409, exc.code, exc.message, **exc.extra)


def invalid_error(exc: Invalid) -> ApiError:
    return invalid(exc.field, exc.message, f"unknown_{exc.field.rstrip('s')}")


def string_list(body: dict[str, Any], key: str, pattern: re.Pattern[str] = ID) -> Any:
    if key not in body:
        return MISSING
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and pattern.match(v) for v in value):
        raise invalid(key, f"{key!r} must be a list of ids")
    return list(dict.fromkeys(value))


async def audit(
    request: web.Request,
    action: str,
    target: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Record the caller's change in the audit log (hub/audit.py), right after it committed."""
    await record(
        request.app[STORE],
        action,
        actor=await actor(request),
        at=request.app[CLOCK](),
        target=target,
        before=before,
        after=after,
    )
