"""What the admin modules (queues, statuses, agents, accounts) share: the id pattern, who may change
things and the caller as the acting principal, and the reading of a list of ids."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hub.api._fields import MISSING, invalid, text
from hub.api._hub import principal
from hub.api.auth import authenticated, require_role
from hub.model import Role
from hub.usecases import Principal

__all__ = ["ADMIN", "ID", "SUPERVISION", "acting_as", "new_id", "string_list"]

#: a queue's or a status's id
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ADMIN = (Role.ADMIN,)
SUPERVISION = (Role.SUPERVISOR, Role.ADMIN)


def new_id(body: dict[str, Any]) -> str:
    """``body["id"]`` of a queue or status to create: required, and 422 unless it matches ``ID``."""
    value: str = text(body, "id", required=True, nullable=False, max_length=64)
    if not ID.match(value):
        raise invalid("id", "'id' may hold letters, digits, '_', '-' and '.' (at most 64)")
    return value


def string_list(body: dict[str, Any], key: str, pattern: re.Pattern[str] = ID) -> Any:
    """``body[key]`` as a list of ids without repeats (MISSING when absent); 422 when it is not one."""
    if key not in body:
        return MISSING
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and pattern.match(v) for v in value):
        raise invalid(key, f"{key!r} must be a list of ids")
    return list(dict.fromkeys(value))


async def acting_as(request: web.Request, *roles: Role) -> Principal:
    """The logged-in caller as the acting principal: 401 when nobody is, 403 without one of ``roles`` (checked
    here, before the body is read, and again by the use case)."""
    agent = await authenticated(request)
    require_role(agent, *roles)
    return principal(request, agent)
