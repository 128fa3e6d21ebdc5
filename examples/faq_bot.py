"""A small FAQ bot for channelhub's webhook bots: it answers a few questions and hands over on "agent".

Run it beside the hub:

    python examples/faq_bot.py --port 8095 --secret whsec_...

and name it in the hub's configuration (``[[bots]] kind = "webhook"``, ``url = "http://127.0.0.1:8095/bot"``,
the same ``secret``). The hub POSTs every customer message of the bot's queues, signed with the Standard
Webhooks scheme; the bot checks the signature and answers in the response body with the actions to take.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ANSWERS = {
    "hours": "We are open Monday to Friday, 9:00 to 17:00.",
    "delivery": "Parcels arrive in 2 to 4 working days; the tracking link is in your confirmation e-mail.",
    "returns": "You can return anything within 30 days: https://example.com/returns",
}
MENU = [
    {"title": "Opening hours", "payload": "hours"},
    {"title": "Delivery", "payload": "delivery"},
    {"title": "Returns", "payload": "returns"},
]
SECRET = web.AppKey("secret", Webhook)


def answer(message: dict[str, Any], choice: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The actions for one customer message."""
    text = (message.get("text") or "").casefold()
    wanted = (choice or {}).get("payload") or message.get("payload") or next((k for k in ANSWERS if k in text), None)
    if "agent" in text.split():
        return [{"type": "handoff", "reason": "bot_asked", "note": "asked for an agent in the FAQ bot"}]
    if wanted in ANSWERS:
        return [{"type": "message", "text": ANSWERS[wanted]}]
    return [
        {"type": "message", "text": "Hi! What would you like to know? (Type 'agent' for a person.)", "buttons": MENU}
    ]


async def bot(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        event = request.app[SECRET].verify(body, dict(request.headers))
    except WebhookVerificationError:
        return web.json_response({"error": "bad signature"}, status=401)
    if event.get("type") != "message.created":
        return web.Response(status=204)
    return web.json_response({"actions": answer(event["message"], event.get("choice"))})


def make_app(secret: str) -> web.Application:
    app = web.Application()
    app[SECRET] = Webhook(secret)
    app.router.add_post("/bot", bot)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--secret", default=os.environ.get("FAQ_BOT_SECRET"), help="whsec_... (or FAQ_BOT_SECRET)")
    args = parser.parse_args()
    if not args.secret:
        parser.error("give --secret or FAQ_BOT_SECRET")
    web.run_app(make_app(args.secret), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
