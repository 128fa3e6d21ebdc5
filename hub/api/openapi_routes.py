"""OpenAPI entries for routes whose modules do not decorate their handlers
(auth, conversations, WebSocket, outbound, templates), registered by method and
path with ``hub.api.openapi.document``.

When you own one of these routes you may move its entry onto the handler with
``@documented(...)`` and delete it here; ``tests/api/test_openapi.py`` tells you
when an entry here names a route that no longer exists.
"""

from __future__ import annotations

from hub.api.openapi import document, schema

__all__ = ["register"]

_PRESENCE = {
    "type": "object",
    "properties": {
        "state": {"type": "string", "enum": ["ready", "paused", "offline"]},
        "reason": {"type": ["string", "null"]},
        "paid": {"type": ["boolean", "null"]},
        "since": {"type": ["string", "null"], "format": "date-time"},
    },
}
AGENT = schema(
    "Agent",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "login": {"type": "string"},
            "display_name": {"type": "string"},
            "role": {"type": "string", "enum": ["agent", "supervisor", "admin"]},
            "capacity": {"type": "integer"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "presence": _PRESENCE,
        },
        "required": ["id", "login", "role"],
    },
)

_registered = False


def _auth() -> None:
    document(
        "POST",
        "/api/v1/auth/login",
        "Log in with login and password",
        description="Answers a bearer token and sets the console session cookie (HttpOnly, SameSite=Strict); "
        "`csrf_token` goes in `X-CSRF-Token` on state changes made with the cookie.",
        body={
            "type": "object",
            "properties": {"login": {"type": "string"}, "password": {"type": "string", "format": "password"}},
            "required": ["login", "password"],
        },
        ok=(
            200,
            {
                "type": "object",
                "properties": {"token": {"type": "string"}, "agent": AGENT, "csrf_token": {"type": "string"}},
                "required": ["token", "agent"],
            },
        ),
        errors=(400, 401),
        tag="auth",
        auth=False,
    )
    document(
        "POST",
        "/api/v1/auth/logout",
        "Log out: end the session or revoke the bearer token of this request",
        ok=(204, None),
        tag="auth",
    )
    document("GET", "/api/v1/me", "Who am I", ok=(200, AGENT), tag="auth")
    document(
        "PUT",
        "/api/v1/me/presence",
        "Set my presence",
        body={
            "type": "object",
            "properties": {
                "state": {"type": "string", "enum": ["ready", "paused", "offline"]},
                "reason": {"type": "string"},
                "paid": {"type": "boolean"},
            },
            "required": ["state"],
        },
        ok=(200, AGENT),
        errors=(400, 422),
        tag="auth",
    )


def register() -> None:
    """Idempotent: the entries are module-level state shared by every app."""
    global _registered
    if _registered:
        return
    _registered = True
    _auth()
