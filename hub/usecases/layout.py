"""An agent's side-panel layout: which widgets their conversation screen shows and in what order.

The hub does not know every widget (the console registers them, and new ones arrive with new console
modules), so it checks the shape of the list, not its names: widget ids are short lower-case names,
each at most once. The message widget is not part of it: it is always shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.errors import Invalid
from hub.store.layouts import forget_layout, load_layout, save_layout
from hub.usecases._parts import HubParts
from hub.usecases.principal import Principal

__all__ = ["MAX_WIDGETS", "WIDGET_ID", "Layout", "my_layout", "set_my_layout"]

#: a widget id as the console registers it: ``contact``, ``ticket``, ``articles``, ``page-in-iframe``
WIDGET_ID = re.compile(r"[a-z][a-z0-9_-]{0,39}")
MAX_WIDGETS = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """``widgets`` shown, in order; None: never saved (the console shows its default)."""

    widgets: tuple[str, ...] | None
    updated_at: datetime | None


async def my_layout(hub: HubParts, actor: Principal) -> Layout:
    """The actor's saved layout, or the unsaved default."""
    saved = await load_layout(hub.store, actor.agent_id())
    if saved is None:
        return Layout(widgets=None, updated_at=None)
    return Layout(widgets=saved.widgets, updated_at=saved.updated_at)


async def set_my_layout(hub: HubParts, actor: Principal, widgets: Sequence[str] | None) -> Layout:
    """Save the widgets the actor's side panel shows, in order (an empty list hides them all); None forgets the
    saved layout, so the console shows its default again.

    Invalid ``invalid_widget`` for a malformed id, ``duplicate_widget`` for one named twice,
    ``too_many_widgets`` past ``MAX_WIDGETS``; nothing is saved then."""
    if widgets is None:
        await forget_layout(hub.store, actor.agent_id())
        return Layout(widgets=None, updated_at=None)
    if len(widgets) > MAX_WIDGETS:
        raise Invalid("too_many_widgets", f"at most {MAX_WIDGETS} widgets", field="widgets")
    seen: set[str] = set()
    for i, widget in enumerate(widgets):
        if not WIDGET_ID.fullmatch(widget):
            raise Invalid(
                "invalid_widget",
                f"widgets[{i}] {widget[:50]!r} is not a widget id (lower-case letters, digits, '-' and '_')",
                field=f"widgets[{i}]",
            )
        if widget in seen:
            raise Invalid("duplicate_widget", f"widget {widget!r} is listed twice", field=f"widgets[{i}]")
        seen.add(widget)
    saved = await save_layout(hub.store, actor.agent_id(), widgets, hub.clock())
    return Layout(widgets=saved.widgets, updated_at=saved.updated_at)
