"""Issue 18, "where a conversation goes": outside a queue's business hours a queue without a bot answers once
with its message, the conversation is not offered while the queue is closed, and it is offered at the opening.
On both engines, with the test clock (Monday 2026-03-02 09:00 UTC)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from hub.api.keys import HUB
from hub.usecases.out_of_hours import answer_out_of_hours
from tests.api.conftest import START, Api, Clock, MakeApi, eventually

NIGHT = """
[[queues]]
id = "night"
name = "Night desk"
number = 300

[queues.hours]
time_zone = "UTC"
mon = "12:00-17:00"
tue = "09:00-17:00"
closed = ["2026-03-03"]
message = "We are closed; we open {opening}."

[[accounts]]
id = "wa-night"
channel = "whatsapp"
provider = "twilio"
queue = "night"
api_base = "http://127.0.0.1:9"
account_sid = "ACnight"
auth_token = "night-auth-token"
from_number = "+15550009999"
"""
CUSTOMER = "+420600000009"
_readers = itertools.count()


async def handled(api: Api, count: int) -> None:
    """Until the listener has handled ``count`` customer messages of the closed queue."""

    async def done() -> bool:
        return bool(api.app[HUB].out_of_hours.seen >= count)

    await eventually(done, f"{count} customer messages handled")


async def history(api: Api, conversation_id: int) -> list[dict[str, Any]]:
    admin = await api.agent(f"reader{next(_readers)}", role="admin", queues=())
    body = await admin.json("GET", f"/api/v1/conversations/{conversation_id}/messages?limit=200")
    items: list[dict[str, Any]] = body["items"]
    return items


def system_messages(items: list[dict[str, Any]]) -> list[str]:
    return [i["text"] for i in items if i["type"] == "message" and i["author"] == "system"]


async def offered_to(api: Api, conversation_id: int) -> Any:
    admin = await api.agent(f"reader{next(_readers)}", role="admin", queues=())
    return (await admin.json("GET", f"/api/v1/conversations/{conversation_id}"))["offered_to"]


async def test_outside_hours_the_queue_answers_once_and_offers_at_the_opening(make_api: MakeApi) -> None:
    api = await make_api(NIGHT, fake_adapter=True)  # Monday 09:00 UTC, before the 12:00 opening
    agent = await api.agent("nina", queues=("night",), ready=True)
    conversation_id = await api.customer_writes(account_id="wa-night", sender=CUSTOMER, text="hi")
    await handled(api, 1)
    await api.sweep()
    assert await offered_to(api, conversation_id) is None, "a closed queue offers nothing"

    await api.customer_writes(account_id="wa-night", sender=CUSTOMER, text="anyone there?")
    await handled(api, 2)
    assert await answer_out_of_hours(api.app[HUB], conversation_id) is None, "answered once per conversation"
    items = await history(api, conversation_id)
    assert system_messages(items) == ["We are closed; we open Mon 02 Mar 12:00."]
    assert [i["data"]["opening"] for i in items if i["type"] == "event" and i["kind"] == "out_of_hours"] == [
        "Mon 02 Mar 12:00"
    ]
    sup = await api.agent("sue", role="supervisor", queues=("night",))
    night = {q["id"]: q for q in (await sup.json("GET", "/api/v1/queues"))["items"]}["night"]
    assert night["hours"]["open"] is False
    assert night["figures"]["waiting"] == 1

    api.clock.advance(3 * 3600)  # 12:00: the queue opens
    result = await api.sweep()
    assert (conversation_id, agent.id) in result.offered
    assert await offered_to(api, conversation_id) == agent.id


async def test_inside_hours_nothing_is_said_and_the_conversation_is_offered(make_api: MakeApi) -> None:
    api = await make_api(NIGHT, fake_adapter=True, clock=Clock(START + timedelta(hours=4)))  # Monday 13:00
    agent = await api.agent("nina", queues=("night",), ready=True)
    conversation_id = await api.customer_writes(account_id="wa-night", sender=CUSTOMER, text="hi")
    await handled(api, 1)
    await api.sweep()
    assert await offered_to(api, conversation_id) == agent.id
    assert system_messages(await history(api, conversation_id)) == []


async def test_a_closed_date_keeps_the_queue_closed_until_its_next_open_day(make_api: MakeApi) -> None:
    api = await make_api(NIGHT, fake_adapter=True, clock=Clock(START + timedelta(days=1, hours=1)))  # Tue 10:00
    agent = await api.agent("nina", queues=("night",), ready=True)
    conversation_id = await api.customer_writes(account_id="wa-night", sender=CUSTOMER, text="hi")
    await handled(api, 1)
    await api.sweep()
    assert await offered_to(api, conversation_id) is None
    assert system_messages(await history(api, conversation_id)) == ["We are closed; we open Mon 09 Mar 12:00."]

    api.clock.advance(6 * 24 * 3600)  # Monday 9 March 10:00: still before the opening
    await api.sweep()
    assert await offered_to(api, conversation_id) is None
    api.clock.advance(2 * 3600)
    await api.sweep()
    assert await offered_to(api, conversation_id) == agent.id


async def test_a_configured_template_is_the_answer_and_it_is_sent_once(make_api: MakeApi) -> None:
    config = NIGHT.replace('message = "We are closed; we open {opening}."', 'template = "out_of_hours"')
    api = await make_api(config, fake_adapter=True)  # Monday 09:00 UTC: closed
    admin = await api.agent("root", role="admin", queues=())
    template = {"name": "out_of_hours", "body": "Closed until {{ opening }}.", "variables": {"opening": "Mon 12:00"}}
    await admin.json("POST", "/api/v1/templates", template, status=201)
    conversation_id = await api.customer_writes(account_id="wa-night", sender=CUSTOMER, text="hi")
    await api.customer_writes(account_id="wa-night", sender=CUSTOMER, text="hello?")
    await handled(api, 2)
    items = await history(api, conversation_id)
    answers = [i for i in items if i["type"] == "message" and i["author"] == "system"]
    assert [(a["text"], a["kind"]) for a in answers] == [("Closed until Mon 02 Mar 12:00.", "template")]


async def test_a_refused_answer_is_not_counted_and_the_next_message_tries_again(make_api: MakeApi) -> None:
    config = NIGHT.replace('message = "We are closed; we open {opening}."', 'template = "out_of_hours"')
    api = await make_api(config, fake_adapter=True)  # closed, and the template does not exist yet
    conversation_id = await api.customer_writes(account_id="wa-night", sender=CUSTOMER, text="hi")
    await handled(api, 1)
    items = await history(api, conversation_id)
    assert system_messages(items) == []
    assert [i for i in items if i["type"] == "event" and i["kind"] == "out_of_hours"] == []

    admin = await api.agent("root", role="admin", queues=())
    template = {"name": "out_of_hours", "body": "Closed until {{ opening }}.", "variables": {"opening": "Mon 12:00"}}
    await admin.json("POST", "/api/v1/templates", template, status=201)
    await api.customer_writes(account_id="wa-night", sender=CUSTOMER, text="hello?")
    await handled(api, 2)
    assert system_messages(await history(api, conversation_id)) == ["Closed until Mon 02 Mar 12:00."]
