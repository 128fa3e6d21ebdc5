"""Knowledge articles, their immutable versions, and ranked full-text search on both engines.

``articles`` holds the current version of each article (copied, so lists and searches read one
row); ``article_versions`` every saved version; ``article_queues`` which queues' agents may read
it (none: everyone). Each save is one transaction: the version row, the current copy, the queue
rows and the search index move together or not at all.

Search is one interface over two engines (a contract test runs it on both):

* SQLite: the FTS5 table ``article_search`` (rowid = article id; its ``audience`` column holds who
  may read it, so visibility is part of the match and a search reads the index alone), words matched
  as prefixes (``"pass"*``), ranked by bm25 with the title weighing most, then the tags, then the
  body. A search whose rarest word is in more than 500 articles is not ranked by bm25 (that costs a
  score per matching article and tells little): title matches first, then the rest, newest first. When a
  search finds nothing, each word is corrected against the index's vocabulary
  (``article_search_terms``, edit distance 1, or 2 for long words) and the search runs again.
* PostgreSQL: ``articles.search_vector`` (title weight A, tags B, body words without positions; the ``simple``
  configuration, so no language's stemming is imposed) under a GIN index, words matched as
  prefixes (``'pass':*``), ranked by ``ts_rank``; more than 500 matches are listed as on SQLite.
  When that finds nothing and the pg_trgm extension is installed, titles are matched by trigram
  word similarity instead (through a trigram index).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import ARRAY

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

_TITLE_WORD = re.compile(r"\w+", re.UNICODE)
_TYPO_CANDIDATES = 3  # corrections tried per mistyped word


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


def _words_of(value: str) -> Any:
    return func.to_tsvector(literal_column("'simple'::regconfig"), bindparam(None, value, type_=Text))


_TITLE_MARK = "~"  # PostgreSQL: the title's words once more, marked, so "in the title" is an indexed match
_AUDIENCE_MARK = "@"  # PostgreSQL: who may read it (as SQLite's audience column), so visibility is in the match


def _title_marks(title: str) -> list[str]:
    return sorted({f"{_TITLE_MARK}{word}" for word in _TITLE_WORD.findall(title.lower())})


def _vector(draft: ArticleDraft, html: str) -> Any:
    """Title (weight A) and tags (B) with positions; the body's words without positions (``strip``: they
    rank as weight D), which keeps the vector small enough to stay in the row, uncompressed; and the
    title's words marked (``~word``), which a weight-restricted query cannot replace once the body is stripped;
    and who may read it (``@`` and SQLite's audience tokens), so a search needs no visibility join."""
    lexemes = _title_marks(draft.title) + [f"{_AUDIENCE_MARK}{token}" for token in _audience_tokens(draft.queues)]
    marks = func.array_to_tsvector(bindparam(None, lexemes, type_=ARRAY(Text)))
    return (
        func.setweight(_words_of(draft.title), literal_column("'A'"))
        .op("||")(func.setweight(_words_of(" ".join(draft.tags)), literal_column("'B'")))
        .op("||")(func.strip(_words_of(plain_text(html))))
        .op("||")(marks)
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
        text(
            "INSERT INTO article_search (rowid, title, tags, body, audience) "
            "VALUES (:id, :title, :tags, :body, :audience)"
        ),
        {
            "id": article_id,
            "title": draft.title,
            "tags": " ".join(draft.tags),
            "body": plain_text(html),
            "audience": " ".join(_audience_tokens(draft.queues)),
        },
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


async def _insert_new(
    connection: AsyncConnection, draft: ArticleDraft, html: str, *, now: datetime, created_by: int | None
) -> int:
    """Write a new article as version 1 (its row, its version, its queues, its search entry); its id."""
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
    if draft.queues:  # a new article has no queues to replace
        await connection.execute(
            insert(article_queues), [{"article_id": article_id, "queue_id": q} for q in draft.queues]
        )
    await _index(connection, article_id, draft, html)
    return article_id


async def create_article(
    store: Store, draft: ArticleDraft, html: str, *, now: datetime, created_by: int | None = None
) -> Article:
    """Version 1 of a new article (``html`` is the body already rendered and sanitised)."""
    async with store.write() as connection:
        article_id = await _insert_new(connection, draft, html, now=now, created_by=created_by)
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
            ids.append(await _insert_new(connection, draft, html, now=now, created_by=created_by))
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

_EVERYONE = "qall"
_BROAD = 500  # a search matching more articles than this is not ranked by score (see _broad, _pg_broad)


def _audience_tokens(queue_ids: Sequence[str]) -> list[str]:
    """What the FTS5 ``audience`` column holds: one token per queue (hex, so any queue id is one word), or
    the everyone token."""
    return [f"q{queue_id.encode().hex()}" for queue_id in queue_ids] or [_EVERYONE]


def _fts_words(groups: Sequence[Sequence[str]]) -> str:
    """An FTS5 expression: every group must match, any word of a group may (the words are \\w+ only,
    and each is quoted, so no FTS5 operator can come from the searcher). The first word of a group
    is matched as a prefix, corrections exactly."""
    parts = []
    for group in groups:
        terms = [f'"{group[0]}"*', *(f'"{word}"' for word in group[1:])]
        parts.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
    return " AND ".join(parts)


def _fts_match(words: str, reader_queues: Sequence[str] | None, *, title_only: bool = False) -> str:
    expression = f"title : ({words})" if title_only else f"({words})"
    if reader_queues is None:
        return expression
    audience = " OR ".join(_audience_tokens([]) + [f"q{q.encode().hex()}" for q in reader_queues])
    return f"audience : ({audience}) AND {expression}"


async def _fts_ids(connection: AsyncConnection, match: str, *, ranked: bool, offset: int, limit: int) -> list[int]:
    """Article ids from the FTS5 index alone: by bm25, or newest first (rowid order needs no sort)."""
    order = "bm25(article_search, 10.0, 4.0, 1.0, 0.0), rowid DESC" if ranked else "rowid DESC"
    rows = await connection.execute(
        text(f"SELECT rowid FROM article_search WHERE article_search MATCH :match ORDER BY {order} LIMIT :n OFFSET :o"),  # noqa: S608 - fixed text
        {"match": match, "n": limit, "o": offset},
    )
    return [int(row[0]) for row in rows]


async def _documents_with(connection: AsyncConnection, word: str) -> int:
    """How many articles hold a word starting with ``word`` (an upper bound: summed over the words it starts)."""
    found = await connection.execute(
        text("SELECT coalesce(sum(doc), 0) FROM article_search_terms WHERE term >= :low AND term < :high"),
        {"low": word, "high": word + "\U0010ffff"},
    )
    return int(found.scalar_one())


async def _broad(connection: AsyncConnection, groups: Sequence[Sequence[str]]) -> bool:
    """Whether even the rarest group of words (any of which may match) is in so many articles that bm25 over
    all of them costs more than its ranking is worth (a word in most articles tells little); such a search
    lists title matches first, newest first."""
    counts = [sum([await _documents_with(connection, word) for word in group]) for group in groups]
    return min(counts) > _BROAD


async def _by_ids(connection: AsyncConnection, ids: Sequence[int]) -> list[RowMapping]:
    if not ids:
        return []
    rows = (await connection.execute(_select().where(articles.c.id.in_(ids)))).mappings().all()
    by_id = {int(row["id"]): row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


async def _fts_search(
    connection: AsyncConnection, words: str, reader_queues: Sequence[str] | None, broad: bool, offset: int, limit: int
) -> list[int]:
    match = _fts_match(words, reader_queues)
    if not broad:
        return await _fts_ids(connection, match, ranked=True, offset=offset, limit=limit)
    titled = await _fts_ids(
        connection, _fts_match(words, reader_queues, title_only=True), ranked=False, offset=0, limit=offset + limit
    )
    rest = await _fts_ids(connection, match, ranked=False, offset=0, limit=offset + limit + len(titled))
    seen = set(titled)
    return [*titled, *(i for i in rest if i not in seen)][offset : offset + limit]


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
    exact = [[word] for word in words]
    broad = await _broad(connection, exact)
    ids = await _fts_search(connection, _fts_words(exact), reader_queues, broad, offset, limit)
    if ids or offset:
        return await _by_ids(connection, ids)
    groups = [[word, *await _corrections(connection, word)] for word in words]
    if all(len(group) == 1 for group in groups):
        return []
    broad = await _broad(connection, groups)
    return await _by_ids(connection, await _fts_search(connection, _fts_words(groups), reader_queues, broad, 0, limit))


# PostgreSQL -----------------------------------------------------------------------------------


def _tsquery(words: Sequence[str], reader_queues: Sequence[str] | None = None) -> Any:
    """The search as a tsquery, written out rather than parsed (``to_tsquery`` would strip the ``~`` and ``@``
    marks): each word is \\w+ only, lower-case, split at underscores as PostgreSQL's parser splits it, quoted as
    a lexeme, ``:*`` for a prefix; the audience lexemes are hex or fixed text."""
    parts = [part for word in words for part in word.split("_") if part]
    source = " & ".join(f"'{part}':*" for part in parts)
    if reader_queues is not None:
        tokens = dict.fromkeys(_audience_tokens([]) + _audience_tokens(reader_queues))
        source += " & (" + " | ".join(f"'{_AUDIENCE_MARK}{token}'" for token in tokens) + ")"
    return cast(bindparam(None, source, type_=Text), TSQUERY)


async def _matching(
    connection: AsyncConnection,
    tsquery: Any,
    visible: ColumnElement[bool] | None,
    *,
    order: Any,
    offset: int,
    limit: int,
) -> Sequence[RowMapping]:
    query = select(*_COLUMNS).where(articles.c.search_vector.op("@@")(tsquery))
    if visible is not None:
        query = query.where(visible)
    return (await connection.execute(query.order_by(*order).offset(offset).limit(limit))).mappings().all()


async def _pg_broad(connection: AsyncConnection, tsquery: Any) -> bool:
    """Whether more than _BROAD articles match (counted no further): ranking them all costs more than it tells."""
    capped: Select[Any] = (
        select(literal_column("1")).where(articles.c.search_vector.op("@@")(tsquery)).limit(_BROAD + 1)
    )
    async with _through_gin(connection):
        count = (await connection.execute(select(func.count()).select_from(capped.subquery()))).scalar_one()
    return int(count) > _BROAD


@asynccontextmanager
async def _through_gin(connection: AsyncConnection) -> AsyncIterator[None]:
    """The next queries find their rows through the GIN index (a bitmap scan). With a LIMIT the planner may
    bet on meeting matches early in a scan of the table or of the primary key, which for a rare word reads
    (and decompresses) every row. Lasts for the queries inside only; the others plan freely."""
    await connection.execute(_PLANNER_SETTINGS, {"scans": "off"})
    try:
        yield
    finally:
        await connection.execute(_PLANNER_SETTINGS, {"scans": "on"})


# SET LOCAL as a function, both settings in one round trip
_PLANNER_SETTINGS = text(
    "SELECT set_config('enable_seqscan', :scans, true), set_config('enable_indexscan', :scans, true)"
)


async def _search_postgresql(
    connection: AsyncConnection,
    words: Sequence[str],
    reader_queues: Sequence[str] | None,
    offset: int,
    limit: int,
) -> Sequence[RowMapping]:
    tsquery = _tsquery(words, reader_queues)  # visibility included: no join while matching or ranking
    newest = (articles.c.id.desc(),)
    if await _pg_broad(connection, tsquery):
        in_title = _tsquery([f"{_TITLE_MARK}{word}" for word in words], reader_queues)
        async with _through_gin(connection):  # few titles match: walking the primary key backwards would read many rows
            titled = await _matching(connection, in_title, None, order=newest, offset=0, limit=offset + limit)
        rest = await _matching(connection, tsquery, None, order=newest, offset=0, limit=offset + limit + len(titled))
        seen = {row["id"] for row in titled}
        return [*titled, *(row for row in rest if row["id"] not in seen)][offset : offset + limit]
    rank = func.ts_rank(articles.c.search_vector, tsquery)
    rows = await _matching(connection, tsquery, None, order=(rank.desc(), *newest), offset=offset, limit=limit)
    if rows or offset or not await _has_trigrams(connection):
        return rows
    phrase = bindparam("phrase", " ".join(words), type_=Text)
    similarity = func.word_similarity(phrase, articles.c.title)
    # '<%': word similarity above pg_trgm.word_similarity_threshold (0.6), answered by ix_articles_title_trgm
    fuzzy = select(*_COLUMNS).where(phrase.op("<%")(articles.c.title))
    visible = _visible(reader_queues)
    if visible is not None:
        fuzzy = fuzzy.where(visible)
    fuzzy = fuzzy.order_by(similarity.desc(), articles.c.id.desc()).limit(limit)
    return (await connection.execute(fuzzy)).mappings().all()


async def _has_trigrams(connection: AsyncConnection) -> bool:
    found = await connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))
    return found.first() is not None
