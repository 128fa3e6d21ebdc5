"""What one bot turn is given and what it answers: the customer's message with its conversation, and the
bot's actions (say something, hand off, close). Kinds (webhook, rasa, rules) turn one into the other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.bot_settings import BotSettings
from hub.quick_replies import Button

__all__ = ["Answer", "BotKind", "BotUnavailable", "Close", "HandOver", "Say", "Turn", "actions_from_json"]


class BotUnavailable(Exception):
    """The bot did not answer usably (network error, timeout, a status other than 2xx, a malformed body)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Say:
    text: str | None = None
    buttons: tuple[Button, ...] = ()
    template: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOver:
    reason: str = "bot_asked"
    queue: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    status: str


Action = Say | HandOver | Close


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One customer message for the bot: the conversation and the message as the API renders them, the
    choice it makes among the buttons the bot offered last (if any), the bot's saved progress, and what may be
    sent now as the API renders it (a webhook bot's; None for the other kinds)."""

    bot: BotSettings
    conversation: Mapping[str, Any]
    message: Mapping[str, Any]
    choice: Button | None = None
    step: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    eligibility: Mapping[str, Any] | None = None

    @property
    def text(self) -> str:
        return str(self.message.get("text") or "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the bot does now (nothing: it answers later through the API); a rules bot also moves on."""

    actions: tuple[Action, ...] = ()
    step: str | None = None
    variables: Mapping[str, Any] | None = None  # None: unchanged


class BotKind(Protocol):
    async def answer(self, turn: Turn) -> Answer: ...


def _buttons(value: Any) -> tuple[Button, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BotUnavailable("'buttons' must be a list")
    found = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("title"), str) or not item["title"].strip():
            raise BotUnavailable("each button needs a 'title'")
        payload = item.get("payload", item["title"])
        found.append(Button(title=item["title"].strip(), payload=str(payload)))
    return tuple(found)


def _optional_str(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise BotUnavailable(f"'{key}' must be a string")
    return value


def actions_from_json(items: Sequence[Any]) -> tuple[Action, ...]:
    """A webhook bot's ``actions``: ``{"type": "message", "text", "buttons"}``, ``{"type": "template",
    "template", "variables"}``, ``{"type": "handoff", "reason", "queue", "note"}``, ``{"type": "close",
    "status"}``. Anything else is the bot's mistake (``BotUnavailable``)."""
    actions: list[Action] = []
    for item in items:
        if not isinstance(item, dict):
            raise BotUnavailable("each action must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            text = _optional_str(item, "text")
            buttons = _buttons(item.get("buttons", item.get("quick_replies")))
            if not text and not buttons:
                raise BotUnavailable("a message needs 'text' or 'buttons'")
            actions.append(Say(text=text, buttons=buttons))
        elif kind == "template":
            name = _optional_str(item, "template")
            variables = item.get("variables", {})
            if not name or not isinstance(variables, dict):
                raise BotUnavailable("a template action needs 'template' (and 'variables' an object)")
            actions.append(Say(template=name, variables=variables))
        elif kind == "handoff":
            reason = _optional_str(item, "reason") or "bot_asked"
            actions.append(
                HandOver(reason=reason, queue=_optional_str(item, "queue"), note=_optional_str(item, "note"))
            )
        elif kind == "close":
            status = _optional_str(item, "status")
            if not status:
                raise BotUnavailable("a close action needs 'status'")
            actions.append(Close(status=status))
        else:
            raise BotUnavailable(f"unknown action type {kind!r}")
    return tuple(actions)
