"""The conversation API: lists, history, take, transfer, invite, leave, close, important."""

from __future__ import annotations

import asyncio

from tests.api.conftest import AgentHandle, Api, MakeApi


async def accepted(api: Api, agent: AgentHandle, sender: str = "+420600000001") -> int:
    """A conversation owned by ``agent`` (taken from the waiting list)."""
    conversation_id = await api.customer_writes(sender=sender)
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    return conversation_id


async def test_the_list_shows_an_agent_their_queues_waiting_list_and_their_own(api: Api) -> None:
    alice = await api.agent("alice")
    sam = await api.agent("sam", queues=("sales",))
    boss = await api.agent("boss", role="supervisor", queues=())
    conversation_id = await api.customer_writes()
    page = await alice.json("GET", "/api/v1/conversations?state=waiting&queue=support")
    item = page["items"][0]
    assert item["id"] == conversation_id
    assert {"id", "state", "queue", "channel", "account", "identity", "waiting_since", "important"} <= set(item)
    assert item["state"] == "waiting"
    assert item["queue"] == "support"
    assert item["channel"] == "whatsapp"
    assert item["account"] == "wa-test"
    assert item["identity"]["external_id"] == "+420600000001"
    assert item["identity"]["display_name"] == "Customer +420600000001"
    assert item["important"] is False
    assert page["next"] is None
    assert (await sam.json("GET", "/api/v1/conversations"))["items"] == []
    assert [i["id"] for i in (await boss.json("GET", "/api/v1/conversations"))["items"]] == [conversation_id]
    assert (await sam.get(f"/api/v1/conversations/{conversation_id}")).status == 403
    assert (await alice.get("/api/v1/conversations/999999")).status == 404


async def test_the_list_pages_with_a_keyset_cursor(api: Api) -> None:
    boss = await api.agent("boss", role="supervisor")
    ids = [await api.customer_writes(sender=f"+4206000000{n:02d}") for n in range(5)]
    seen: list[int] = []
    path = "/api/v1/conversations?limit=2"
    while True:
        page = await boss.json("GET", path)
        seen += [i["id"] for i in page["items"]]
        if page["next"] is None:
            break
        path = f"/api/v1/conversations?limit=2&cursor={page['next']}"
    assert seen == sorted(ids, reverse=True)


async def test_two_agents_taking_the_same_conversation_one_wins_the_other_gets_409(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    first, second = await asyncio.gather(
        alice.post(f"/api/v1/conversations/{conversation_id}/take"),
        bob.post(f"/api/v1/conversations/{conversation_id}/take"),
    )
    assert sorted([first.status, second.status]) == [200, 409]
    loser = second if second.status == 409 else first
    assert (await loser.json())["error"]["code"] == "already_taken"
    winner = alice if first.status == 200 else bob
    view = await winner.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert view["owner"] == winner.id
    assert [p["agent_id"] for p in view["participants"]] == [winner.id]


async def test_a_member_who_takes_after_the_winner_committed_gets_409_not_403(api: Api) -> None:
    # The concurrent test above can interleave either way; this is the order in
    # which the loser reads the conversation after the winner's commit.
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    assert (await alice.post(f"/api/v1/conversations/{conversation_id}/take")).status == 200
    late = await bob.post(f"/api/v1/conversations/{conversation_id}/take")
    assert late.status == 409
    assert (await late.json())["error"]["code"] == "already_taken"


async def test_any_member_may_take_whatever_their_presence_but_not_another_queues(api: Api) -> None:
    alice = await api.agent("alice", ready=False)
    sam = await api.agent("sam", queues=("sales",))
    conversation_id = await api.customer_writes()
    refused = await sam.post(f"/api/v1/conversations/{conversation_id}/take")
    assert refused.status == 403
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    assert view["state"] == "active"


async def test_taking_a_conversation_offered_to_a_colleague_withdraws_their_offer(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    await api.sweep()
    view = await bob.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    assert view["owner"] == bob.id
    assert view["offered_to"] is None
    assert (await alice.post(f"/api/v1/conversations/{conversation_id}/accept")).status in (403, 409)


async def test_transfer_to_a_queue_ends_the_agents_part_and_offers_it_there(api: Api) -> None:
    alice = await api.agent("alice", queues=("support", "sales"))
    conversation_id = await accepted(api, alice)
    # move the clock before sam is ready: the sweep his readiness starts in the background could otherwise
    # offer at the old time, and the handler's sweep would then find that offer overdue
    api.clock.advance(60)
    sam = await api.agent("sam", queues=("sales",), ready=True)
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "sales"})
    assert view["queue"] == "sales"
    assert view["state"] == "offered"
    assert view["offered_to"] == sam.id
    assert view["participants"] == []
    assert view["waiting_since"] == api.clock().isoformat()
    assert (await alice.post(f"/api/v1/conversations/{conversation_id}/close", {"status": "resolved"})).status == 403


async def test_transfer_to_an_agent_makes_them_the_owner(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await accepted(api, alice)
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"agent": "bob"})
    assert view["owner"] == bob.id
    assert [p["agent_id"] for p in view["participants"]] == [bob.id]
    assert (await alice.get(f"/api/v1/conversations/{conversation_id}")).status == 200  # history stays readable
    assert (await alice.post(f"/api/v1/conversations/{conversation_id}/leave")).status == 403
    bad = await bob.post(f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "nowhere"})
    assert bad.status == 422
    assert (await bad.json())["error"]["code"] == "unknown_queue"


async def test_invite_then_one_agent_leaves_and_the_other_carries_on(make_api: MakeApi) -> None:
    api = await make_api(fake_adapter=True)
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    carol = await api.agent("carol", queues=("sales",), ready=True)
    conversation_id = await accepted(api, alice)
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/invite", {"agent": bob.id})
    assert {p["agent_id"]: p["role"] for p in view["participants"]} == {alice.id: "owner", bob.id: "invited"}
    view = await bob.json("POST", f"/api/v1/conversations/{conversation_id}/invite", {"queue": "sales"})
    assert carol.id in [p["agent_id"] for p in view["participants"]]
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/leave")
    assert view["owner"] == bob.id
    assert alice.id not in [p["agent_id"] for p in view["participants"]]
    assert (await carol.post(f"/api/v1/conversations/{conversation_id}/leave")).status == 200
    last = await bob.post(f"/api/v1/conversations/{conversation_id}/leave")
    assert last.status == 409
    assert (await last.json())["error"]["code"] == "last_participant"
    closed = await bob.json("POST", f"/api/v1/conversations/{conversation_id}/close", {"status": "resolved"})
    assert closed["state"] == "closed"
    assert api.adapter.sent == []  # the customer saw nothing of it


async def test_close_without_a_status_or_with_one_not_allowed_is_422_and_changes_nothing(api: Api) -> None:
    alice = await api.agent("alice")
    conversation_id = await accepted(api, alice)
    missing = await alice.post(f"/api/v1/conversations/{conversation_id}/close", {})
    assert missing.status == 422
    assert (await missing.json())["error"]["code"] == "status_required"
    unknown = await alice.post(f"/api/v1/conversations/{conversation_id}/close", {"status": "nonsense"})
    assert unknown.status == 422
    assert (await unknown.json())["error"]["code"] == "status_not_allowed"
    view = await alice.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert view["state"] == "active"
    closed = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/close", {"status": "spam"})
    assert closed["status"] == "spam"
    assert closed["closed_at"] is not None


async def test_important_toggles_and_is_recorded_in_the_timeline(api: Api) -> None:
    alice = await api.agent("alice")
    conversation_id = await accepted(api, alice)
    assert (await alice.json("POST", f"/api/v1/conversations/{conversation_id}/important"))["important"] is True
    assert (await alice.json("POST", f"/api/v1/conversations/{conversation_id}/important"))["important"] is False
    set_true = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/important", {"important": True})
    assert set_true["important"] is True
    history = await alice.json("GET", f"/api/v1/conversations/{conversation_id}/messages")
    marks = [i["data"]["important"] for i in history["items"] if i["type"] == "event" and i["kind"] == "important"]
    assert marks == [True, False, True]


async def test_history_pages_newest_first_and_continues_into_older_conversations(api: Api) -> None:
    alice = await api.agent("alice")
    old = await api.customer_writes(text="first visit")
    await alice.json("POST", f"/api/v1/conversations/{old}/take")
    api.clock.advance(1)
    await alice.json("POST", f"/api/v1/conversations/{old}/close", {"status": "resolved"})
    for n in range(3):
        api.clock.advance(1)
        current = await api.customer_writes(text=f"again {n}")
    assert current != old
    await alice.json("POST", f"/api/v1/conversations/{current}/take")
    texts: list[str] = []
    conversation_ids: list[int] = []
    path = f"/api/v1/conversations/{current}/messages?limit=2"
    pages = 0
    while path:
        page = await alice.json("GET", path)
        pages += 1
        assert len(page["items"]) <= 2
        texts = [i["text"] for i in page["items"] if i["type"] == "message"] + texts
        conversation_ids = [i["conversation_id"] for i in page["items"]] + conversation_ids
        path = f"/api/v1/conversations/{current}/messages?limit=2&before={page['next']}" if page["next"] else ""
    assert texts == ["first visit", "again 0", "again 1", "again 2"]
    assert conversation_ids[0] == old
    assert conversation_ids[-1] == current
    assert pages > 2


async def test_the_queue_url_template_fills_open_url(make_api: MakeApi) -> None:
    api = await make_api(
        """
[[queues]]
id = "vip"
name = "VIP"
number = 300
url_template = "https://crm.example/lookup?phone={external_id}&c={conversation_id}"
"""
    )
    boss = await api.agent("boss", role="supervisor", queues=("support",))
    conversation_id = await api.customer_writes()
    view = await boss.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    assert view["open_url"] is None
    view = await boss.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "vip"})
    assert view["open_url"] == f"https://crm.example/lookup?phone=%2B420600000001&c={conversation_id}"


async def test_acting_on_someone_elses_conversation_is_403_and_changes_nothing(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    boss = await api.agent("boss", role="supervisor", queues=())
    conversation_id = await accepted(api, alice)
    for action, body in (
        ("close", {"status": "resolved"}),
        ("leave", None),
        ("important", None),
        ("invite", {"agent": bob.id}),
    ):
        response = await bob.post(f"/api/v1/conversations/{conversation_id}/{action}", body)
        assert response.status == 403, action
    # bob is a member of the queue: taking is within his rights, but it is no longer waiting.
    taken = await bob.post(f"/api/v1/conversations/{conversation_id}/take")
    assert taken.status == 409
    assert (await taken.json())["error"]["code"] == "already_taken"
    view = await alice.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert view["important"] is False
    assert view["state"] == "active"
    moved = await boss.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"agent": bob.id})
    assert moved["owner"] == bob.id
