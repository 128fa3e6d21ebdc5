"""A Rasa assistant through its REST channel: ``POST {url}/webhooks/rest/webhook`` with ``sender`` and
``message``; the answer is a list of messages, each with ``text`` (and maybe ``buttons``), ``image`` or
``custom``. A pressed button's payload is sent back as the customer's message, as Rasa's own channels do.
A ``custom`` payload naming the bot's ``handoff_payload`` (``{"handoff": true, "queue": ..., "note": ...}``
or the plain string) hands the conversation to a person; a button carrying that payload does not (pressed, it
goes to Rasa as the customer's message like any other, and Rasa's response hands over).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from hub.bots.turns import Action, Answer, BotUnavailable, HandOver, Say, Turn
from hub.quick_replies import Button

__all__ = ["RasaBot"]


class RasaBot:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http

    async def answer(self, turn: Turn) -> Answer:
        bot = turn.bot
        assert bot.url is not None
        message = turn.choice.payload if turn.choice is not None else turn.text
        if turn.choice is None and turn.message.get("payload"):
            message = str(turn.message["payload"])
        body = {"sender": f"identity-{turn.conversation['identity']['id']}", "message": message}
        try:
            async with self._http.post(
                f"{bot.url}/webhooks/rest/webhook", json=body, timeout=aiohttp.ClientTimeout(total=bot.timeout)
            ) as response:
                if response.status != 200:
                    raise BotUnavailable(f"Rasa answered {response.status}")
                found = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BotUnavailable(f"Rasa could not be reached: {exc!r}") from None
        if not isinstance(found, list):
            raise BotUnavailable("Rasa's answer is not a list of messages")
        return Answer(actions=tuple(a for item in found for a in _actions(item, bot.handoff_payload)))


def _actions(item: Any, handoff_payload: str) -> list[Action]:
    if not isinstance(item, dict):
        raise BotUnavailable("each Rasa message must be an object")
    custom = item.get("custom")
    if custom is not None and _asks_for_person(custom, handoff_payload):
        fields = custom if isinstance(custom, dict) else {}
        queue, note = fields.get("queue"), fields.get("note")
        return [HandOver(queue=queue if isinstance(queue, str) else None, note=note if isinstance(note, str) else None)]
    found: list[Action] = []
    buttons = tuple(
        Button(title=str(b["title"]), payload=str(b.get("payload", b["title"])))
        for b in item.get("buttons") or []
        if isinstance(b, dict) and b.get("title")
    )
    text = item.get("text")
    if (isinstance(text, str) and text) or buttons:
        found.append(Say(text=text if isinstance(text, str) else None, buttons=buttons))
    image = item.get("image")
    if isinstance(image, str) and image:
        found.append(Say(text=image))  # the picture's address, as text: every channel shows a link
    return found


def _asks_for_person(custom: Any, handoff_payload: str) -> bool:
    if isinstance(custom, str):
        return custom == handoff_payload
    if isinstance(custom, dict):
        return bool(custom.get(handoff_payload)) or custom.get("action") == handoff_payload
    return False
