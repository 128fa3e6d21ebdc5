"""The console explains every refusal code of the outbound policy in words of its own, per channel.

hub/api/static/js/restrictions.js holds the sentences the "Send message window" and the conversation's
window badge show for each ``hub.policy.Rule`` code; a code the console has no words for would show as
a bare code, so each one must be there, and nothing the policy does not answer.
"""

from __future__ import annotations

import re
from pathlib import Path

from hub.model import Channel, EventKind
from hub.policy import Rule

RESTRICTIONS = Path(__file__).resolve().parents[2] / "hub" / "api" / "static" / "js" / "restrictions.js"
CONVERSATION = RESTRICTIONS.with_name("conversation.js")


def _block(source: str, name: str) -> str:
    start = source.index(f"export const {name} = {{")
    return source[start : source.index("\n};", start)]


def _rule_codes() -> set[str]:
    return {v for k, v in vars(Rule).items() if k.isupper() and isinstance(v, str)}


def test_every_refusal_code_has_the_consoles_words_and_no_other() -> None:
    block = _block(RESTRICTIONS.read_text(encoding="utf-8"), "RULE_TEXT")
    keys = set(re.findall(r"^  ([a-z_]+):", block, flags=re.MULTILINE))
    assert keys == _rule_codes()


def test_each_channels_restrictions_name_the_codes_that_enforce_them() -> None:
    block = _block(RESTRICTIONS.read_text(encoding="utf-8"), "CHANNEL_RESTRICTIONS")
    assert set(re.findall(r"^  ([a-z]+): \[", block, flags=re.MULTILINE)) == {c.value for c in Channel}
    named = set(re.findall(r"\(([a-z_]+)(?:, ([a-z_]+))?\)", block))
    codes = {code for pair in named for code in pair if code}
    assert codes <= _rule_codes()  # every code named is a real one
    assert {Rule.WINDOW_CLOSED, Rule.TEMPLATE_BINDING_REQUIRED, Rule.TAG_RETIRED, Rule.NOT_SUBSCRIBED} <= codes


def test_every_timeline_event_has_the_consoles_words() -> None:
    """A timeline row the console has no sentence for shows as its bare kind ("number changed")."""
    source = CONVERSATION.read_text(encoding="utf-8")
    start = source.index("const EVENT_TEXT = {")
    block = source[start : source.index("\n};", start)]
    keys = set(re.findall(r"^  ([a-z_]+):", block, flags=re.MULTILINE))
    assert {kind.value for kind in EventKind} <= keys
