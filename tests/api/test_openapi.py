"""The OpenAPI document stays equal to the routes that exist under /api/v1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.api.openapi import API_PREFIX, build_document, documented_by_path, operation_for, routes_under_api
from hub.api.server import create_app
from hub.settings import Settings

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def _app(make_settings: Callable[..., Settings], sqlite_url: str) -> web.Application:
    return create_app(make_settings(database_url=sqlite_url))


def test_every_api_route_is_documented(make_settings: Callable[..., Settings], sqlite_url: str) -> None:
    app = _app(make_settings, sqlite_url)
    missing = [f"{m} {p}" for m, p, h in routes_under_api(app) if operation_for(m, p, h) is None]
    assert missing == []


def test_nothing_is_documented_that_does_not_exist(make_settings: Callable[..., Settings], sqlite_url: str) -> None:
    app = _app(make_settings, sqlite_url)
    existing = {(m, p) for m, p, _ in routes_under_api(app)}
    assert sorted(documented_by_path() - existing) == []


def test_document_paths_equal_the_routes(make_settings: Callable[..., Settings], sqlite_url: str) -> None:
    app = _app(make_settings, sqlite_url)
    doc = build_document(app)
    in_doc = {
        (method.upper(), API_PREFIX + path)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert in_doc == {(m, p) for m, p, _ in routes_under_api(app)}
    assert "x-undocumented" not in doc


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_document_is_well_formed_openapi_31(make_settings: Callable[..., Settings], sqlite_url: str) -> None:
    doc = build_document(_app(make_settings, sqlite_url))
    assert doc["openapi"] == "3.1.0"
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "cookie"}
    schemas = doc["components"]["schemas"]
    for target in _refs(doc):
        assert target.startswith("#/components/schemas/")
        assert target.rsplit("/", 1)[1] in schemas, target
    operation_ids = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["summary"], f"{method} {path}"
            assert op["responses"], f"{method} {path}"
            operation_ids.append(op["operationId"])
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == {seg.strip("{}") for seg in path.split("/") if seg.startswith("{")}
            if op["security"]:
                assert op["responses"]["401"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }
    assert len(operation_ids) == len(set(operation_ids))


async def test_document_is_served_without_authentication(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    client: TestClient = await aiohttp_client(_app(make_settings, sqlite_url))
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    body = await response.json()
    assert body["openapi"] == "3.1.0"
    assert "/openapi.json" in body["paths"]


def test_state_changing_routes_document_the_idempotency_key(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    doc = build_document(_app(make_settings, sqlite_url))
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("post", "put", "delete") and op["security"]:
                headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
                assert "Idempotency-Key" in headers, f"{method} {path}"
