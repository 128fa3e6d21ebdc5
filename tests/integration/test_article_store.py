"""hub.store.articles on both engines: one contract for versions, visibility and ranked search.

The same assertions run on SQLite (FTS5) and PostgreSQL (tsvector + GIN): whichever engine a
deployment picks, an agent's search behaves the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.articles import ArticleDraft, ArticleNotFound, render_markdown
from hub.store import Store
from hub.store import articles as articles_store
from hub.store._crud import BadCursor
from hub.store.articles import (
    article_versions_of,
    count_articles,
    create_article,
    delete_article,
    get_article,
    import_articles,
    list_articles,
    update_article,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def write(
    store: Store, title: str, body: str, *, tags: tuple[str, ...] = (), queues: tuple[str, ...] = ()
) -> int:
    draft = ArticleDraft(title=title, body=body, tags=tags, queues=queues)
    return (await create_article(store, draft, render_markdown(body), now=NOW, created_by=None)).id


async def titles(store: Store, q: str, reader_queues: tuple[str, ...] | None = None) -> list[str]:
    items, _ = await list_articles(store, q=q, reader_queues=reader_queues, limit=50)
    return [a.title for a in items]


async def test_every_save_is_a_new_version_and_the_article_shows_the_last(store: Store) -> None:
    article_id = await write(store, "Refunds", "Refunds take **five** days.", tags=("billing",))
    later = NOW + timedelta(minutes=5)
    draft = ArticleDraft(title="Refunds", body="Refunds take *three* days.", tags=("billing", "money"))
    updated = await update_article(store, article_id, draft, render_markdown(draft.body), now=later, created_by=None)
    assert updated.version == 2
    assert updated.created_at == NOW
    assert updated.updated_at == later
    assert updated.html == "<p>Refunds take <em>three</em> days.</p>\n"
    versions = await article_versions_of(store, article_id)
    assert [(v.version, v.body) for v in versions] == [
        (1, "Refunds take **five** days."),
        (2, "Refunds take *three* days."),
    ]
    assert versions[0].tags == ("billing",)
    assert (await get_article(store, article_id)).tags == ("billing", "money")


async def test_search_finds_words_in_title_tags_and_body_and_ranks_the_title_first(store: Store) -> None:
    await write(store, "Shipping times", "Parcels leave the warehouse daily. Ask about invoices here.")
    await write(store, "Invoices explained", "Every order has one.")
    await write(store, "Courier partners", "We use two couriers.", tags=("invoices",))
    await write(store, "Unrelated", "Nothing to see.")
    found = await titles(store, "invoices")
    assert found[0] == "Invoices explained"
    assert set(found) == {"Shipping times", "Invoices explained", "Courier partners"}


async def test_every_word_must_match_and_a_word_matches_as_a_prefix(store: Store) -> None:
    await write(store, "Password reset", "Send the customer the reset link.")
    await write(store, "Password policy", "Twelve characters at least.")
    assert await titles(store, "pass reset") == ["Password reset"]
    assert set(await titles(store, "passw")) == {"Password reset", "Password policy"}


async def test_a_mistyped_word_still_finds_the_article(store: Store) -> None:
    await write(store, "Password reset", "Send the customer the reset link.")
    await write(store, "Opening hours", "We are open from nine.")
    assert await titles(store, "pasword") == ["Password reset"]
    assert await titles(store, "xyzzyq") == []


async def test_search_operators_in_the_query_are_plain_words(store: Store) -> None:
    await write(store, "Quotes and stars", 'Say "hello" * or NOT.')
    for hostile in ('"', "*", "NOT", "a:*", "' | ", "(", "hello OR", "NEAR(a b)", "-", "title:x", "\x00"):
        items, _ = await list_articles(store, q=hostile, limit=5)
        assert isinstance(items, list)
    assert await titles(store, '"hello" OR (') == ["Quotes and stars"]


async def test_readers_see_articles_of_their_queues_and_those_for_everyone(store: Store) -> None:
    support = await write(store, "Support macro", "reply politely", queues=("support",))
    await write(store, "Sales macro", "reply politely", queues=("sales",))
    await write(store, "Everyone macro", "reply politely")
    assert set(await titles(store, "reply", ("support",))) == {"Support macro", "Everyone macro"}
    assert set(await titles(store, "reply")) == {"Support macro", "Sales macro", "Everyone macro"}
    newest, _ = await list_articles(store, reader_queues=("sales",))
    assert [a.title for a in newest] == ["Everyone macro", "Sales macro"]
    assert (await get_article(store, support, ("support",))).title == "Support macro"
    with pytest.raises(ArticleNotFound):
        await get_article(store, support, ("sales",))


async def test_pages_follow_on_without_repeats_for_lists_and_searches(store: Store) -> None:
    for n in range(7):
        await write(store, f"Guide {n}", "the same words in every guide")
    for q in (None, "guide"):
        seen: list[int] = []
        cursor = None
        while True:
            items, cursor = await list_articles(store, q=q, after=cursor, limit=3)
            seen.extend(a.id for a in items)
            if cursor is None:
                break
        assert len(seen) == 7
        assert len(set(seen)) == 7
    with pytest.raises(BadCursor):
        await list_articles(store, after="not-a-cursor")


async def test_delete_removes_the_article_its_history_and_its_search_entry(store: Store) -> None:
    article_id = await write(store, "Temporary", "soon gone")
    await delete_article(store, article_id)
    assert await titles(store, "temporary") == []
    assert await count_articles(store) == 0
    with pytest.raises(ArticleNotFound):
        await article_versions_of(store, article_id)
    with pytest.raises(ArticleNotFound):
        await delete_article(store, article_id)


async def test_an_edit_replaces_the_words_the_search_finds(store: Store) -> None:
    article_id = await write(store, "Returns", "within thirty days")
    draft = ArticleDraft(title="Returns", body="within fourteen days")
    await update_article(store, article_id, draft, render_markdown(draft.body), now=NOW, created_by=None)
    assert await titles(store, "thirty") == []
    assert await titles(store, "fourteen") == ["Returns"]


async def test_an_import_saves_every_article_searchable_in_one_go(store: Store) -> None:
    drafts = [
        ArticleDraft(title=f"Imported {n}", body=f"bulk body {n}", queues=("sales",) if n % 2 else ()) for n in range(4)
    ]
    ids = await import_articles(store, [(d, render_markdown(d.body)) for d in drafts], now=NOW)
    assert len(ids) == 4
    assert await count_articles(store) == 4
    assert set(await titles(store, "bulk", ("support",))) == {"Imported 0", "Imported 2"}
    assert [v.version for v in await article_versions_of(store, ids[1])] == [1]


async def test_a_word_in_most_articles_lists_title_matches_first_then_the_newest(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(articles_store, "_BROAD", 2)  # "most articles" at this size
    await write(store, "Common questions", "answers")
    await write(store, "Older", "a common word", queues=("sales",))
    await write(store, "Newer", "a common word")
    await write(store, "Newest", "a common word")
    assert await titles(store, "common") == ["Common questions", "Newest", "Newer", "Older"]
    assert await titles(store, "common", ("support",)) == ["Common questions", "Newest", "Newer"]
    first, cursor = await list_articles(store, q="common", limit=2)
    second, end = await list_articles(store, q="common", after=cursor, limit=2)
    assert [a.title for a in first + second] == ["Common questions", "Newest", "Newer", "Older"]
    assert end is None
