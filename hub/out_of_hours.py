"""The part of a running hub that answers customers outside business hours (hub/usecases/out_of_hours.py).

It listens to the bus for a customer's message (``MessageCreated``, inbound) in a queue that has business hours
and no bot, and handles them one at a time, in order, so that two quick messages get one answer.
"""

from __future__ import annotations

import asyncio
import logging

from hub._tasks import cancel_and_wait
from hub.errors import Refusal
from hub.events import MessageCreated, unwrapped
from hub.settings import Settings
from hub.usecases._parts import HubParts
from hub.usecases.out_of_hours import answer_out_of_hours

__all__ = ["OutOfHours"]

logger = logging.getLogger(__name__)


class OutOfHours:
    """Started and stopped by the hub (hub/app.py); idle when no queue without a bot has hours."""

    def __init__(self, settings: Settings) -> None:
        with_bot = {queue for bot in settings.bots for queue in bot.queues}
        self._queues = frozenset(q for q in settings.queue_hours if q not in with_bot)
        self._parts: HubParts | None = None
        self._task: asyncio.Task[None] | None = None
        self.seen = 0  # customer messages of those queues handled (tests wait for it)
        self.answered = 0

    async def start(self, parts: HubParts) -> None:
        if not self._queues:
            return
        self._parts = parts
        self._task = asyncio.create_task(self._listen(), name="out-of-hours")

    async def stop(self) -> None:
        await cancel_and_wait([self._task] if self._task is not None else [])
        self._task = None

    async def _listen(self) -> None:
        assert self._parts is not None
        async with self._parts.bus.subscribe() as queue:
            while True:
                match unwrapped(await queue.get()):
                    case MessageCreated(direction="in", queue_id=queue_id, conversation_id=conversation_id) if (
                        queue_id in self._queues
                    ):
                        await self._answer(conversation_id)
                        self.seen += 1
                    case _:
                        pass

    async def _answer(self, conversation_id: int) -> None:
        assert self._parts is not None
        try:
            if await answer_out_of_hours(self._parts, conversation_id) is not None:
                self.answered += 1
        except asyncio.CancelledError:
            raise
        except Refusal as exc:  # the policy or the template said no: the agents see the message at the opening
            logger.warning("out-of-hours answer refused: %s", exc, extra={"conversation_id": conversation_id})
        except Exception:
            logger.exception("out-of-hours answer failed", extra={"conversation_id": conversation_id})
