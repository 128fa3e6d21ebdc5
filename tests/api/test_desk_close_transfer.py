"""Closing among colleagues and transferring to a queue, as the agent manual describes (ADR 0030).

On both engines: one of several participants closing ends only their part, the customer goes on with the
others and their next message lands in the same conversation; the last participant's close closes it. A
transfer to a queue never comes straight back to the agent who made it, unless the queue allows it and
they are its only member.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api.conftest import AgentHandle, Api, MakeApi

SENDER = "+420600000001"


async def owned_with_guests(api: Api, owner: AgentHandle, *guests: AgentHandle) -> int:
    """A conversation ``owner`` took from the waiting list, with ``guests`` invited one after another."""
    conversation_id = await api.customer_writes(sender=SENDER)
    await owner.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    for guest in guests:
        await owner.json("POST", f"/api/v1/conversations/{conversation_id}/invite", {"agent": guest.id})
    return conversation_id


def present(view: dict[str, Any]) -> dict[int, str]:
    return {p["agent_id"]: p["role"] for p in view["participants"]}


def closed_parts(view: dict[str, Any]) -> dict[int, str]:
    return {p["agent_id"]: p["status"] for p in view["closed_parts"]}


async def close(agent: AgentHandle, conversation_id: int, status: str = "resolved") -> dict[str, Any]:
    return await agent.json("POST", f"/api/v1/conversations/{conversation_id}/close", {"status": status})


async def customer_lands_in(api: Api, conversation_id: int, owner: AgentHandle, text: str) -> None:
    """The customer's next message goes into the same, still open conversation."""
    assert await api.customer_writes(sender=SENDER, text=text) == conversation_id
    page = await owner.json("GET", f"/api/v1/conversations/{conversation_id}/messages")
    assert text in [m.get("text") for m in page["items"]]


async def test_a_guest_closing_leaves_the_owner_with_the_customer(api: Api) -> None:
    alice, bob = await api.agent("alice"), await api.agent("bob")
    conversation_id = await owned_with_guests(api, alice, bob)
    view = await close(bob, conversation_id, "spam")
    assert view["state"] == "active"
    assert view["status"] is None
    assert view["owner"] == alice.id
    assert present(view) == {alice.id: "owner"}
    assert closed_parts(view) == {bob.id: "spam"}
    await customer_lands_in(api, conversation_id, alice, "are you still there?")
    assert (await bob.post(f"/api/v1/conversations/{conversation_id}/close", {"status": "resolved"})).status == 403
    view = await close(alice, conversation_id)
    assert (view["state"], view["status"]) == ("closed", "resolved")
    assert closed_parts(view) == {bob.id: "spam", alice.id: "resolved"}


async def test_the_owner_closing_hands_the_customer_to_the_colleague(api: Api) -> None:
    alice, bob = await api.agent("alice"), await api.agent("bob")
    conversation_id = await owned_with_guests(api, alice, bob)
    view = await close(alice, conversation_id)
    assert view["state"] == "active"
    assert view["owner"] == bob.id
    assert present(view) == {bob.id: "owner"}
    await customer_lands_in(api, conversation_id, bob, "thanks, one more question")
    history = await bob.json("GET", f"/api/v1/conversations/{conversation_id}/messages")
    left = [e for e in history["items"] if e.get("kind") == "left" and e.get("agent_id") == alice.id]
    assert left
    assert left[0]["data"] == {"status": "resolved", "closed": True, "owner": bob.id}
    assert (await close(bob, conversation_id))["state"] == "closed"


async def test_three_agents_close_one_by_one_and_only_the_last_closes_it(api: Api) -> None:
    alice, bob, carol = await api.agent("alice"), await api.agent("bob"), await api.agent("carol")
    conversation_id = await owned_with_guests(api, alice, bob, carol)
    view = await close(carol, conversation_id, "spam")
    assert (view["state"], view["owner"]) == ("active", alice.id)
    assert present(view) == {alice.id: "owner", bob.id: "invited"}
    view = await close(alice, conversation_id)
    assert (view["state"], view["owner"]) == ("active", bob.id)
    assert present(view) == {bob.id: "owner"}
    await customer_lands_in(api, conversation_id, bob, "hello again")
    view = await close(bob, conversation_id, "spam")
    assert (view["state"], view["status"]) == ("closed", "spam")
    assert closed_parts(view) == {carol.id: "spam", alice.id: "resolved", bob.id: "spam"}
    assert await api.customer_writes(sender=SENDER, text="new day") != conversation_id  # closed: a new one


async def test_a_supervisor_who_is_not_taking_part_closes_it_for_everyone(api: Api) -> None:
    alice, bob = await api.agent("alice"), await api.agent("bob")
    sue = await api.agent("sue", role="supervisor")
    conversation_id = await owned_with_guests(api, alice, bob)
    view = await close(sue, conversation_id)
    assert (view["state"], view["participants"]) == ("closed", [])


async def test_a_colleague_invited_back_after_closing_is_no_closed_part_when_they_leave(api: Api) -> None:
    alice, bob = await api.agent("alice"), await api.agent("bob")
    sue = await api.agent("sue", role="supervisor")
    conversation_id = await owned_with_guests(api, alice, bob)
    assert closed_parts(await close(bob, conversation_id, "spam")) == {bob.id: "spam"}
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/invite", {"agent": bob.id})
    assert present(view) == {alice.id: "owner", bob.id: "invited"}
    assert closed_parts(view) == {}
    # this time bob leaves without closing: his earlier status is not his part's any more
    view = await bob.json("POST", f"/api/v1/conversations/{conversation_id}/leave")
    assert closed_parts(view) == {}
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/invite", {"agent": bob.id})
    view = await close(sue, conversation_id)  # closed for everyone: nobody closed a part of their own
    assert (view["state"], closed_parts(view)) == ("closed", {})


async def test_a_participants_close_without_a_status_changes_nothing(api: Api) -> None:
    alice, bob = await api.agent("alice"), await api.agent("bob")
    conversation_id = await owned_with_guests(api, alice, bob)
    refused = await bob.post(f"/api/v1/conversations/{conversation_id}/close", {})
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "status_required"
    view = await alice.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert present(view) == {alice.id: "owner", bob.id: "invited"}


# ------------------------------------------------------------------ transfer to a queue


async def test_a_transfer_never_comes_straight_back_to_the_transferrer(api: Api) -> None:
    alice = await api.agent("alice", queues=("support", "sales"), ready=True)
    bob = await api.agent("bob", queues=("sales",))  # a member, not ready yet
    conversation_id = await api.customer_writes(sender=SENDER)
    await api.sweep()
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    api.clock.advance(60)
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "sales"})
    assert (view["state"], view["offered_to"]) == ("waiting", None)  # alice is ready and free, but made it
    await api.sweep()
    assert (await alice.json("GET", f"/api/v1/conversations/{conversation_id}"))["state"] == "waiting"
    await bob.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    await api.sweep()
    view = await bob.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert (view["state"], view["offered_to"]) == ("offered", bob.id)


async def test_a_rejection_by_the_others_never_sends_it_back_to_the_transferrer(api: Api) -> None:
    alice = await api.agent("alice", queues=("support", "sales"), ready=True)
    conversation_id = await api.customer_writes(sender=SENDER)
    await api.sweep()
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    bob = await api.agent("bob", queues=("sales",), ready=True)
    api.clock.advance(60)
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "sales"})
    assert view["offered_to"] == bob.id
    await bob.json("POST", f"/api/v1/conversations/{conversation_id}/reject")
    await api.sweep()
    view = await alice.json("GET", f"/api/v1/conversations/{conversation_id}")
    # bob refused; a refuser gets it again before the transferrer ever does
    assert view["offered_to"] in (None, bob.id)
    assert view["offered_to"] != alice.id


SOLO = """
[[queues]]
id = "solo"
name = "Solo"
number = 300
transfer_back = true
"""


async def test_a_queue_allowing_transfer_back_offers_it_to_its_only_member(make_api: MakeApi) -> None:
    api = await make_api(SOLO)
    alice = await api.agent("alice", queues=("support", "solo"), ready=True)
    conversation_id = await api.customer_writes(sender=SENDER)
    await api.sweep()
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    api.clock.advance(60)
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "solo"})
    await api.sweep()  # the transfer's own offer or the router's, whichever ran first
    view = await alice.json("GET", f"/api/v1/conversations/{conversation_id}")
    assert (view["state"], view["offered_to"]) == ("offered", alice.id)
    queue = await alice.json("GET", "/api/v1/queues")
    assert {q["id"]: q["transfer_back"] for q in queue["items"]} == {"support": False, "sales": False, "solo": True}


async def test_transfer_back_is_only_for_the_only_member(make_api: MakeApi) -> None:
    api = await make_api(SOLO)
    alice = await api.agent("alice", queues=("support", "solo"), ready=True)
    await api.agent("bob", queues=("solo",))  # another member, offline: the conversation waits for him
    conversation_id = await api.customer_writes(sender=SENDER)
    await api.sweep()
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    api.clock.advance(60)
    view = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "solo"})
    assert (view["state"], view["offered_to"]) == ("waiting", None)


ROUTING_DOCS = Path(__file__).resolve().parents[2] / "docs" / "agents-and-routing.md"


async def test_allowing_transfer_back_is_an_admins_setting_as_the_docs_say(api: Api) -> None:
    supervisor = await api.agent("sue", role="supervisor")
    refused = await supervisor.put("/api/v1/queues/support", {"transfer_back": True})
    assert refused.status == 403
    admin = await api.agent("ada", role="admin")
    assert (await admin.json("PUT", "/api/v1/queues/support", {"transfer_back": True}))["transfer_back"] is True
    docs = ROUTING_DOCS.read_text(encoding="utf-8")
    [allowing] = [part for part in docs.split("\n- ") if "transfer_back = true" in part]
    assert "An admin can allow" in " ".join(allowing.split())
    assert "supervisor can allow" not in " ".join(allowing.split())
