"""Knowledge articles: what an article is, how its Markdown becomes safe HTML, how a search is read.

Pure: no I/O. The body is Markdown written by an admin and read by agents inside the console, so
it is rendered with raw HTML switched off (markdown-it-py, CommonMark plus tables and
strikethrough) and the result is sanitised again with an allow-list (nh3, the Ammonia sanitiser):
no script, no style, no event handler, no ``javascript:`` link, links open with
``rel="noopener noreferrer nofollow"``. See docs/decisions/0031-article-search-and-sanitising.md.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

__all__ = [
    "MAX_BODY",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_TITLE",
    "Article",
    "ArticleDraft",
    "ArticleNotFound",
    "ArticleVersion",
    "edit_distance",
    "normalise_tags",
    "plain_text",
    "render_markdown",
    "search_words",
    "typo_limit",
]

MAX_TITLE = 300
MAX_BODY = 100_000
MAX_TAGS = 20
MAX_TAG_LENGTH = 64
MAX_SEARCH_WORDS = 8
MAX_WORD_LENGTH = 64

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "kbd", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
_WORD = re.compile(r"\w+", re.UNICODE)


class ArticleNotFound(LookupError):
    """No article by that id (or none the reader may see)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ArticleDraft:
    """What an admin writes: checked by the API (lengths, types) and the use case (known queues)."""

    title: str
    body: str
    tags: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ArticleVersion:
    """One saved version: never changed once written."""

    article_id: int
    version: int
    title: str
    body: str
    html: str
    tags: tuple[str, ...]
    queues: tuple[str, ...]
    created_by: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Article:
    """An article as it is now: its current version and when it was first written."""

    id: int
    version: int
    title: str
    body: str
    html: str
    tags: tuple[str, ...]
    queues: tuple[str, ...]
    created_by: int | None
    created_at: datetime
    updated_at: datetime


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


def render_markdown(body: str) -> str:
    """The body as HTML that is safe to put into the console's page (raw HTML in the Markdown is
    shown as text, and whatever the renderer makes is sanitised against an allow-list)."""
    rendered = _markdown().render(body)
    return nh3.clean(
        rendered,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def plain_text(html: str) -> str:
    """The words of rendered HTML, for the search index and snippets (tags dropped, entities read)."""
    return " ".join(html_lib.unescape(nh3.clean(html, tags=set())).split())


def search_words(query: str) -> tuple[str, ...]:
    """The words of a search box's text, lower-cased, at most eight, each at most 64 characters.

    Only word characters survive, so no engine's query syntax (FTS5 operators, tsquery operators,
    quotes) can be smuggled in: each store quotes the words it gets."""
    words: list[str] = []
    for word in _WORD.findall(query.lower()):
        word = word[:MAX_WORD_LENGTH]
        if word not in words:
            words.append(word)
        if len(words) == MAX_SEARCH_WORDS:
            break
    return tuple(words)


def normalise_tags(tags: Sequence[str]) -> tuple[str, ...]:
    """Tags trimmed, lower-cased and without repeats, in the order written."""
    seen: list[str] = []
    for tag in tags:
        cleaned = " ".join(tag.split()).lower()
        if cleaned and cleaned not in seen:
            seen.append(cleaned)
    return tuple(seen)


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance between ``a`` and ``b``, or ``limit + 1`` as soon as it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def typo_limit(word: str) -> int:
    """How many typing slips a word may carry and still be recognised: none under four letters."""
    if len(word) < 4:
        return 0
    return 1 if len(word) < 8 else 2
