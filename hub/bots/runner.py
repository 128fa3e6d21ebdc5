"""The bot runner: the hub's part that gives each customer message of a bot's conversation to its bot.

It listens to the bus for ``MessageCreated`` (a customer's message) in a queue that has a bot, and, one
message at a time per conversation:

1. a conversation no longer with a bot is left alone (an agent took it over meanwhile);
2. a customer who asks for a person (a hand-off keyword, as a whole word) is handed off: ``customer_asked``;
3. the bot is asked (its kind: webhook, rasa, rules); a failed call is retried after ``retry_delays``
   and, still failing, the conversation is handed off: ``bot_failed``;
4. what it answers is done through the use cases an agent's console uses (hub/usecases/bots.py); a bot that
   answers nothing now (it will, through the API) starts the silence clock (``bot_conversations.awaiting_since``),
   as a failed call does. A turn that answers at once writes nothing of the bot's own: the reply is its record.

A turn reads once, before the bot is asked (``hub.store.bots.turn_of``): what the bot is sent, and what its
replies need; whether the conversation is still the bot's is checked again where each reply is written.

While a turn asks its bot (the call, up to the HTTP timeout, and each retry's back-off) the next turn of the
same conversation waits for it. So whenever something happens to that conversation meanwhile (an event of it on
the bus: a hand-off, a take, a return to a bot, a close, a new customer message) the turn reads again whose the
conversation is; no longer its bot's, the turn is dropped there and then -- the call or back-off abandoned, no
retry, no ``bot_failed`` hand-off -- so a former bot that is failing does not hold up the bot (or the person)
the conversation went to. Still its bot's, the turn goes on: a failing bot keeps its back-off. (The bus is this
process's: a change made by another hub process is noticed at the turn's next retry, which reads again first.)

A second loop hands off conversations whose bot stayed silent ``handoff_after`` seconds (``bot_silent``),
by the hub's clock, so a test can move time and call ``check_silence``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp

from hub._tasks import cancel_and_wait
from hub.bot_settings import BotSettings
from hub.bots.rasa import RasaBot
from hub.bots.rules import RulesBot
from hub.bots.turns import Answer, BotKind, BotUnavailable, Close, HandOver, Say, Turn
from hub.bots.webhook import WebhookBot
from hub.errors import Refusal
from hub.events import MessageCreated, unwrapped
from hub.quick_replies import chosen
from hub.store.bots import BotTurn, failed, save_progress, silent_since, turn_of, waiting_for_bot
from hub.usecases._parts import HubParts
from hub.usecases.bots import BotSay, HandOffRequest, bot_close, hand_off, offered_choices, say
from hub.usecases.outbound import ReadByTurn, may_send_now
from hub.usecases.principal import Principal
from hub.views import eligibility_json

__all__ = ["BotRunner", "asks_for_person"]

logger = logging.getLogger(__name__)

_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)


T = TypeVar("T")


class _NoLongerItsBots(Exception):
    """A turn's conversation left its bot while the bot was being asked: the turn is dropped."""


def asks_for_person(bot: BotSettings, text: str | None) -> bool:
    """Whether the customer's text holds one of the bot's hand-off keywords as a whole word (any language)."""
    if not text:
        return False
    folded = text.casefold()
    return any(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", folded) for word in bot.keywords())


class BotRunner:
    """Started and stopped by the hub (hub/app.py) with the hub's parts and its HTTP session."""

    def __init__(
        self, bots: Sequence[BotSettings], *, tick_seconds: float = 1.0, retry_delays: Sequence[float] = (0.5, 2.0)
    ) -> None:
        self._bots = {bot.id: bot for bot in bots}
        self._by_queue = {queue: bot for bot in bots for queue in bot.queues}
        self._tick = tick_seconds
        self.retry_delays = tuple(retry_delays)
        self._parts: HubParts | None = None
        self._http: aiohttp.ClientSession | None = None
        self._owns_http = False
        self._kinds: dict[str, BotKind] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._turns: set[asyncio.Task[None]] = set()
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}  # conversation -> its lock, turns using it
        #: conversation -> set when something happened to it while its turn runs: the turn looks again whose it is
        self._look_again: dict[int, asyncio.Event] = {}
        self.handled = 0

    @property
    def active(self) -> bool:
        return bool(self._bots)

    @property
    def _tells_eligibility(self) -> bool:
        """Whether a turn may need the templates: a webhook bot is told what may be sent now, which names them."""
        return any(bot.kind == "webhook" for bot in self._bots.values())

    async def start(self, parts: HubParts, http: aiohttp.ClientSession | None) -> None:
        """Listen and sweep (nothing to do when no bot is configured)."""
        if not self._bots:
            return
        self._parts = parts
        if http is None:
            http, self._owns_http = aiohttp.ClientSession(timeout=_TIMEOUT), True
        self._http = http
        self._kinds = {"webhook": WebhookBot(http), "rasa": RasaBot(http), "rules": RulesBot()}
        self._tasks = [
            asyncio.create_task(self._listen(), name="bots-listen"),
            asyncio.create_task(self._silence_loop(), name="bots-silence"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, *self._turns])
        self._tasks, self._turns = [], set()
        if self._owns_http and self._http is not None:
            await self._http.close()
        self._http, self._owns_http = None, False

    async def idle(self) -> None:
        """Wait until every turn that has started is done (tests, benchmarks)."""
        while self._turns:
            await asyncio.gather(*list(self._turns), return_exceptions=True)

    # ------------------------------------------------------------------ listening

    async def _listen(self) -> None:
        assert self._parts is not None
        async with self._parts.bus.subscribe() as queue:
            while True:
                event = unwrapped(await queue.get())
                concerned = getattr(event, "conversation_id", None)
                if concerned in self._look_again:
                    self._look_again[concerned].set()
                match event:
                    case MessageCreated(direction="in", queue_id=queue_id) if queue_id in self._by_queue:
                        self._spawn(event.conversation_id, event.message_id)
                    case _:
                        pass

    def _spawn(self, conversation_id: int, message_id: int) -> None:
        task = asyncio.create_task(self._turn(conversation_id, message_id), name=f"bot-turn-{conversation_id}")
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    async def _turn(self, conversation_id: int, message_id: int) -> None:
        """One message at a time per conversation, in the order they arrived."""
        lock, users = self._locks.get(conversation_id, (asyncio.Lock(), 0))
        self._locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                self._look_again[conversation_id] = asyncio.Event()  # before the turn reads: nothing is missed
                try:
                    await self.handle(conversation_id, message_id)
                finally:
                    del self._look_again[conversation_id]
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("bot turn failed", extra={"conversation_id": conversation_id})
        finally:
            lock, users = self._locks[conversation_id]
            if users <= 1:
                del self._locks[conversation_id]
            else:
                self._locks[conversation_id] = (lock, users - 1)

    # ------------------------------------------------------------------ one turn

    def _bot_for(self, view: Mapping[str, Any]) -> BotSettings | None:
        named = view.get("bot")
        if named in self._bots:
            return self._bots[named]
        return self._by_queue.get(str(view["queue"]))

    async def handle(self, conversation_id: int, message_id: int) -> None:
        """Give one customer message to the conversation's bot and do what it answers."""
        parts = self._parts
        assert parts is not None
        found = await turn_of(parts.store, conversation_id, message_id, with_templates=self._tells_eligibility)
        if found is None:
            return
        view, message, state = found.view, found.message, found.state
        bot = self._bot_for(view)
        if view["state"] != "bot" or bot is None:
            return
        self.handled += 1
        variables = dict(state.variables) if state is not None else {}
        choice = chosen(offered_choices(variables), message.get("text"), message.get("payload"))
        if choice is None and asks_for_person(bot, message.get("text")):
            await self._hand_off(bot, conversation_id, HandOffRequest(reason="customer_asked"))
            return
        turn = Turn(
            bot=bot,
            conversation=view,
            message=message,
            choice=choice,
            step=state.step if state is not None else None,
            variables=variables,
            eligibility=await self._may_send(bot, found, str(view["queue"])),
        )
        try:
            answer = await self._ask(bot, turn)
        except _NoLongerItsBots:
            logger.info("bot %s's turn dropped: the conversation is no longer its", bot.id)
            return
        if answer is not None and not answer.actions:  # it answers later, through the API: the silence clock runs
            await waiting_for_bot(parts.store, conversation_id, bot.id, message["created_at"], parts.clock())
        if answer is None:
            await self._hand_off(bot, conversation_id, HandOffRequest(reason="bot_failed"))
            return
        if answer.variables is not None or answer.step != turn.step:
            kept = dict(answer.variables if answer.variables is not None else variables)
            await save_progress(parts.store, conversation_id, bot.id, answer.step, kept, parts.clock())
        await self._perform(
            bot, conversation_id, answer, ReadByTurn(conversation=found.conversation, identity=found.identity)
        )

    async def _may_send(self, bot: BotSettings, found: BotTurn, queue: str) -> dict[str, Any] | None:
        """What may be sent now, for a webhook bot's body (the console's use case and JSON; ``queue``: the
        conversation's); None for the other kinds, or when the identity's account is no longer configured."""
        parts = self._parts
        assert parts is not None
        if bot.kind != "webhook":
            return None
        identity = found.identity
        try:
            allowed = await may_send_now(parts, identity, automated=True, templates=found.templates)
            return eligibility_json(identity, allowed, queue)
        except Refusal:
            return None

    async def _ask(self, bot: BotSettings, turn: Turn) -> Answer | None:
        """The bot's answer, retried after each of ``retry_delays``; None when it never came. Raises
        ``_NoLongerItsBots`` when the conversation leaves the bot meanwhile (see ``_while_its``)."""
        parts = self._parts
        assert parts is not None
        conversation_id = int(turn.conversation["id"])
        for attempt in range(len(self.retry_delays) + 1):
            # a change made by another hub process is not on this process's bus: read again before a retry
            if attempt and not await self._still_its(bot, conversation_id, int(turn.message["id"])):
                raise _NoLongerItsBots
            try:
                return await self._while_its(bot, turn, self._kinds[bot.kind].answer(turn))
            except BotUnavailable as exc:
                since = turn.message["created_at"]
                await waiting_for_bot(parts.store, conversation_id, bot.id, since, parts.clock())
                failures = await failed(parts.store, conversation_id, bot.id, parts.clock())
                logger.warning(
                    "bot %s failed: %s", bot.id, exc, extra={"conversation_id": conversation_id, "failures": failures}
                )
            if attempt < len(self.retry_delays):
                await self._while_its(bot, turn, asyncio.sleep(self.retry_delays[attempt]))
        return None

    async def _while_its(self, bot: BotSettings, turn: Turn, step: Coroutine[Any, Any, T]) -> T:
        """``step`` (a call to the bot or a retry's back-off), abandoned as soon as the conversation is found
        to be no longer ``bot``'s (``_NoLongerItsBots``).

        Why: the conversation's next turn waits for this one, and its next turn may be another bot's (handed
        to another queue's bot, or to people and back to a bot) -- which would otherwise wait out this bot's
        HTTP timeout and back-offs, about half a minute, before its first word. The conversation is read again
        only when something happened to it (``_look_again``), not on a timer."""
        conversation_id = int(turn.conversation["id"])
        look_again = self._look_again.get(conversation_id) or asyncio.Event()
        task = asyncio.ensure_future(step)
        try:
            while True:
                nudged = asyncio.ensure_future(look_again.wait())
                try:
                    await asyncio.wait((task, nudged), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    nudged.cancel()
                if task.done():
                    return task.result()
                look_again.clear()
                if not await self._still_its(bot, conversation_id, int(turn.message["id"])):
                    raise _NoLongerItsBots
        finally:
            if not task.done():  # abandoned (or the runner stops): what it would have answered is not wanted
                task.cancel()
                await asyncio.wait((task,))
                if not task.cancelled():
                    task.exception()  # retrieved, so that it is not reported as never retrieved

    async def _still_its(self, bot: BotSettings, conversation_id: int, message_id: int) -> bool:
        """Whether the conversation is (still) ``bot``'s, read as a turn reads it."""
        parts = self._parts
        assert parts is not None
        found = await turn_of(parts.store, conversation_id, message_id)
        if found is None or found.view["state"] != "bot":
            return False
        now_with = self._bot_for(found.view)
        return now_with is not None and now_with.id == bot.id

    async def _perform(self, bot: BotSettings, conversation_id: int, answer: Answer, known: ReadByTurn) -> None:
        parts = self._parts
        assert parts is not None
        principal = Principal.of_bot(bot.id, bot.queues)
        for action in answer.actions:
            try:
                match action:
                    case Say():
                        message = BotSay(
                            text=action.text,
                            buttons=action.buttons,
                            template=action.template,
                            variables=action.variables,
                        )
                        await say(parts, principal, conversation_id, message, known=known)
                    case HandOver(reason=reason, queue=queue, note=note):
                        await hand_off(
                            parts, principal, conversation_id, HandOffRequest(reason=reason, queue=queue, note=note)
                        )
                        return
                    case Close(status=status):
                        await bot_close(parts, principal, conversation_id, status)
                        return
            except Refusal as exc:  # the policy or the lifecycle said no: a person takes over
                logger.warning("bot %s was refused: %s", bot.id, exc, extra={"conversation_id": conversation_id})
                note = f"{exc.code}: {exc.message}"
                with suppress(Refusal):
                    await hand_off(parts, principal, conversation_id, HandOffRequest(reason="bot_failed", note=note))
                return

    async def _hand_off(self, bot: BotSettings, conversation_id: int, request: HandOffRequest) -> None:
        parts = self._parts
        assert parts is not None
        with suppress(Refusal):  # taken over meanwhile: nothing to hand off
            await hand_off(parts, Principal.of_bot(bot.id, bot.queues), conversation_id, request)

    # ------------------------------------------------------------------ silence

    async def check_silence(self, now: datetime | None = None) -> list[int]:
        """Hand off every conversation whose bot has been silent ``handoff_after`` seconds; returns them."""
        parts = self._parts
        assert parts is not None
        now = now or parts.clock()
        handed: list[int] = []
        for bot in self._bots.values():
            for conversation_id in await silent_since(parts.store, bot.id, now - timedelta(seconds=bot.handoff_after)):
                await self._hand_off(bot, conversation_id, HandOffRequest(reason="bot_silent"))
                handed.append(conversation_id)
        return handed

    async def _silence_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                await self.check_silence()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("bot silence check failed")
