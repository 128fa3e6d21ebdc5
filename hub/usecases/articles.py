"""Knowledge articles: admins write them, agents search and read those of their queues.

An article with no queues is for everyone. Supervisors and admins read every article. Writing
(create, edit, delete, preview) is admin work, recorded in the audit log with the article before and
after. The Markdown is rendered and sanitised once, when a version is saved (off the event loop: a long
body is CPU work), and stored with the version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hub.articles import Article, ArticleDraft, ArticleNotFound, ArticleVersion, render_markdown
from hub.audit import record
from hub.errors import Invalid, NotFound
from hub.model import Role
from hub.store.articles import (
    article_versions_of,
    create_article,
    delete_article,
    get_article,
    list_articles,
    unknown_queues,
    update_article,
)
from hub.usecases._parts import HubParts
from hub.usecases._store_refusals import store_refusals
from hub.usecases.permissions import is_supervisor, require_role
from hub.usecases.principal import Principal

__all__ = ["create", "delete", "preview", "save", "search", "show", "versions"]


def _reader_queues(actor: Principal) -> tuple[str, ...] | None:
    """The queues whose articles the actor reads; None for those who read every article."""
    return None if is_supervisor(actor) else tuple(actor.queues)


def _no_article(article_id: int) -> NotFound:
    return NotFound("not_found", f"no article {article_id}")


async def _known_queues(hub: HubParts, draft: ArticleDraft) -> None:
    missing = await unknown_queues(hub.store, draft.queues)
    if missing:
        raise Invalid("unknown_queue", f"no queue {missing[0]!r}", field="queues")


async def _audit(
    hub: HubParts, actor: Principal, action: str, article_id: int, before: Article | None, after: Article | None
) -> None:
    """The article's content before and after, in the audit log (as a template's)."""

    def content(article: Article | None) -> dict[str, Any] | None:
        if article is None:
            return None
        return {
            "version": article.version,
            "title": article.title,
            "body": article.body,
            "tags": list(article.tags),
            "queues": list(article.queues),
        }

    await record(
        hub.store,
        action,
        actor=actor,
        at=hub.clock(),
        target=f"article:{article_id}",
        before=content(before),
        after=content(after),
    )


async def preview(hub: HubParts, actor: Principal, body: str) -> str:
    """The Markdown as the article would show it (sanitised HTML); nothing is saved."""
    require_role(actor, Role.ADMIN)
    return await asyncio.to_thread(render_markdown, body)


async def create(hub: HubParts, actor: Principal, draft: ArticleDraft) -> Article:
    """A new article, version 1. Invalid ``unknown_queue`` when it names a queue that does not exist."""
    require_role(actor, Role.ADMIN)
    await _known_queues(hub, draft)
    html = await asyncio.to_thread(render_markdown, draft.body)
    article = await create_article(hub.store, draft, html, now=hub.clock(), created_by=actor.id)
    await _audit(hub, actor, "article.created", article.id, None, article)
    return article


async def save(hub: HubParts, actor: Principal, article_id: int, changes: Mapping[str, Any]) -> Article:
    """A new version: the fields given (title, body, tags, queues) replace the current ones."""
    require_role(actor, Role.ADMIN)
    try:
        current = await get_article(hub.store, article_id)
    except ArticleNotFound:
        raise _no_article(article_id) from None
    draft = replace(
        ArticleDraft(title=current.title, body=current.body, tags=current.tags, queues=current.queues), **changes
    )
    await _known_queues(hub, draft)
    html = await asyncio.to_thread(render_markdown, draft.body)
    try:
        saved = await update_article(hub.store, article_id, draft, html, now=hub.clock(), created_by=actor.id)
    except ArticleNotFound:  # deleted meanwhile
        raise _no_article(article_id) from None
    await _audit(hub, actor, "article.updated", article_id, current, saved)
    return saved


async def delete(hub: HubParts, actor: Principal, article_id: int) -> None:
    """The article and its history."""
    require_role(actor, Role.ADMIN)
    try:
        current = await get_article(hub.store, article_id)
        await delete_article(hub.store, article_id)
    except ArticleNotFound:
        raise _no_article(article_id) from None
    await _audit(hub, actor, "article.deleted", article_id, current, None)


async def show(hub: HubParts, actor: Principal, article_id: int) -> Article:
    """One article the actor may read; NotFound also for one of a queue they are not in (its
    existence is not told)."""
    try:
        return await get_article(hub.store, article_id, _reader_queues(actor))
    except ArticleNotFound:
        raise _no_article(article_id) from None


async def versions(hub: HubParts, actor: Principal, article_id: int) -> Sequence[ArticleVersion]:
    """Every version of an article the actor may read, oldest first."""
    await show(hub, actor, article_id)
    try:
        return await article_versions_of(hub.store, article_id)
    except ArticleNotFound:
        raise _no_article(article_id) from None


async def search(
    hub: HubParts, actor: Principal, *, q: str | None, after: str | None, limit: int
) -> tuple[list[Article], str | None]:
    """The articles the actor may read: with ``q`` the best matches first, else the newest first."""
    with store_refusals():
        return await list_articles(hub.store, q=q, reader_queues=_reader_queues(actor), after=after, limit=limit)
