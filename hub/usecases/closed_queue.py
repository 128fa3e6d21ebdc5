"""What a queue says while it is closed: "it opens at ...", the same words whoever says them.

A closed queue's answer (``[queues.hours]``: its ``template`` with the variable ``opening``, else its
``message`` with ``{opening}``) is sent by the hub itself to a queue without a bot
(hub/usecases/out_of_hours.py) and by a bot that hands a conversation to a closed queue (hub/usecases/bots.py).
Both build it here, so the two cannot drift; this module imports neither of them.
"""

from __future__ import annotations

from datetime import datetime

from hub.hours import BusinessHours, is_open, opening_text
from hub.usecases.outbound import Send

__all__ = ["closed_answer", "closed_now"]


def closed_answer(hours: BusinessHours, now: datetime) -> Send:
    """What a closed queue says at ``now``: its template with ``opening``, else its message with ``{opening}``."""
    when = opening_text(hours, now)
    if hours.template is not None:
        return Send(template=hours.template, variables={"opening": when})
    return Send(text=hours.message.replace("{opening}", when))


def closed_now(hours: BusinessHours | None, now: datetime) -> Send | None:
    """The closed answer when a queue with ``hours`` is closed at ``now``; None without hours or while open."""
    if hours is None or is_open(hours, now):
        return None
    return closed_answer(hours, now)
