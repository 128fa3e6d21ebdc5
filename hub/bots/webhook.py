"""A webhook bot: each customer message is POSTed to the bot's URL, signed with the Standard Webhooks scheme.

The body is ``{"type": "message.created", "conversation": {...}, "message": {...}, "eligibility": {...}}``, the
conversation and the message as the API renders them and what may be sent now as
``GET /api/v1/identities/{id}/eligibility`` answers. The bot answers in the response body (``{"actions": [...]}``, see
``hub.bots.turns.actions_from_json``) or later through the API with its token (an empty 2xx).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

from hub.bots.turns import Answer, BotUnavailable, Turn, actions_from_json
from hub.views import jsonable

__all__ = ["WebhookBot", "signed_headers"]


def signed_headers(secret: str, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body`` (Standard Webhooks)."""
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=at, data=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


class WebhookBot:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http

    async def answer(self, turn: Turn) -> Answer:
        bot = turn.bot
        assert bot.url is not None
        assert bot.secret is not None
        payload: dict[str, Any] = {
            "type": "message.created",
            "conversation": jsonable(dict(turn.conversation)),
            "message": jsonable(dict(turn.message)),
            "eligibility": jsonable(dict(turn.eligibility)) if turn.eligibility is not None else None,
        }
        if turn.choice is not None:
            payload["choice"] = turn.choice.to_json()
        body = json.dumps(payload, separators=(",", ":")).encode()
        # the signature's time is the wall clock: the receiver checks it against its own
        headers = signed_headers(bot.secret, f"msg_{turn.message['id']}", body, datetime.now(UTC))
        headers["Content-Type"] = "application/json"
        try:
            async with self._http.post(
                bot.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=bot.timeout)
            ) as response:
                raw = await response.read()
                if not 200 <= response.status < 300:
                    raise BotUnavailable(f"the bot answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BotUnavailable(f"the bot could not be reached: {exc!r}") from None
        if not raw.strip():
            return Answer()  # it answers later, through the API
        try:
            found = json.loads(raw)
        except ValueError:
            raise BotUnavailable("the bot's answer is not JSON") from None
        items = found.get("actions", []) if isinstance(found, dict) else found
        if not isinstance(items, list):
            raise BotUnavailable("'actions' must be a list")
        return Answer(actions=actions_from_json(items))
