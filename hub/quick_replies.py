"""Quick replies and buttons, one model for every channel: a title the customer sees and a payload that comes
back when they press it. Stdlib only.

Where a channel cannot show them, they become text: the message lists the titles, numbered, and the
customer's answer (the number or the title) is read back as the choice (``chosen``).
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.model import Button

__all__ = ["Button", "chosen", "with_choices"]


def with_choices(text: str | None, buttons: Sequence[Button]) -> str:
    """The text fallback: the message, then one numbered line per choice."""
    lines = [f"{i}. {b.title}" for i, b in enumerate(buttons, start=1)]
    return "\n".join(([text, ""] if text else []) + lines)


def chosen(buttons: Sequence[Button], text: str | None, payload: str | None) -> Button | None:
    """Which choice the customer made: a pressed button's payload, its number, or its title typed out."""
    if payload is not None:
        for button in buttons:
            if button.payload == payload:
                return button
    answer = (text or "").strip().rstrip(".").casefold()
    if not answer:
        return None
    if answer.isdigit() and 1 <= int(answer) <= len(buttons):
        return buttons[int(answer) - 1]
    for button in buttons:
        if answer in (button.title.casefold(), button.payload.casefold()):
            return button
    return None
