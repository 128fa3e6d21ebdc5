"""``[[bots]]`` in the configuration: who answers a queue's new conversations first, validated strictly.

A bot is a webhook (the hub POSTs each customer message, signed with the Standard Webhooks scheme), a
Rasa assistant (its REST channel), or a rules flow (a TOML file, see ``RulesFlow``). Every problem
raises ``ConfigError`` naming the key, so start-up stops with one clear line. Stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.errors import WHSEC_RECIPE, ConfigError

__all__ = [
    "BOT_KINDS",
    "DEFAULT_HANDOFF_KEYWORDS",
    "BotSettings",
    "FlowChoice",
    "FlowField",
    "FlowKeyword",
    "RulesFlow",
    "bot_for_queue",
    "parse_bots",
]

BOT_KINDS = ("webhook", "rasa", "rules")
#: what a customer types to ask for a person, when the bot's configuration says nothing (any language)
DEFAULT_HANDOFF_KEYWORDS: Mapping[str, tuple[str, ...]] = {"*": ("agent", "human", "person", "operator")}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LANGUAGE = re.compile(r"^(\*|[a-z]{2,3}(-[A-Za-z0-9]{2,8})?)$")
_INVALID = "That does not look right; please try again."
_FALLBACK = "Sorry, I did not understand. Please choose one of the options."
_KEYS = {
    "id",
    "kind",
    "queues",
    "url",
    "secret",
    "token",
    "handoff_after",
    "handoff_keywords",
    "handoff_payload",
    "flow",
    "timeout",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowChoice:
    """One entry of a rules bot's menu: it routes to ``queue`` (hand-off) or answers ``reply``."""

    title: str
    payload: str
    queue: str | None = None
    reply: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowKeyword:
    """A keyword rule: any of ``match`` in the customer's text answers ``reply`` or hands off (to ``queue``)."""

    match: tuple[str, ...]
    reply: str | None = None
    handoff: bool = False
    queue: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowField:
    """A field to collect into the conversation's variables before the hand-off."""

    name: str
    ask: str
    pattern: str | None = None  # a full match is required; else ``ask`` is repeated with ``invalid``
    invalid: str = _INVALID


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesFlow:
    """A no-code flow: greeting, menu, keyword rules, fields to collect, then the hand-off."""

    greeting_template: str | None = None  # a message template's name
    greeting: str | None = None  # or plain text
    menu_text: str = "How can we help?"
    menu: tuple[FlowChoice, ...] = ()
    keywords: tuple[FlowKeyword, ...] = ()
    collect: tuple[FlowField, ...] = ()
    handoff_text: str | None = None  # said to the customer as the conversation goes to a person
    fallback: str = _FALLBACK


@dataclass(frozen=True, slots=True, kw_only=True)
class BotSettings:
    """One ``[[bots]]`` entry."""

    id: str
    kind: str  # webhook | rasa | rules
    queues: tuple[str, ...]
    url: str | None = None
    secret: str | None = field(default=None, repr=False)  # whsec_<base64>: signs what the hub sends
    token: str | None = field(default=None, repr=False)  # the bot's bearer token for the API
    handoff_after: float = 60.0  # seconds the bot may stay silent after a customer's message
    handoff_keywords: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_HANDOFF_KEYWORDS))
    # rasa: the key (or string) of a ``custom`` payload in Rasa's answer that asks for a person. A button whose
    # payload it is hands nothing off by itself: pressed, its payload goes to Rasa like any other, and Rasa's
    # response to it (that custom payload) hands over.
    handoff_payload: str = "handoff"
    timeout: float = 10.0  # seconds one call to the bot may take
    flow: RulesFlow | None = None

    def keywords(self) -> frozenset[str]:
        """Every hand-off keyword, whatever the language (a customer's language is rarely known for sure)."""
        return frozenset(word for words in self.handoff_keywords.values() for word in words)


def bot_for_queue(bots: tuple[BotSettings, ...]) -> dict[str, str]:
    """queue id -> the id of the bot that answers it first."""
    return {queue: bot.id for bot in bots for queue in bot.queues}


def parse_bots(value: Any, queue_ids: set[str], base_dir: Path | None = None) -> tuple[BotSettings, ...]:
    """Validate ``[[bots]]``: ids unique, queues configured and each answered by one bot at most, the
    kind's keys present and well formed. ``flow`` paths are relative to ``base_dir`` (the working
    directory when None)."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError("bots", "must be an array of tables ([[bots]])")
    bots: list[BotSettings] = []
    seen: set[str] = set()
    answered: dict[str, str] = {}
    tokens: set[str] = set()
    for i, entry in enumerate(value):
        bot = _bot(entry, f"bots[{i}]", queue_ids, base_dir)
        if bot.id in seen:
            raise ConfigError(f"bots[{i}].id", f"{bot.id!r} is defined twice")
        seen.add(bot.id)
        for queue in bot.queues:
            if queue in answered:
                raise ConfigError(f"bots[{i}].queues", f"queue {queue!r} already has the bot {answered[queue]!r}")
            answered[queue] = bot.id
        if bot.token is not None:
            if bot.token in tokens:
                raise ConfigError(f"bots[{i}].token", "two bots cannot share a token")
            tokens.add(bot.token)
        bots.append(bot)
    return tuple(bots)


def _bot(entry: Mapping[str, Any], where: str, queue_ids: set[str], base_dir: Path | None) -> BotSettings:
    for key in entry:
        if key not in _KEYS:
            raise ConfigError.unknown(f"{where}.{key}", _KEYS)
    bot_id = _text(entry, where, "id")
    if not _ID.match(bot_id):
        raise ConfigError(f"{where}.id", f"{bot_id!r} is not a valid id (letters, digits, '_', '-', '.')")
    kind = _text(entry, where, "kind")
    if kind not in BOT_KINDS:
        raise ConfigError(f"{where}.kind", f"{kind!r} is not one of {', '.join(BOT_KINDS)}")
    queues = entry.get("queues")
    if not isinstance(queues, list) or not queues or not all(isinstance(q, str) for q in queues):
        raise ConfigError(f"{where}.queues", "must be a non-empty list of queue ids")
    for queue in queues:
        if queue not in queue_ids:
            raise ConfigError(f"{where}.queues", f"{queue!r} is not a configured queue")
    url = secret = flow = None
    if kind in ("webhook", "rasa"):
        url = _text(entry, where, "url").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url", f"{url!r} is not an http(s) URL")
    elif "url" in entry:
        raise ConfigError(f"{where}.url", "a rules bot takes no url (its flow is in 'flow')")
    if kind == "webhook" or "secret" in entry:
        secret = _secret(entry, where)
    if kind == "rules":
        flow = load_flow(_text(entry, where, "flow"), f"{where}.flow", queue_ids, base_dir)
    elif "flow" in entry:
        raise ConfigError(f"{where}.flow", "only a rules bot takes a flow")
    token = entry.get("token")
    if token is not None and (not isinstance(token, str) or len(token.strip()) < 16):
        raise ConfigError(f"{where}.token", "must be a string of at least 16 characters")
    return BotSettings(
        id=bot_id,
        kind=kind,
        queues=tuple(queues),
        url=url,
        secret=secret,
        token=token.strip() if isinstance(token, str) else None,
        handoff_after=_seconds(entry, where, "handoff_after", 60.0),
        handoff_keywords=_keywords(entry.get("handoff_keywords"), f"{where}.handoff_keywords"),
        handoff_payload=_text(entry, where, "handoff_payload", "handoff"),
        timeout=_seconds(entry, where, "timeout", 10.0),
        flow=flow,
    )


def _text(entry: Mapping[str, Any], where: str, key: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if value is None:
        raise ConfigError(f"{where}.{key}", "is required")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}", "must be a non-empty string")
    return value.strip()


def _seconds(entry: Mapping[str, Any], where: str, key: str, default: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}.{key}", f"{value!r} is not a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{where}.{key}", f"{value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ConfigError(f"{where}.{key}", "must be greater than 0")
    return seconds


def _secret(entry: Mapping[str, Any], where: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of at least 24 random bytes."""
    if entry.get("secret") is None:
        raise ConfigError(f"{where}.secret", f"is required; {WHSEC_RECIPE}")
    secret = _text(entry, where, "secret")
    if not secret.startswith("whsec_"):
        raise ConfigError(f"{where}.secret", f"must be whsec_<base64> (Standard Webhooks form); {WHSEC_RECIPE}")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}.secret", f"the part after whsec_ is not valid base64; {WHSEC_RECIPE}") from None
    if len(key) < 24:
        raise ConfigError(f"{where}.secret", f"must hold at least 24 bytes (32 recommended); {WHSEC_RECIPE}")
    return secret


def _keywords(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    """A list (any language) or a table of language -> list; matched case-insensitively as whole words."""
    if value is None:
        return dict(DEFAULT_HANDOFF_KEYWORDS)
    table = {"*": value} if isinstance(value, list) else value
    if not isinstance(table, dict):
        raise ConfigError(where, "must be a list of words, or a table of language -> list of words")
    found: dict[str, tuple[str, ...]] = {}
    for language, words in table.items():
        if not _LANGUAGE.match(language):
            raise ConfigError(f"{where}.{language}", "is not a language code (en, de, pt-BR, or * for any)")
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise ConfigError(f"{where}.{language}" if table is value else where, "must be a list of words")
        found[language] = tuple(w.strip().casefold() for w in words)
    return found


# ------------------------------------------------------------------- rules flows


def load_flow(path: str, where: str, queue_ids: set[str], base_dir: Path | None = None) -> RulesFlow:
    """Read and validate a rules flow file (TOML)."""
    file = Path(path)
    if not file.is_absolute() and base_dir is not None:
        file = base_dir / file
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(where, f"file {str(file)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, f"{file}: not valid TOML ({exc})") from None
    return parse_flow(raw, where, queue_ids)


def parse_flow(raw: Mapping[str, Any], where: str, queue_ids: set[str]) -> RulesFlow:
    """A flow from its TOML table (see docs/bots.md for the keys)."""
    allowed = {"greeting", "greeting_template", "menu_text", "menu", "keywords", "collect", "handoff_text", "fallback"}
    for key in raw:
        if key not in allowed:
            raise ConfigError.unknown(f"{where}.{key}", allowed)
    strings = {
        k: _text(raw, where, k)
        for k in ("greeting", "greeting_template", "menu_text", "handoff_text", "fallback")
        if k in raw
    }
    menu = tuple(_choice(c, f"{where}.menu[{i}]", queue_ids) for i, c in enumerate(_tables(raw, "menu", where)))
    payloads = [c.payload for c in menu]
    if len(set(payloads)) != len(payloads):
        raise ConfigError(f"{where}.menu", "two choices have the same payload")
    keywords = tuple(
        _rule(k, f"{where}.keywords[{i}]", queue_ids) for i, k in enumerate(_tables(raw, "keywords", where))
    )
    fields = tuple(_field(f, f"{where}.collect[{i}]") for i, f in enumerate(_tables(raw, "collect", where)))
    if not menu and not keywords and not fields and "greeting" not in strings and "greeting_template" not in strings:
        raise ConfigError(where, "the flow is empty: give a greeting, a menu, keywords or fields to collect")
    return RulesFlow(
        greeting_template=strings.get("greeting_template"),
        greeting=strings.get("greeting"),
        menu_text=strings.get("menu_text", "How can we help?"),
        menu=menu,
        keywords=keywords,
        collect=fields,
        handoff_text=strings.get("handoff_text"),
        fallback=strings.get("fallback", _FALLBACK),
    )


def _tables(raw: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}.{key}", "must be an array of tables")
    return value


def _queue(entry: Mapping[str, Any], where: str, queue_ids: set[str]) -> str | None:
    queue = entry.get("queue")
    if queue is not None and queue not in queue_ids:
        raise ConfigError(f"{where}.queue", f"{queue!r} is not a configured queue")
    return queue


def _choice(entry: Mapping[str, Any], where: str, queue_ids: set[str]) -> FlowChoice:
    for key in entry:
        if key not in {"title", "payload", "queue", "reply"}:
            raise ConfigError.unknown(f"{where}.{key}", {"title", "payload", "queue", "reply"})
    title = _text(entry, where, "title")
    queue = _queue(entry, where, queue_ids)
    reply = _text(entry, where, "reply") if "reply" in entry else None
    if (queue is None) == (reply is None):
        raise ConfigError(where, "a choice routes to a 'queue' or answers a 'reply' (exactly one)")
    payload = _text(entry, where, "payload", title.casefold())
    return FlowChoice(title=title, payload=payload, queue=queue, reply=reply)


def _rule(entry: Mapping[str, Any], where: str, queue_ids: set[str]) -> FlowKeyword:
    for key in entry:
        if key not in {"match", "reply", "handoff", "queue"}:
            raise ConfigError.unknown(f"{where}.{key}", {"match", "reply", "handoff", "queue"})
    match = entry.get("match")
    if isinstance(match, str):
        match = [match]
    if not isinstance(match, list) or not match or not all(isinstance(m, str) and m.strip() for m in match):
        raise ConfigError(f"{where}.match", "must be a word or a list of words")
    handoff = entry.get("handoff", False)
    if not isinstance(handoff, bool):
        raise ConfigError(f"{where}.handoff", "must be true or false")
    queue = _queue(entry, where, queue_ids)
    reply = _text(entry, where, "reply") if "reply" in entry else None
    if reply is None and not handoff and queue is None:
        raise ConfigError(where, "a keyword rule answers a 'reply', or hands off ('handoff' or 'queue')")
    return FlowKeyword(
        match=tuple(m.strip().casefold() for m in match), reply=reply, handoff=handoff or queue is not None, queue=queue
    )


def _field(entry: Mapping[str, Any], where: str) -> FlowField:
    for key in entry:
        if key not in {"name", "ask", "pattern", "invalid"}:
            raise ConfigError.unknown(f"{where}.{key}", {"name", "ask", "pattern", "invalid"})
    name = _text(entry, where, "name")
    if not _ID.match(name):
        raise ConfigError(f"{where}.name", f"{name!r} is not a valid variable name")
    pattern = _text(entry, where, "pattern") if "pattern" in entry else None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}.pattern", f"not a valid regular expression ({exc})") from None
    invalid = _text(entry, where, "invalid", _INVALID)
    return FlowField(name=name, ask=_text(entry, where, "ask"), pattern=pattern, invalid=invalid)
