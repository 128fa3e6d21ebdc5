"""Reports of a queue with a bot, played through the API: what the bot resolved is not abandoned, and the
customer's wait runs from the bot's hand-off, not from the start of the bot's part."""

from __future__ import annotations

from sqlalchemy import select

from hub.store.tables import bot_conversations
from tests.api.conftest import START, Api, MakeApi, eventually
from tests.api.test_bots import BotServer, as_bot, bot_config, bot_server, history  # noqa: F401 (a fixture)

HOUR = "from=2026-03-02T09:00:00Z&to=2026-03-02T10:00:00Z&bucket=hour"


async def _asked(api: Api, conversation_id: int) -> bool:
    async with api.store.read() as connection:
        row = (
            await connection.execute(
                select(bot_conversations.c.awaiting_since).where(bot_conversations.c.conversation_id == conversation_id)
            )
        ).first()
    return row is not None and row.awaiting_since is not None


async def _bot_was_asked(api: Api, conversation_id: int) -> None:
    await eventually(lambda: _asked(api, conversation_id), "the bot was asked")


async def _at(api: Api, seconds: float) -> None:
    api.clock.advance(seconds - (api.clock() - START).total_seconds())


async def test_a_bot_resolved_contact_is_not_abandoned_and_the_wait_starts_at_the_hand_off(
    make_api: MakeApi,
    bot_server: BotServer,  # noqa: F811 (the fixture imported above)
) -> None:
    """Both customers write at 0 and the bot has them; it closes A at 30 and hands B to people at 40 (the
    customer asked); alice, ready, is offered B at once and accepts it at 50: a wait of 10 s, not 50 s."""
    bot_server.otherwise = (202, None)  # the bot answers later, through the API
    api = await make_api(bot_config(bot_server.url), fake_adapter=True)
    sue = await api.agent("sue", role="supervisor", queues=())
    alice = await api.agent("alice", queues=("support",))
    a = await api.customer_writes(sender="+420600000301", text="opening hours?")
    b = await api.customer_writes(sender="+420600000302", text="where is my parcel?")
    for conversation_id in (a, b):
        await _bot_was_asked(api, conversation_id)
    await _at(api, 30)
    closed = await api.client.post(f"/api/v1/conversations/{a}/close", json={"status": "resolved"}, headers=as_bot(api))
    assert closed.status == 200, await closed.text()
    await _at(api, 40)
    handed = await api.client.post(
        f"/api/v1/conversations/{b}/handoff", json={"reason": "customer_asked"}, headers=as_bot(api)
    )
    assert handed.status == 200, await handed.text()
    await alice.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    await api.sweep()
    await _at(api, 50)
    await alice.json("POST", f"/api/v1/conversations/{b}/accept")

    body = await sue.json("GET", f"/api/v1/reports/queues?{HOUR}")
    (support,) = body["items"]
    assert support["queue"] == "support"
    assert {k: support[k] for k in ("received", "handled", "abandoned", "bot_resolved", "handed_off")} == {
        "received": 2,
        "handled": 1,
        "abandoned": 0,
        "bot_resolved": 1,
        "handed_off": 1,
    }
    assert support["handed_off_by_reason"] == {"customer_asked": 1}
    assert (support["first_offer_p50_s"], support["wait_p50_s"]) == (0, 10)
    # the agent report counts the same contact for alice, with the same wait
    (mine,) = (await sue.json("GET", f"/api/v1/reports/agents?{HOUR}"))["items"]
    assert (mine["agent_login"], mine["received"], mine["handled"], mine["wait_p50_s"]) == ("alice", 1, 1, 10)


async def test_a_conversation_reopened_with_the_bot_names_it_and_is_a_second_contact_the_bot_resolved(
    make_api: MakeApi,
    bot_server: BotServer,  # noqa: F811 (the fixture imported above)
) -> None:
    reopening = """
[[accounts]]
id = "wa-again"
channel = "whatsapp"
provider = "twilio"
queue = "support"
after_close = "reopen"
api_base = "http://127.0.0.1:9"
account_sid = "ACagain"
auth_token = "again-auth-token"
from_number = "+15550003333"
"""
    bot_server.otherwise = (202, None)
    api = await make_api(bot_config(bot_server.url) + reopening, fake_adapter=True)
    sue = await api.agent("sue", role="supervisor", queues=())
    for seconds in (0, 600):
        await _at(api, seconds)
        conversation_id = await api.customer_writes("wa-again", sender="+420600000501", text="opening hours?")
        await _bot_was_asked(api, conversation_id)
        await _at(api, seconds + 20)
        closed = await api.client.post(
            f"/api/v1/conversations/{conversation_id}/close", json={"status": "resolved"}, headers=as_bot(api)
        )
        assert closed.status == 200, await closed.text()
    starts = [
        (i["kind"], i["data"])
        for i in await history(api, conversation_id)
        if i["type"] == "event" and i["kind"] in ("opened", "reopened")
    ]
    assert starts == [("opened", {"bot": "faq"}), ("reopened", {"bot": "faq"})]
    (support,) = (await sue.json("GET", f"/api/v1/reports/queues?{HOUR}"))["items"]
    assert (support["received"], support["bot_resolved"], support["abandoned"]) == (2, 2, 0)
    assert support["by_status"] == {"resolved": 2}
