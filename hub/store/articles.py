"""Knowledge articles, their immutable versions, and ranked full-text search on both engines.

``articles`` holds the current version of each article (copied, so lists and searches read one
row); ``article_versions`` every saved version; ``article_queues`` which queues' agents may read
it (none: everyone). Each save is one transaction: the version row, the current copy, the queue
rows and the search index move together or not at all.

Search is one interface over two engines (a contract test runs it on both):

* SQLite: the FTS5 table ``article_search`` (rowid = article id), words matched as prefixes
  (``"pass"*``), ranked by bm25 with the title weighing most, then the tags, then the body. When
  that finds nothing, each word is corrected against the index's vocabulary
  (``article_search_terms``, edit distance 1, or 2 for long words) and the search runs again.
* PostgreSQL: ``articles.search_vector`` (title weight A, tags B, body C; the ``simple``
  configuration, so no language's stemming is imposed) under a GIN index, words matched as
  prefixes (``'pass':*``), ranked by ``ts_rank``. When that finds nothing and the pg_trgm extension
  is installed, titles and tags are matched by trigram word similarity instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    bindparam,
    cast,
    column,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.articles import (
    Article,
    ArticleDraft,
    ArticleNotFound,
    ArticleVersion,
    edit_distance,
    plain_text,
    search_words,
    typo_limit,
)
from hub.store._crud import decode_cursor, encode_cursor
from hub.store._db import Store
from hub.store.tables import article_queues, article_versions, articles, queues

__all__ = [
    "article_versions_of",
    "count_articles",
    "create_article",
    "delete_article",
    "get_article",
    "import_articles",
    "list_articles",
    "unknown_queues",
    "update_article",
]

_TYPO_CANDIDATES = 3  # corrections tried per mistyped word
_TRIGRAM_THRESHOLD = 0.4  # PostgreSQL: how alike a title must be to a mistyped search


# ------------------------------------------------------------------ rows


def _article(row: Mapping[Any, Any]) -> Article:
    return Article(
        id=int(row["id"]),
        version=int(row["current_version"]),
        title=row["title"],
        body=row["body"],
        html=row["html"],
        tags=tuple(row["tags"] or ()),
        queues=tuple(row["queues"] or ()),
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _version(row: Mapping[Any, Any]) -> ArticleVersion:
    return ArticleVersion(
        article_id=int(row["article_id"]),
        version=int(row["version"]),
        title=row["title"],
        body=row["body"],
        html=row["html"],
        tags=tuple(row["tags"] or ()),
        queues=tuple(row["queues"] or ()),
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


_COLUMNS = [c for c in articles.c if c.name != "search_vector"]


def _select() -> Select[Any]:
    return select(*_COLUMNS)


def _visible(reader_queues: Sequence[str] | None) -> ColumnElement[bool] | None:
    """Articles for everyone, or of one of the reader's queues; None (no filter) for a reader who sees all."""
    if reader_queues is None:
        return None
    return or_(
        articles.c.everyone.is_(True),
        exists().where(article_queues.c.article_id == articles.c.id, article_queues.c.queue_id.in_(reader_queues)),
    )


# ------------------------------------------------------------------ search index


def _weighted(value: Any, weight: str) -> Any:
    vector = func.to_tsvector(literal_column("'simple'::regconfig"), bindparam(None, value, type_=Text))
    return func.setweight(vector, literal_column(f"'{weight}'"))


def _vector(draft: ArticleDraft, html: str) -> Any:
    return (
        _weighted(draft.title, "A")
        .op("||")(_weighted(" ".join(draft.tags), "B"))
        .op("||")(_weighted(plain_text(html), "C"))
    )


async def _index(connection: AsyncConnection, article_id: int, draft: ArticleDraft, html: str) -> None:
    """Put the article's current words into the engine's search index (replacing what was there)."""
    if connection.dialect.name == "postgresql":
        await connection.execute(
            update(articles).where(articles.c.id == article_id).values(search_vector=_vector(draft, html))
        )
        return
    await connection.execute(text("DELETE FROM article_search WHERE rowid = :id"), {"id": article_id})
    await connection.execute(
        text("INSERT INTO article_search (rowid, title, tags, body) VALUES (:id, :title, :tags, :body)"),
        {"id": article_id, "title": draft.title, "tags": " ".join(draft.tags), "body": plain_text(html)},
    )


async def _unindex(connection: AsyncConnection, article_id: int) -> None:
    if connection.dialect.name == "sqlite":
        await connection.execute(text("DELETE FROM article_search WHERE rowid = :id"), {"id": article_id})


# ------------------------------------------------------------------ writes


def _version_values(
    article_id: int, version: int, draft: ArticleDraft, html: str, created_by: int | None, now: datetime
) -> dict[str, Any]:
    return {
        "article_id": article_id,
        "version": version,
        "title": draft.title,
        "body": draft.body,
        "html": html,
        "tags": list(draft.tags),
        "queues": list(draft.queues),
        "created_by": created_by,
        "created_at": now,
    }


def _current_values(draft: ArticleDraft, html: str) -> dict[str, Any]:
    return {
        "title": draft.title,
        "body": draft.body,
        "html": html,
        "tags": list(draft.tags),
        "queues": list(draft.queues),
        "everyone": not draft.queues,
    }


async def _set_queues(connection: AsyncConnection, article_id: int, queue_ids: Sequence[str]) -> None:
    await connection.execute(delete(article_queues).where(article_queues.c.article_id == article_id))
    if queue_ids:
        await connection.execute(insert(article_queues), [{"article_id": article_id, "queue_id": q} for q in queue_ids])


async def _get(connection: AsyncConnection, article_id: int, reader_queues: Sequence[str] | None) -> Article | None:
    query = _select().where(articles.c.id == article_id)
    visible = _visible(reader_queues)
    if visible is not None:
        query = query.where(visible)
    row = (await connection.execute(query)).mappings().first()
    return _article(row) if row else None


async def create_article(
    store: Store, draft: ArticleDraft, html: str, *, now: datetime, created_by: int | None = None
) -> Article:
    """Version 1 of a new article (``html`` is the body already rendered and sanitised)."""
    async with store.write() as connection:
        article_id = int(
            (
                await connection.execute(
                    insert(articles)
                    .values(
                        current_version=1,
                        created_by=created_by,
                        created_at=now,
                        updated_at=now,
                        **_current_values(draft, html),
                    )
                    .returning(articles.c.id)
                )
            ).scalar_one()
        )
        await connection.execute(
            insert(article_versions).values(**_version_values(article_id, 1, draft, html, created_by, now))
        )
        await _set_queues(connection, article_id, draft.queues)
        await _index(connection, article_id, draft, html)
        created = await _get(connection, article_id, None)
    assert created is not None  # written in this transaction
    return created


async def import_articles(
    store: Store,
    drafts: Sequence[tuple[ArticleDraft, str]],
    *,
    now: datetime,
    created_by: int | None = None,
) -> list[int]:
    """Many new articles (each a draft and its rendered HTML), version 1 each, in one transaction:
    all or none. Returns their ids in order. For importing a knowledge base (and the benchmark)."""
    ids: list[int] = []
    async with store.write() as connection:
        for draft, html in drafts:
            article_id = int(
                (
                    await connection.execute(
                        insert(articles)
                        .values(
                            current_version=1,
                            created_by=created_by,
                            created_at=now,
                            updated_at=now,
                            **_current_values(draft, html),
                        )
                        .returning(articles.c.id)
                    )
                ).scalar_one()
            )
            await connection.execute(
                insert(article_versions).values(**_version_values(article_id, 1, draft, html, created_by, now))
            )
            if draft.queues:
                await connection.execute(
                    insert(article_queues), [{"article_id": article_id, "queue_id": q} for q in draft.queues]
                )
            await _index(connection, article_id, draft, html)
            ids.append(article_id)
    return ids


async def update_article(
    store: Store, article_id: int, draft: ArticleDraft, html: str, *, now: datetime, created_by: int | None = None
) -> Article:
    """A new current version; ArticleNotFound when there is no such article."""
    async with store.write() as connection:
        query = select(articles.c.current_version).where(articles.c.id == article_id)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        current = (await connection.execute(query)).scalar_one_or_none()
        if current is None:
            raise ArticleNotFound(article_id)
        version = int(current) + 1
        await connection.execute(
            insert(article_versions).values(**_version_values(article_id, version, draft, html, created_by, now))
        )
        await connection.execute(
            update(articles)
            .where(articles.c.id == article_id)
            .values(current_version=version, updated_at=now, **_current_values(draft, html))
        )
        await _set_queues(connection, article_id, draft.queues)
        await _index(connection, article_id, draft, html)
        updated = await _get(connection, article_id, None)
    assert updated is not None
    return updated


async def delete_article(store: Store, article_id: int) -> None:
    """The article, its history and its index entry; ArticleNotFound when there is none."""
    async with store.write() as connection:
        await connection.execute(delete(article_queues).where(article_queues.c.article_id == article_id))
        await connection.execute(delete(article_versions).where(article_versions.c.article_id == article_id))
        result = await connection.execute(delete(articles).where(articles.c.id == article_id))
        if not result.rowcount:
            raise ArticleNotFound(article_id)
        await _unindex(connection, article_id)


# ------------------------------------------------------------------ reads


async def get_article(store: Store, article_id: int, reader_queues: Sequence[str] | None = None) -> Article:
    """The article if the reader may see it (``reader_queues`` None: every article); ArticleNotFound otherwise."""
    async with store.read() as connection:
        found = await _get(connection, article_id, reader_queues)
    if found is None:
        raise ArticleNotFound(article_id)
    return found


async def article_versions_of(store: Store, article_id: int) -> list[ArticleVersion]:
    """Every version, oldest first (ArticleNotFound when the article does not exist)."""
    async with store.read() as connection:
        rows = (
            (
                await connection.execute(
                    select(article_versions)
                    .where(article_versions.c.article_id == article_id)
                    .order_by(article_versions.c.version)
                )
            )
            .mappings()
            .all()
        )
    if not rows:
        raise ArticleNotFound(article_id)
    return [_version(row) for row in rows]


async def count_articles(store: Store) -> int:
    async with store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(articles))).scalar_one())


async def unknown_queues(store: Store, queue_ids: Sequence[str]) -> list[str]:
    """Those of ``queue_ids`` that name no configured queue, in the order given."""
    if not queue_ids:
        return []
    async with store.read() as connection:
        known = set((await connection.execute(select(queues.c.id).where(queues.c.id.in_(queue_ids)))).scalars())
    return [q for q in queue_ids if q not in known]


async def list_articles(
    store: Store,
    *,
    q: str | None = None,
    reader_queues: Sequence[str] | None = None,
    after: str | None = None,
    limit: int = 20,
) -> tuple[list[Article], str | None]:
    """The articles the reader may see: newest first, or, with ``q``, the best matches first.

    Returns a page and the cursor of the next one (None at the end); BadCursor for a cursor
    this function did not hand out."""
    words = search_words(q or "")
    async with store.read() as connection:
        if not words:
            return await _newest(connection, reader_queues, after, limit)
        (offset,) = decode_cursor(after, int) if after else (0,)
        if offset < 0:
            offset = 0
        if connection.dialect.name == "postgresql":
            rows = await _search_postgresql(connection, words, reader_queues, offset, limit + 1)
        else:
            rows = await _search_sqlite(connection, words, reader_queues, offset, limit + 1)
    items = [_article(row) for row in rows[:limit]]
    return items, encode_cursor(offset + limit) if len(rows) > limit else None


async def _newest(
    connection: AsyncConnection, reader_queues: Sequence[str] | None, after: str | None, limit: int
) -> tuple[list[Article], str | None]:
    query = _select()
    visible = _visible(reader_queues)
    if visible is not None:
        query = query.where(visible)
    if after:
        (last_id,) = decode_cursor(after, int)
        query = query.where(articles.c.id < last_id)
    rows = (await connection.execute(query.order_by(articles.c.id.desc()).limit(limit + 1))).mappings().all()
    items = [_article(row) for row in rows[:limit]]
    return items, encode_cursor(items[-1].id) if len(rows) > limit and items else None


# SQLite ---------------------------------------------------------------------------------------

_FTS_TABLE = table("article_search", column("rowid"))
_FTS: ColumnElement[Any] = literal_column("article_search")
_BM25 = func.bm25(_FTS, 10.0, 4.0, 1.0)  # title, tags, body; lower is better


def _fts_match(groups: Sequence[Sequence[str]]) -> str:
    """An FTS5 query: every group must match, any word of a group may (the words are \\w+ only,
    and each is quoted, so no FTS5 operator can come from the searcher). The first word of a group
    is matched as a prefix, corrections exactly."""
    parts = []
    for group in groups:
        terms = [f'"{group[0]}"*', *(f'"{word}"' for word in group[1:])]
        parts.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
    return " AND ".join(parts)


async def _fts_rows(
    connection: AsyncConnection,
    match: str,
    reader_queues: Sequence[str] | None,
    offset: int,
    limit: int,
) -> Sequence[RowMapping]:
    query = (
        select(*_COLUMNS)
        .select_from(articles.join(_FTS_TABLE, _FTS_TABLE.c.rowid == articles.c.id))
        .where(_FTS.op("MATCH")(bindparam("match", match)))
    )
    visible = _visible(reader_queues)
    if visible is not None:
        query = query.where(visible)
    query = query.order_by(_BM25, articles.c.id.desc()).offset(offset).limit(limit)
    return (await connection.execute(query)).mappings().all()


async def _corrections(connection: AsyncConnection, word: str) -> list[str]:
    """Words in the index within the word's typo limit, nearest (then commonest) first."""
    limit = typo_limit(word)
    if not limit:
        return []
    rows = await connection.execute(
        text(
            "SELECT term, doc FROM article_search_terms WHERE term >= :low AND term < :high "
            "AND length(term) BETWEEN :shortest AND :longest"
        ),
        {"low": word[0], "high": word[0] + "\U0010ffff", "shortest": len(word) - limit, "longest": len(word) + limit},
    )
    scored = []
    for term, docs in rows:
        distance = edit_distance(word, term, limit)
        if 0 < distance <= limit:
            scored.append((distance, -int(docs), term))
    return [term for _, _, term in sorted(scored)[:_TYPO_CANDIDATES]]


async def _search_sqlite(
    connection: AsyncConnection,
    words: Sequence[str],
    reader_queues: Sequence[str] | None,
    offset: int,
    limit: int,
) -> Sequence[RowMapping]:
    rows = await _fts_rows(connection, _fts_match([[w] for w in words]), reader_queues, offset, limit)
    if rows or offset:
        return rows
    groups = [[word, *await _corrections(connection, word)] for word in words]
    if all(len(group) == 1 for group in groups):
        return rows
    return await _fts_rows(connection, _fts_match(groups), reader_queues, offset, limit)


# PostgreSQL -----------------------------------------------------------------------------------


def _tsquery(words: Sequence[str]) -> Any:
    # each word is \w+ only and quoted as a lexeme; ':*' matches it as a prefix
    source = " & ".join(f"'{word}':*" for word in words)
    return func.to_tsquery(literal_column("'simple'::regconfig"), bindparam("tsquery", source, type_=Text))


async def _search_postgresql(
    connection: AsyncConnection,
    words: Sequence[str],
    reader_queues: Sequence[str] | None,
    offset: int,
    limit: int,
) -> Sequence[RowMapping]:
    tsquery = _tsquery(words)
    visible = _visible(reader_queues)
    query = select(*_COLUMNS).where(articles.c.search_vector.op("@@")(tsquery))
    if visible is not None:
        query = query.where(visible)
    rank = func.ts_rank(articles.c.search_vector, tsquery)
    query = query.order_by(rank.desc(), articles.c.id.desc()).offset(offset).limit(limit)
    rows = (await connection.execute(query)).mappings().all()
    if rows or offset or not await _has_trigrams(connection):
        return rows
    phrase = " ".join(words)
    haystack = articles.c.title.concat(" ").concat(cast(articles.c.tags, Text))
    similarity = func.word_similarity(bindparam("phrase", phrase, type_=Text), haystack)
    fuzzy = select(*_COLUMNS).where(similarity >= _TRIGRAM_THRESHOLD)
    if visible is not None:
        fuzzy = fuzzy.where(visible)
    fuzzy = fuzzy.order_by(similarity.desc(), articles.c.id.desc()).limit(limit)
    return (await connection.execute(fuzzy)).mappings().all()


async def _has_trigrams(connection: AsyncConnection) -> bool:
    found = await connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))
    return found.first() is not None
