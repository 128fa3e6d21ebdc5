"""A rules bot: a no-code flow from a TOML file (hub/bot_settings.py ``RulesFlow``).

The first message is greeted (a template or text) and shown the menu; a choice answers or routes to a
queue; keyword rules answer or hand off at any point of the menu; before a hand-off to a queue the flow
collects its fields (name, order number...) into the conversation's variables, which the agent sees in
the hand-off note. Pure: no I/O, the runner saves the step and the variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hub.bot_settings import FlowChoice, RulesFlow
from hub.bots.turns import Action, Answer, HandOver, Say, Turn
from hub.quick_replies import Button

__all__ = ["RulesBot", "next_turn"]

MENU = "menu"
_COLLECT = "collect:"
_QUEUE_KEY = "_queue"


class RulesBot:
    async def answer(self, turn: Turn) -> Answer:
        assert turn.bot.flow is not None
        return next_turn(turn.bot.flow, turn)


def _menu(flow: RulesFlow, text: str | None = None) -> Say:
    buttons = tuple(Button(title=c.title, payload=c.payload) for c in flow.menu)
    return Say(text=text or flow.menu_text, buttons=buttons)


def _greeting(flow: RulesFlow) -> list[Action]:
    if flow.greeting_template is not None:
        return [Say(template=flow.greeting_template)]
    return [Say(text=flow.greeting)] if flow.greeting else []


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


def _note(flow: RulesFlow, variables: Mapping[str, Any]) -> str | None:
    found = [f"{f.name}: {variables[f.name]}" for f in flow.collect if f.name in variables]
    return "; ".join(found) or None


def _hand_off(flow: RulesFlow, queue: str | None, variables: Mapping[str, Any]) -> list[Action]:
    said: list[Action] = [Say(text=flow.handoff_text)] if flow.handoff_text else []
    return [*said, HandOver(reason="bot_asked", queue=queue, note=_note(flow, variables))]


def _route(flow: RulesFlow, queue: str | None, variables: dict[str, Any]) -> Answer:
    """Collect the fields first, if there are any, then hand off to ``queue``."""
    if flow.collect:
        variables[_QUEUE_KEY] = queue
        return Answer(actions=(Say(text=flow.collect[0].ask),), step=f"{_COLLECT}0", variables=variables)
    return Answer(actions=tuple(_hand_off(flow, queue, variables)), step=None, variables=variables)


def _choice(flow: RulesFlow, turn: Turn) -> FlowChoice | None:
    if turn.choice is None:
        return None
    return next((c for c in flow.menu if c.payload == turn.choice.payload), None)


def next_turn(flow: RulesFlow, turn: Turn) -> Answer:
    """What the flow answers to ``turn``, and where it goes next."""
    variables = dict(turn.variables)
    step = turn.step
    if step is None:
        if flow.menu:
            return Answer(actions=(*_greeting(flow), _menu(flow)), step=MENU, variables=variables)
        if flow.collect and not flow.keywords:
            greeting = _greeting(flow)
            routed = _route(flow, None, variables)
            return Answer(actions=(*greeting, *routed.actions), step=routed.step, variables=variables)
        if not flow.keywords:  # a greeting alone: say it, then hand off
            return Answer(actions=(*_greeting(flow), *_hand_off(flow, None, variables)), variables=variables)
        step = MENU
        greeted = _greeting(flow)
        if greeted and not _keyword(flow, turn):
            return Answer(actions=tuple(greeted), step=MENU, variables=variables)
    if step.startswith(_COLLECT):
        return _collect(flow, turn, int(step.removeprefix(_COLLECT)), variables)
    chosen = _choice(flow, turn)
    if chosen is not None:
        if chosen.reply is not None:
            return Answer(actions=(Say(text=chosen.reply),), step=MENU, variables=variables)
        return _route(flow, chosen.queue, variables)
    rule = _keyword(flow, turn)
    if rule is not None:
        if rule.handoff:
            return _route(flow, rule.queue, variables)
        assert rule.reply is not None
        return Answer(actions=(Say(text=rule.reply),), step=MENU, variables=variables)
    if flow.menu:
        return Answer(actions=(_menu(flow, flow.fallback),), step=MENU, variables=variables)
    return Answer(actions=(Say(text=flow.fallback),), step=MENU, variables=variables)


def _keyword(flow: RulesFlow, turn: Turn) -> Any:
    words = _words(turn.text)
    return next((k for k in flow.keywords if words & set(k.match)), None)


def _collect(flow: RulesFlow, turn: Turn, index: int, variables: dict[str, Any]) -> Answer:
    wanted = flow.collect[min(index, len(flow.collect) - 1)]
    value = turn.text.strip()
    if not value or (wanted.pattern is not None and re.fullmatch(wanted.pattern, value) is None):
        return Answer(actions=(Say(text=f"{wanted.invalid} {wanted.ask}"),), step=turn.step, variables=variables)
    variables[wanted.name] = value
    if index + 1 < len(flow.collect):
        following = flow.collect[index + 1]
        return Answer(actions=(Say(text=following.ask),), step=f"{_COLLECT}{index + 1}", variables=variables)
    queue = variables.pop(_QUEUE_KEY, None)
    return Answer(actions=tuple(_hand_off(flow, queue, variables)), step=None, variables=variables)
