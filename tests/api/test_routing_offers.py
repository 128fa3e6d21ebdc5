"""Offers through the API: who gets one, reject, timeout, capacity, restart."""

from __future__ import annotations

from tests.api.conftest import Api, MakeApi


async def offered_to(api: Api, conversation_id: int) -> int | None:
    from hub.store.conversations import get_conversation

    found = await get_conversation(api.store, conversation_id)
    assert found is not None
    return found.conversation.offered_agent_id


async def test_a_waiting_conversation_is_offered_to_the_longest_idle_ready_member(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    api.clock.advance(5)
    bob = await api.agent("bob", ready=True)
    await api.agent("carol")  # not ready: never offered
    api.clock.advance(1)
    conversation_id = await api.customer_writes()
    await api.sweep()
    assert await offered_to(api, conversation_id) == alice.id
    api.clock.advance(1)
    second = await api.customer_writes(sender="+420600000002")
    await api.sweep()
    assert await offered_to(api, second) == bob.id


async def test_login_alone_does_not_make_an_agent_ready(api: Api) -> None:
    await api.agent("alice")
    conversation_id = await api.customer_writes()
    await api.sweep()
    assert await offered_to(api, conversation_id) is None


async def test_offer_then_reject_passes_to_the_next_agent_and_not_back(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    api.clock.advance(1)
    bob = await api.agent("bob", ready=True)
    api.clock.advance(1)
    carol = await api.agent("carol", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    assert await offered_to(api, conversation_id) == alice.id
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/reject")
    assert view["offered_to"] == bob.id
    await bob.json("POST", f"/api/v1/conversations/{conversation_id}/reject")
    assert await offered_to(api, conversation_id) == carol.id
    accepted = await carol.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    assert accepted["state"] == "active"
    assert accepted["owner"] == carol.id
    assert accepted["participants"][0]["agent_id"] == carol.id
    history = await carol.json("GET", f"/api/v1/conversations/{conversation_id}/messages")
    kinds = [i["kind"] for i in history["items"] if i["type"] == "event"]
    assert kinds == ["opened", "offered", "rejected", "offered", "rejected", "offered", "accepted"]


async def test_a_rejected_offer_returns_to_the_rejecter_only_when_nobody_else_is_ready(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/reject")
    assert view["offered_to"] == alice.id


async def test_no_answer_before_the_timeout_pauses_the_agent_unpaid_and_passes_it_on(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    api.clock.advance(1)
    bob = await api.agent("bob", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    assert await offered_to(api, conversation_id) == alice.id
    api.clock.advance(29)
    await api.sweep()
    assert await offered_to(api, conversation_id) == alice.id
    api.clock.advance(1)
    result = await api.sweep()
    assert (conversation_id, alice.id) in result.expired
    assert await offered_to(api, conversation_id) == bob.id
    me = await alice.json("GET", "/api/v1/me")
    assert me["presence"]["state"] == "paused"
    assert me["presence"]["reason"] == "missed offer"
    assert me["presence"]["paid"] is False
    late = await alice.post(f"/api/v1/conversations/{conversation_id}/accept")
    assert late.status in (403, 409)


async def test_capacity_counts_offered_and_active_conversations(api: Api) -> None:
    alice = await api.agent("alice", ready=True, capacity=1)
    first = await api.customer_writes(sender="+420600000001")
    second = await api.customer_writes(sender="+420600000002")
    await api.sweep()
    assert await offered_to(api, first) == alice.id
    assert await offered_to(api, second) is None
    await alice.json("POST", f"/api/v1/conversations/{first}/accept")
    await api.sweep()
    assert await offered_to(api, second) is None
    await alice.json("POST", f"/api/v1/conversations/{first}/close", {"status": "resolved"})
    assert await offered_to(api, second) == alice.id


async def test_a_restart_in_the_middle_of_an_offer_keeps_the_offer_and_its_deadline(make_api: MakeApi) -> None:
    first = await make_api()
    alice = await first.agent("alice", ready=True)
    api_bob = await first.agent("bob")
    conversation_id = await first.customer_writes()
    await first.sweep()
    before = await alice.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert before["offered_to"] == alice.id
    await first.client.close()

    second = await make_api(clock=first.clock)
    await second.sweep()
    await second.sweep()
    login = await second.client.post("/api/v1/auth/login", json={"login": "alice", "password": "correct horse battery"})
    token = (await login.json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    after = await (await second.client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)).json()
    assert after["offered_to"] == alice.id
    assert after["offer_deadline"] == before["offer_deadline"]
    second.clock.advance(30)
    result = await second.sweep()
    assert result.expired == [(conversation_id, alice.id)]
    assert api_bob.id not in [agent for _, agent in result.offered]  # bob is not ready


async def test_pausing_gives_back_an_open_offer_at_once(api: Api) -> None:
    alice = await api.agent("alice", ready=True)
    api.clock.advance(1)
    bob = await api.agent("bob", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    assert await offered_to(api, conversation_id) == alice.id
    paused = await alice.json("PUT", "/api/v1/me/presence", {"state": "paused", "reason": "coffee"})
    assert paused["presence"]["paid"] is True
    assert await offered_to(api, conversation_id) == bob.id
