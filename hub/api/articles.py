"""Knowledge articles over HTTP: search and read (agents: their queues' articles), write (admins).

Bodies are ``{"title", "body" (Markdown), "tags", "queues"}``; every answer carries the body
rendered as sanitised ``html``. ``?q=`` searches (ranked); pages follow with ``after``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api._body import json_body
from hub.api._fields import invalid, json_ok, only_fields, page, path_id
from hub.api._hub import actor, hub_of
from hub.api.errors import ApiError
from hub.api.openapi import PAGE_QUERY, documented, page_schema, ref, schema
from hub.articles import (
    MAX_BODY,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TITLE,
    Article,
    ArticleDraft,
    ArticleVersion,
    normalise_tags,
    plain_text,
)
from hub.usecases import articles as article_usecases

__all__ = ["article_json", "setup"]

routes = web.RouteTableDef()

_FIELDS = ("title", "body", "tags", "queues")
_MAX_QUEUES = 50
_SNIPPET = 240

ARTICLE_INPUT = schema(
    "ArticleInput",
    {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE},
            "body": {"type": "string", "minLength": 1, "maxLength": MAX_BODY, "description": "Markdown"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": MAX_TAG_LENGTH}, "maxItems": MAX_TAGS},
            "queues": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": _MAX_QUEUES,
                "description": "queue ids whose agents may read it; [] = everyone",
            },
        },
        "required": ["title", "body"],
        "additionalProperties": False,
        "description": "On PUT every field is optional: the fields given replace the current version's.",
    },
)
_ARTICLE_PROPS: dict[str, Any] = {
    "id": {"type": "integer"},
    "version": {"type": "integer"},
    "title": {"type": "string"},
    "body": {"type": "string", "description": "Markdown"},
    "html": {"type": "string", "description": "the body rendered and sanitised"},
    "snippet": {"type": "string", "description": "the start of the body as plain text"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "queues": {"type": "array", "items": {"type": "string"}},
    "created_by": {"type": ["integer", "null"]},
    "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"},
}
ARTICLE = schema(
    "Article",
    {"type": "object", "properties": _ARTICLE_PROPS, "required": ["id", "version", "title", "body", "html"]},
)
ARTICLE_PAGE = page_schema("ArticlePage", ref("Article"))
ARTICLE_VERSIONS = schema(
    "ArticleVersions",
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {k: v for k, v in _ARTICLE_PROPS.items() if k not in ("id", "snippet", "updated_at")},
                },
            }
        },
        "required": ["items"],
    },
)


def article_json(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "version": article.version,
        "title": article.title,
        "body": article.body,
        "html": article.html,
        "snippet": plain_text(article.html)[:_SNIPPET],
        "tags": list(article.tags),
        "queues": list(article.queues),
        "created_by": article.created_by,
        "created_at": article.created_at,
        "updated_at": article.updated_at,
    }


def _version_json(version: ArticleVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "title": version.title,
        "body": version.body,
        "html": version.html,
        "tags": list(version.tags),
        "queues": list(version.queues),
        "created_by": version.created_by,
        "created_at": version.created_at,
    }


def _string(body: dict[str, Any], key: str, max_length: int) -> str:
    value = body[key]
    if not isinstance(value, str) or not value.strip():
        raise invalid(key, f"{key!r} must be a non-empty string")
    if "\x00" in value:
        raise invalid(key, f"{key!r} must not contain NUL characters")
    if len(value) > max_length:
        raise invalid(key, f"{key!r} is longer than {max_length} characters")
    return value.strip() if key == "title" else value.rstrip()


def _strings(body: dict[str, Any], key: str, *, max_items: int, max_length: int) -> tuple[str, ...]:
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(key, f"{key!r} must be a list of strings")
    if len(value) > max_items:
        raise invalid(key, f"{key!r} has more than {max_items} items")
    for item in value:
        if len(item) > max_length or "\x00" in item:
            raise invalid(key, f"an item of {key!r} is longer than {max_length} characters or holds NUL")
    return tuple(value)


def _parse(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The fields given, checked (types and lengths); on create, title and body are required."""
    only_fields(body, _FIELDS)
    if creating:
        for key in ("title", "body"):
            if key not in body:
                raise invalid(key, f"{key!r} is required", "missing_field")
    fields: dict[str, Any] = {}
    if "title" in body:
        fields["title"] = _string(body, "title", MAX_TITLE)
    if "body" in body:
        fields["body"] = _string(body, "body", MAX_BODY)
    if "tags" in body:
        fields["tags"] = normalise_tags(_strings(body, "tags", max_items=MAX_TAGS, max_length=MAX_TAG_LENGTH))
    if "queues" in body:
        fields["queues"] = tuple(
            dict.fromkeys(q.strip() for q in _strings(body, "queues", max_items=_MAX_QUEUES, max_length=64))
        )
    return fields


@routes.get("/api/v1/articles")
@documented(
    "Search knowledge articles",
    description="With `q`, the best matches first (title, then tags, then body; words match as prefixes, and a "
    "mistyped word is corrected where the engine allows); without, the newest first. Agents get the articles "
    "of their queues and those for everyone; supervisors and admins every article.",
    query={"q": {"type": "string"}, **PAGE_QUERY},
    ok=(200, ARTICLE_PAGE),
    errors=(422,),
    tag="articles",
)
async def articles_index(request: web.Request) -> web.Response:
    principal = await actor(request)
    after, limit = page(request)
    q = request.query.get("q")
    if q is not None and len(q) > 500:
        raise ApiError(422, "invalid_query", "'q' is longer than 500 characters", field="q")
    items, cursor = await article_usecases.search(hub_of(request), principal, q=q, after=after, limit=limit)
    return json_ok({"items": [article_json(a) for a in items], "next": cursor})


@routes.post("/api/v1/articles")
@documented("Write a knowledge article", body=ARTICLE_INPUT, ok=(201, ARTICLE), errors=(400, 403, 422), tag="articles")
async def articles_create(request: web.Request) -> web.Response:
    principal = await actor(request)
    fields = _parse(await json_body(request), creating=True)
    article = await article_usecases.create(hub_of(request), principal, ArticleDraft(**fields))
    return json_ok(article_json(article), status=201)


@routes.post("/api/v1/articles/preview")
@documented(
    "Preview an article's Markdown",
    description="The body rendered and sanitised as a saved article would show it; nothing is saved.",
    body={
        "type": "object",
        "properties": {"body": {"type": "string", "maxLength": MAX_BODY}},
        "required": ["body"],
        "additionalProperties": False,
    },
    ok=(200, {"type": "object", "properties": {"html": {"type": "string"}}, "required": ["html"]}),
    errors=(400, 403, 422),
    tag="articles",
)
async def articles_preview(request: web.Request) -> web.Response:
    principal = await actor(request)
    body = await json_body(request)
    only_fields(body, ("body",))
    if "body" not in body:
        raise invalid("body", "'body' is required", "missing_field")
    markdown = body["body"]
    if not isinstance(markdown, str) or len(markdown) > MAX_BODY:
        raise invalid("body", f"'body' must be a string of at most {MAX_BODY} characters")
    html = await article_usecases.preview(hub_of(request), principal, markdown)
    return json_ok({"html": html})


@routes.get("/api/v1/articles/{id}")
@documented("One knowledge article", ok=(200, ARTICLE), errors=(404,), tag="articles")
async def articles_show(request: web.Request) -> web.Response:
    principal = await actor(request)
    article = await article_usecases.show(hub_of(request), principal, path_id(request))
    return json_ok(article_json(article))


@routes.put("/api/v1/articles/{id}")
@documented(
    "Edit a knowledge article (a new version)", body=ARTICLE_INPUT, ok=(200, ARTICLE), errors=(400, 403, 404, 422),
    tag="articles",
)  # fmt: skip
async def articles_update(request: web.Request) -> web.Response:
    principal = await actor(request)
    article_id = path_id(request)
    fields = _parse(await json_body(request), creating=False)
    article = await article_usecases.save(hub_of(request), principal, article_id, fields)
    return json_ok(article_json(article))


@routes.delete("/api/v1/articles/{id}")
@documented("Delete a knowledge article and its history", ok=(204, None), errors=(403, 404), tag="articles")
async def articles_delete(request: web.Request) -> web.Response:
    principal = await actor(request)
    await article_usecases.delete(hub_of(request), principal, path_id(request))
    return json_ok(None, status=204)


@routes.get("/api/v1/articles/{id}/versions")
@documented("A knowledge article's versions, oldest first", ok=(200, ARTICLE_VERSIONS), errors=(404,), tag="articles")
async def articles_versions(request: web.Request) -> web.Response:
    principal = await actor(request)
    found = await article_usecases.versions(hub_of(request), principal, path_id(request))
    return json_ok({"items": [_version_json(v) for v in found]})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
