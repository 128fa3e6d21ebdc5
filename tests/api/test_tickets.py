"""Tickets (lite) through the API: create, search filters, favourites, assign to a conversation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from hub.store.tables import conversations, participants, tickets, timeline_events
from tests.api.conftest import AgentHandle, Api


async def make_owner(api: Api, conversation_id: int, agent: AgentHandle) -> None:
    """Give the conversation to ``agent`` directly in the store (routing is tested elsewhere)."""
    now = api.clock()
    async with api.store.write() as connection:
        await connection.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(state="active", owner_agent_id=agent.id, waiting_since=None)
        )
        await connection.execute(
            participants.insert().values(
                conversation_id=conversation_id, agent_id=agent.id, role="owner", joined_at=now
            )
        )


async def _ticket_count(api: Api) -> int:
    async with api.store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(tickets))).scalar_one())


async def test_ticket_is_created_read_and_edited(api: Api) -> None:
    alice = await api.agent("alice")
    contact = await alice.json("POST", "/api/v1/contacts", {"name": "Jana", "company": "Acme"}, status=201)
    created = await alice.json(
        "POST", "/api/v1/tickets", {"title": "Refund order 1234", "contact": contact["id"]}, status=201
    )
    assert created["state"] == "open"
    assert created["company"] == "Acme"  # taken from the contact
    assert created["contact"] == {"id": contact["id"], "name": "Jana"}
    assert created["created_by"] == alice.id
    assert created["favourite"] is False
    edited = await alice.json("PUT", f"/api/v1/tickets/{created['id']}", {"state": "closed", "description": "done"})
    assert (edited["state"], edited["description"], edited["title"]) == ("closed", "done", "Refund order 1234")
    shown = await alice.json("GET", f"/api/v1/tickets/{created['id']}")
    assert shown == edited


async def test_invalid_ticket_input_is_422_and_writes_nothing(api: Api) -> None:
    alice = await api.agent("alice")
    for body, field in [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x", "state": "someday"}, "state"),
        ({"title": "x", "contact": 999}, "contact"),
        ({"title": "x", "assignee": 999}, "assignee"),
        ({"title": "x", "assignee": "bob"}, "assignee"),
        ({"title": "x", "priority": 1}, "priority"),
    ]:
        response = await alice.post("/api/v1/tickets", json=body)
        assert response.status == 422, body
        assert (await response.json())["error"]["field"] == field
    assert await _ticket_count(api) == 0


async def test_ticket_filters_combine(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    jana = await alice.json("POST", "/api/v1/contacts", {"name": "Jana", "company": "Acme"}, status=201)
    petr = await alice.json("POST", "/api/v1/contacts", {"name": "Petr", "company": "Globex"}, status=201)
    mine_jana = await alice.json(
        "POST", "/api/v1/tickets", {"title": "Broken phone", "contact": jana["id"]}, status=201
    )
    bobs_jana = await bob.json(
        "POST", "/api/v1/tickets", {"title": "Invoice copy", "contact": jana["id"], "assignee": bob.id}, status=201
    )
    given_to_me = await bob.json(
        "POST", "/api/v1/tickets", {"title": "Phone upgrade", "contact": petr["id"], "assignee": alice.id}, status=201
    )
    await alice.json("PUT", f"/api/v1/tickets/{bobs_jana['id']}/favourite")

    async def ids(query: str) -> list[int]:
        body = await alice.json("GET", f"/api/v1/tickets?{query}")
        return [t["id"] for t in body["items"]]

    assert await ids("") == [given_to_me["id"], bobs_jana["id"], mine_jana["id"]]
    assert await ids("mine=1") == [given_to_me["id"], mine_jana["id"]]
    assert await ids(f"contact={jana['id']}") == [bobs_jana["id"], mine_jana["id"]]
    assert await ids("company=acme") == [bobs_jana["id"], mine_jana["id"]]
    assert await ids("favourite=1") == [bobs_jana["id"]]
    assert await ids("q=phone") == [given_to_me["id"], mine_jana["id"]]
    assert await ids("q=phone&mine=1&company=Acme") == [mine_jana["id"]]
    assert await ids(f"q=%23{mine_jana['id']}") == [mine_jana["id"]]
    # favourites are per agent
    body = await bob.json("GET", "/api/v1/tickets?favourite=1")
    assert body["items"] == []


async def test_favourite_is_idempotent_both_ways(api: Api) -> None:
    alice = await api.agent("alice")
    ticket = await alice.json("POST", "/api/v1/tickets", {"title": "T"}, status=201)
    for _ in range(2):
        assert (await alice.json("PUT", f"/api/v1/tickets/{ticket['id']}/favourite"))["favourite"] is True
    for _ in range(2):
        assert (await alice.json("DELETE", f"/api/v1/tickets/{ticket['id']}/favourite"))["favourite"] is False
    response = await alice.put("/api/v1/tickets/999/favourite")
    assert response.status == 404


async def test_ticket_list_pages(api: Api) -> None:
    alice = await api.agent("alice")
    for i in range(5):
        await alice.json("POST", "/api/v1/tickets", {"title": f"T{i}"}, status=201)
    first = await alice.json("GET", "/api/v1/tickets?limit=3")
    second = await alice.json("GET", f"/api/v1/tickets?limit=3&after={first['next']}")
    assert len(first["items"]) == 3
    assert len(second["items"]) == 2
    assert second["next"] is None


async def test_owner_assigns_a_ticket_and_the_timeline_shows_it(api: Api) -> None:
    alice = await api.agent("alice")
    conversation_id = await api.customer_writes()
    await make_owner(api, conversation_id, alice)
    ticket = await alice.json("POST", "/api/v1/tickets", {"title": "Refund"}, status=201)
    body = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/ticket", {"ticket": ticket["id"]})
    assert body["ticket"]["id"] == ticket["id"]
    # the same ticket again changes nothing and writes no second event
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/ticket", {"ticket": ticket["id"]})
    async with api.store.read() as connection:
        assigned = (
            await connection.execute(select(conversations.c.ticket_id).where(conversations.c.id == conversation_id))
        ).scalar_one()
        events = (
            await connection.execute(
                select(timeline_events.c.kind, timeline_events.c.agent_id, timeline_events.c.data).where(
                    timeline_events.c.conversation_id == conversation_id, timeline_events.c.kind == "ticket_assigned"
                )
            )
        ).all()
    assert assigned == ticket["id"]
    assert len(events) == 1
    assert events[0].agent_id == alice.id
    assert events[0].data["ticket"] == ticket["id"]


async def test_assigning_to_someone_elses_conversation_is_403_and_changes_nothing(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    await make_owner(api, conversation_id, alice)
    ticket = await bob.json("POST", "/api/v1/tickets", {"title": "Refund"}, status=201)
    response = await bob.post(f"/api/v1/conversations/{conversation_id}/ticket", json={"ticket": ticket["id"]})
    assert response.status == 403
    async with api.store.read() as connection:
        row = (
            await connection.execute(select(conversations.c.ticket_id).where(conversations.c.id == conversation_id))
        ).scalar_one()
        events = (
            await connection.execute(
                select(func.count()).select_from(timeline_events).where(timeline_events.c.kind == "ticket_assigned")
            )
        ).scalar_one()
    assert row is None
    assert events == 0


async def test_assigning_an_unknown_ticket_is_422_and_unknown_conversation_404(api: Api) -> None:
    boss = await api.agent("boss", role="supervisor")
    conversation_id = await api.customer_writes()
    response = await boss.post(f"/api/v1/conversations/{conversation_id}/ticket", json={"ticket": 999})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "unknown_ticket"
    ticket = await boss.json("POST", "/api/v1/tickets", {"title": "Refund"}, status=201)
    response = await boss.post("/api/v1/conversations/999999/ticket", json={"ticket": ticket["id"]})
    assert response.status == 404


async def test_every_participant_hears_of_the_assigned_ticket(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    await make_owner(api, conversation_id, alice)
    async with api.store.write() as connection:
        await connection.execute(
            participants.insert().values(
                conversation_id=conversation_id, agent_id=bob.id, role="invited", joined_at=api.clock()
            )
        )
    ticket = await alice.json("POST", "/api/v1/tickets", {"title": "Refund"}, status=201)
    ws = await api.client.ws_connect(f"/api/v1/ws?token={bob.token}")
    assert (await ws.receive_json(timeout=10))["kind"] == "hello"
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/ticket", {"ticket": ticket["id"]})
    while True:
        event = await ws.receive_json(timeout=10)
        if event["kind"] == "conversation.ticket":
            break
    await ws.close()
    assert event["conversation_id"] == conversation_id
    assert event["data"]["ticket"] == ticket["id"]
    assert event["data"]["by"] == alice.id


@pytest.mark.parametrize("q", ["99999999999999999999999", "%23" + str(2**63), "%C2%B2", "%23%C2%B2"])
async def test_a_search_for_a_number_no_ticket_can_have_is_a_text_search(api: Api, q: str) -> None:
    """ "#42" finds ticket 42; a number past 64 bits overflowed the driver and "²" failed int(): both were 500."""
    agent = await api.agent("alice")
    await agent.json("POST", "/api/v1/tickets", {"title": "Invoice 99999999999999999999999 and ²"}, status=201)
    response = await agent.get(f"/api/v1/tickets?q={q}")
    assert response.status == 200, await response.text()
    titles = [item["title"] for item in (await response.json())["items"]]
    assert titles == (["Invoice 99999999999999999999999 and ²"] if q in ("99999999999999999999999", "%C2%B2") else [])


async def test_a_tickets_conversations_are_listed_newest_first_to_any_agent(api: Api) -> None:
    """The ticket page's conversations: those the ticket is assigned to, in pages, whoever asks."""
    boss = await api.agent("boss", role="supervisor")
    alice = await api.agent("alice")  # takes part in none of them
    first = await api.customer_writes(sender="+420600000001")
    second = await api.customer_writes(sender="+420600000002")
    await api.customer_writes(sender="+420600000003")  # another conversation, not this ticket's
    ticket = await boss.json("POST", "/api/v1/tickets", {"title": "Refund"}, status=201)
    other = await boss.json("POST", "/api/v1/tickets", {"title": "Other"}, status=201)
    for conversation_id in (first, second):
        await boss.json("POST", f"/api/v1/conversations/{conversation_id}/ticket", {"ticket": ticket["id"]})
    body = await alice.json("GET", f"/api/v1/tickets/{ticket['id']}/conversations")
    assert [c["id"] for c in body["items"]] == [second, first]
    assert body["next"] is None
    assert body["items"][0]["identity"]["external_id"] == "+420600000002"
    assert {c["ticket"] for c in body["items"]} == {ticket["id"]}
    page = await alice.json("GET", f"/api/v1/tickets/{ticket['id']}/conversations?limit=1")
    rest = await alice.json("GET", f"/api/v1/tickets/{ticket['id']}/conversations?limit=1&after={page['next']}")
    assert [page["items"][0]["id"], rest["items"][0]["id"]] == [second, first]
    assert rest["next"] is None
    assert (await alice.json("GET", f"/api/v1/tickets/{other['id']}/conversations")) == {"items": [], "next": None}


async def test_a_tickets_conversations_refuse_an_unknown_ticket_and_a_foreign_cursor(api: Api) -> None:
    alice = await api.agent("alice")
    for path in ("/api/v1/tickets/999/conversations", "/api/v1/tickets/abc/conversations"):
        response = await alice.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"
    ticket = await alice.json("POST", "/api/v1/tickets", {"title": "Refund"}, status=201)
    response = await alice.get(f"/api/v1/tickets/{ticket['id']}/conversations?after=bogus")
    assert response.status == 422
    assert (await response.json())["error"] == {
        "code": "invalid_cursor",
        "message": "'after' is not a cursor this API handed out",
        "field": "after",
    }
