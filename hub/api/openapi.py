"""The OpenAPI 3.1 document of ``/api/v1``, built from the routes that exist.

How to document a route (everyone who adds one under ``/api/v1``):

1. Decorate the handler::

       from hub.api.openapi import documented, ref

       @documented(
           "Create a contact",
           body=ref("ContactInput"),          # JSON Schema of the request body (or None)
           ok=(201, ref("Contact")),          # (status, schema) of the success answer
           errors=(401, 403, 422),            # error statuses; each uses the Error schema
           query={"q": {"type": "string"}},   # query parameters (optional)
           tag="contacts",
       )
       async def create_contact(request: web.Request) -> web.Response: ...

   Path parameters (``{id}``) are found in the route itself. ``auth=False``
   marks a public route (login). Reusable schemas go in with
   ``schema("Name", {...})`` which returns the ``$ref`` to use.

2. Or, when you cannot decorate the handler (a class-based view, a handler
   shared by two routes), register the operation by method and path::

       document("GET", "/api/v1/ws", "Event stream (WebSocket)", ok=(101, None), tag="ws")

3. A cursor-paged list answers ``{"items": [...], "next": cursor or null}``: describe it with
   ``page_schema("ContactPage", ref("Contact"))`` and take its query parameters from ``PAGE_QUERY``
   (``after``, ``limit``) or, for another cursor name, ``PAGE_LIMIT``. A list answered whole is
   ``list_schema(item)``.

``GET /api/v1/openapi.json`` walks ``app.router`` and emits every route under
``/api/v1`` with its documentation; ``tests/api/test_openapi.py`` fails when a
route has none or when a documented route does not exist, so the document
stays equal to the API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from hub.api._fields import MAX_PAGE

__all__ = [
    "API_PREFIX",
    "ERROR_SCHEMA",
    "PAGE_LIMIT",
    "PAGE_QUERY",
    "Operation",
    "build_document",
    "document",
    "documented",
    "list_schema",
    "operation_for",
    "page_schema",
    "ref",
    "routes_under_api",
    "schema",
    "setup",
]

API_PREFIX = "/api/v1"
H = TypeVar("H", bound=Callable[..., Any])
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_SKIPPED_METHODS = {"HEAD", "OPTIONS", "*"}
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_IDEMPOTENCY_KEY = {"type": "string", "description": "a retry with the same key returns the first answer"}

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No content",
    101: "Switching protocols",
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden: outside the caller's rights; nothing changed",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Invalid input; nothing changed",
    429: "Too many requests",
    503: "A service the hub needs (the media store, ...) cannot be used now; nothing changed; try again later",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One documented method on one path."""

    summary: str
    description: str | None = None
    body: Mapping[str, Any] | None = None
    ok: tuple[int, Mapping[str, Any] | None] = (200, None)
    errors: tuple[int, ...] = ()
    query: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tag: str | None = None
    auth: bool = True
    also_ok: tuple[tuple[int, Mapping[str, Any] | None], ...] = ()  # other success answers (status, body)


_SCHEMAS: dict[str, dict[str, Any]] = {}
_BY_PATH: dict[tuple[str, str], Operation] = {}


def ref(name: str) -> dict[str, Any]:
    """A ``$ref`` to a component schema (registered with ``schema``)."""
    return {"$ref": f"#/components/schemas/{name}"}


def schema(name: str, definition: Mapping[str, Any]) -> dict[str, Any]:
    """Register a reusable component schema; returns its ``$ref``."""
    _SCHEMAS[name] = dict(definition)
    return ref(name)


def page_schema(name: str, item: Mapping[str, Any], *, description: str | None = None) -> dict[str, Any]:
    """Register ``name``, one page of a cursor-paged list of ``item``; returns its ``$ref``.

    ``next`` is the cursor of the following page (the ``after`` of the next request), null on the last one.
    """
    definition: dict[str, Any] = {"type": "object"}
    if description is not None:
        definition["description"] = description
    definition["properties"] = {"items": {"type": "array", "items": dict(item)}, "next": {"type": ["string", "null"]}}
    definition["required"] = ["items", "next"]
    return schema(name, definition)


def list_schema(item: Mapping[str, Any]) -> dict[str, Any]:
    """A list answered whole, ``{"items": [item, ...]}`` (inline; give it to ``schema`` to name it)."""
    return {"type": "object", "properties": {"items": {"type": "array", "items": dict(item)}}, "required": ["items"]}


PAGE_LIMIT: Mapping[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}
"""The ``limit`` query parameter of every paged list (hub.api._fields.page reads it)."""
PAGE_QUERY: Mapping[str, Mapping[str, Any]] = {
    "after": {"type": "string", "description": "the `next` cursor of the previous page"},
    "limit": PAGE_LIMIT,
}
"""``?after=<next cursor>&limit=N``: the query parameters of a paged list; spread it beside a route's own."""


ERROR_SCHEMA = schema(
    "Error",
    {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "machine-readable, e.g. invalid_field"},
                    "message": {"type": "string"},
                },
                "additionalProperties": True,
            }
        },
    },
)


def _operation(
    summary: str,
    *,
    description: str | None = None,
    body: Mapping[str, Any] | None = None,
    ok: tuple[int, Mapping[str, Any] | None] = (200, None),
    errors: Iterable[int] = (),
    query: Mapping[str, Mapping[str, Any]] | None = None,
    headers: Mapping[str, Mapping[str, Any]] | None = None,
    tag: str | None = None,
    auth: bool = True,
    also_ok: Iterable[tuple[int, Mapping[str, Any] | None]] = (),
) -> Operation:
    return Operation(
        summary=summary,
        description=description,
        body=body,
        ok=ok,
        errors=tuple(sorted(set(errors))),
        query=dict(query or {}),
        headers=dict(headers or {}),
        tag=tag,
        auth=auth,
        also_ok=tuple(also_ok),
    )


def documented(
    summary: str,
    *,
    description: str | None = None,
    body: Mapping[str, Any] | None = None,
    ok: tuple[int, Mapping[str, Any] | None] = (200, None),
    errors: Iterable[int] = (),
    query: Mapping[str, Mapping[str, Any]] | None = None,
    headers: Mapping[str, Mapping[str, Any]] | None = None,
    tag: str | None = None,
    auth: bool = True,
    also_ok: Iterable[tuple[int, Mapping[str, Any] | None]] = (),
) -> Callable[[H], H]:
    """Attach documentation to a handler; the handler itself is unchanged. ``also_ok``: other success
    answers the route gives, as (status, body schema)."""
    op = _operation(
        summary,
        description=description,
        body=body,
        ok=ok,
        errors=errors,
        query=query,
        headers=headers,
        tag=tag,
        auth=auth,
        also_ok=also_ok,
    )

    def mark(handler: H) -> H:
        handler.__openapi__ = op  # type: ignore[attr-defined]
        return handler

    return mark


def document(
    method: str,
    path: str,
    summary: str,
    *,
    description: str | None = None,
    body: Mapping[str, Any] | None = None,
    ok: tuple[int, Mapping[str, Any] | None] = (200, None),
    errors: Iterable[int] = (),
    query: Mapping[str, Mapping[str, Any]] | None = None,
    headers: Mapping[str, Mapping[str, Any]] | None = None,
    tag: str | None = None,
    auth: bool = True,
) -> None:
    """Document a route by method and path (for handlers you cannot decorate)."""
    _BY_PATH[(method.upper(), path)] = _operation(
        summary,
        description=description,
        body=body,
        ok=ok,
        errors=errors,
        query=query,
        headers=headers,
        tag=tag,
        auth=auth,
    )


def routes_under_api(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path, handler) of every route under /api/v1, HEAD/OPTIONS left out."""
    found = []
    for route in app.router.routes():
        if route.method in _SKIPPED_METHODS:
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or ""
        path = _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            found.append((route.method, path, route.handler))
    return found


def operation_for(method: str, path: str, handler: Any) -> Operation | None:
    explicit = _BY_PATH.get((method, path))
    if explicit is not None:
        return explicit
    return getattr(handler, "__openapi__", None)


def documented_by_path() -> set[tuple[str, str]]:
    """Routes registered with ``document`` (the test checks each one exists)."""
    return set(_BY_PATH)


def _render(method: str, path: str, op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(method, path)}
    if op.description:
        out["description"] = op.description
    if op.tag:
        out["tags"] = [op.tag]
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": dict(s)} for name, s in sorted(op.query.items())
    ]
    headers = dict(op.headers)
    idempotent = op.auth and method in _UNSAFE_METHODS
    if idempotent:
        # the idempotency middleware serves every state-changing route (hub/api/idempotency.py)
        headers.setdefault("Idempotency-Key", _IDEMPOTENCY_KEY)
    params += [
        {"name": name, "in": "header", "required": False, "schema": dict(s)} for name, s in sorted(headers.items())
    ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": dict(op.body)}}}
    status, body = op.ok
    responses: dict[str, Any] = {str(status): {"description": _REASONS.get(status, "OK")}}
    if body is not None:
        responses[str(status)]["content"] = {"application/json": {"schema": dict(body)}}
    for other, other_body in op.also_ok:
        responses[str(other)] = {"description": _REASONS.get(other, "OK")}
        if other_body is not None:
            responses[str(other)]["content"] = {"application/json": {"schema": dict(other_body)}}
    errors = set(op.errors)
    if op.auth:
        errors.add(401)
    if idempotent:
        errors.add(422)  # idempotency_key_reused: the key came with another request before
        errors.add(400)  # invalid_idempotency_key: empty or longer than 200 characters
    for code in sorted(errors):
        responses[str(code)] = {
            "description": _REASONS.get(code, "Error"),
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
    out["responses"] = responses
    out["security"] = [{"bearer": []}, {"cookie": []}] if op.auth else []
    return out


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}") for w in path.removeprefix(API_PREFIX).split("/") if w]
    return method.lower() + "_" + "_".join(words or ["root"])


def build_document(app: web.Application) -> dict[str, Any]:
    """The whole document; routes without documentation are listed under x-undocumented."""
    paths: dict[str, dict[str, Any]] = {}
    undocumented: list[str] = []
    for method, path, handler in sorted(routes_under_api(app), key=lambda r: (r[1], r[0])):
        op = operation_for(method, path, handler)
        if op is None:
            undocumented.append(f"{method} {path}")
            continue
        paths.setdefault(path.removeprefix(API_PREFIX) or "/", {})[method.lower()] = _render(method, path, op)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "channelhub API",
            "version": "1",
            "description": "Agent, supervisor and admin API of the channelhub contact-centre hub.",
        },
        "servers": [{"url": API_PREFIX}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(_SCHEMAS.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "token from POST /auth/login"},
                "cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "channelhub_session",
                    "description": "console session; state changes also need the X-CSRF-Token header",
                },
            },
        },
    }
    if undocumented:
        doc["x-undocumented"] = undocumented
    return doc


@documented("This document (OpenAPI 3.1)", ok=(200, {"type": "object"}), auth=False, tag="meta")
async def openapi_json(request: web.Request) -> web.Response:
    """Public, like any API description: it holds no data."""
    return web.json_response(build_document(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get(f"{API_PREFIX}/openapi.json", openapi_json)
