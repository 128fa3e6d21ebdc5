"""Contacts (CRM-lite) through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from hub.store.tables import contacts, identities
from tests.api.conftest import Api


async def _count_contacts(api: Api) -> int:
    async with api.store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(contacts))).scalar_one())


async def test_contact_is_created_read_and_edited(api: Api) -> None:
    alice = await api.agent("alice")
    created = await alice.json(
        "POST",
        "/api/v1/contacts",
        {"name": "Jana Nováková", "company": "Acme", "phone": "+420 777 123-456", "email": "jana@acme.test"},
        status=201,
    )
    assert created["phone"] == "+420777123456"
    assert created["company"] == "Acme"
    shown = await alice.json("GET", f"/api/v1/contacts/{created['id']}")
    assert shown["name"] == "Jana Nováková"
    assert shown["identities"] == []
    edited = await alice.json(
        "PUT", f"/api/v1/contacts/{created['id']}", {"company": "Globex", "email": None, "time_zone": "Europe/Prague"}
    )
    assert edited["company"] == "Globex"
    assert edited["email"] is None
    assert edited["name"] == "Jana Nováková"
    assert edited["time_zone"] == "Europe/Prague"


async def test_contacts_are_found_by_name_phone_or_company(api: Api) -> None:
    alice = await api.agent("alice")
    for name, company, phone in [
        ("Jana Nováková", "Acme", "+420777123456"),
        ("Petr Svoboda", "Globex", "+420608000111"),
        ("Eva Malá", "Acme Labs", None),
    ]:
        await alice.json("POST", "/api/v1/contacts", {"name": name, "company": company, "phone": phone}, status=201)

    async def names(q: str) -> list[str]:
        body = await alice.json("GET", f"/api/v1/contacts?q={q}")
        return [c["name"] for c in body["items"]]

    assert await names("svob") == ["Petr Svoboda"]
    assert await names("ACME") == ["Eva Malá", "Jana Nováková"]
    assert await names("%2B420 777") == ["Jana Nováková"]
    assert await names("608") == ["Petr Svoboda"]
    assert await names("nobody") == []
    assert await names("%25") == []  # a literal % is not a wildcard


async def test_contact_list_pages_with_a_cursor_and_loses_nobody(api: Api) -> None:
    alice = await api.agent("alice")
    for i in range(7):
        await alice.json("POST", "/api/v1/contacts", {"name": f"Same Name {i % 2}"}, status=201)
    seen: list[int] = []
    path = "/api/v1/contacts?limit=3"
    while True:
        body = await alice.json("GET", path)
        seen += [c["id"] for c in body["items"]]
        if body["next"] is None:
            break
        path = f"/api/v1/contacts?limit=3&after={body['next']}"
    assert len(seen) == 7
    assert len(set(seen)) == 7


async def test_bad_cursor_and_bad_limit_are_422(api: Api) -> None:
    alice = await api.agent("alice")
    response = await alice.get("/api/v1/contacts?after=not-a-cursor")
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_cursor"
    response = await alice.get("/api/v1/contacts?limit=100000")
    assert response.status == 422


async def _error(response: Any) -> dict[str, Any]:
    body = await response.json()
    return dict(body["error"])


async def test_invalid_contact_input_is_422_naming_the_field_and_writes_nothing(api: Api) -> None:
    alice = await api.agent("alice")
    cases = [
        ({}, "name", "missing_field"),
        ({"name": "   "}, "name", "invalid_field"),
        ({"name": "x" * 201}, "name", "invalid_field"),
        ({"name": "Ok", "email": "not-an-address"}, "email", "invalid_field"),
        ({"name": "Ok", "phone": "call me maybe"}, "phone", "invalid_field"),
        ({"name": "Ok", "time_zone": "Mars/Olympus"}, "time_zone", "invalid_field"),
        ({"name": "Ok", "time_zone": "Europe"}, "time_zone", "invalid_field"),  # a folder of zones: was a 500
        ({"name": "Ok", "company": 12}, "company", "invalid_field"),
        ({"name": "Ok", "shoe_size": 44}, "shoe_size", "unknown_field"),
    ]
    for body, field, code in cases:
        response = await alice.post("/api/v1/contacts", json=body)
        assert response.status == 422, body
        error = await _error(response)
        assert (error["field"], error["code"]) == (field, code)
    response = await alice.post("/api/v1/contacts", json=["not", "an", "object"])
    assert response.status == 400
    assert await _count_contacts(api) == 0


async def test_failed_edit_leaves_the_contact_unchanged(api: Api) -> None:
    alice = await api.agent("alice")
    created = await alice.json("POST", "/api/v1/contacts", {"name": "Jana", "company": "Acme"}, status=201)
    response = await alice.put(f"/api/v1/contacts/{created['id']}", json={"company": "Globex", "email": "bad"})
    assert response.status == 422
    assert (await alice.json("GET", f"/api/v1/contacts/{created['id']}"))["company"] == "Acme"


async def test_unknown_contact_is_404(api: Api) -> None:
    alice = await api.agent("alice")
    for method, path in [
        ("GET", "/api/v1/contacts/999"),
        ("PUT", "/api/v1/contacts/999"),
        ("GET", "/api/v1/contacts/999/conversations"),
        ("GET", "/api/v1/contacts/abc"),
    ]:
        response = await alice.request(method, path, json={"name": "x"})
        assert response.status == 404, (method, path)


async def test_deleting_a_contact_needs_a_supervisor_and_unpairs_its_identities(api: Api) -> None:
    alice = await api.agent("alice")
    boss = await api.agent("boss", role="supervisor")
    await api.customer_writes(sender="+420600000001")
    identity = (await alice.json("GET", "/api/v1/identities"))["items"][0]
    contact = await alice.json("POST", f"/api/v1/identities/{identity['id']}/contact", {"name": "Jana"}, status=201)
    contact_id = contact["contact"]["id"]
    response = await alice.delete(f"/api/v1/contacts/{contact_id}")
    assert response.status == 403
    assert await _count_contacts(api) == 1
    response = await boss.delete(f"/api/v1/contacts/{contact_id}")
    assert response.status == 204
    assert await _count_contacts(api) == 0
    async with api.store.read() as connection:
        paired = (await connection.execute(select(identities.c.contact_id))).scalars().all()
    assert paired == [None]


async def test_contact_conversations_come_through_every_paired_identity(api: Api) -> None:
    alice = await api.agent("alice")
    first = await api.customer_writes(sender="+420600000001")
    second = await api.customer_writes(sender="+420600000002")
    await api.customer_writes(sender="+420600000003")  # not paired
    contact = await alice.json("POST", "/api/v1/contacts", {"name": "Jana"}, status=201)
    found = (await alice.json("GET", "/api/v1/identities?q=60000000"))["items"]
    by_external = {i["external_id"]: i["id"] for i in found}
    for sender in ("+420600000001", "+420600000002"):
        await alice.json("PUT", f"/api/v1/identities/{by_external[sender]}/contact", {"contact": contact["id"]})
    body = await alice.json("GET", f"/api/v1/contacts/{contact['id']}/conversations")
    assert sorted(c["id"] for c in body["items"]) == sorted([first, second])
    assert body["next"] is None
    page = await alice.json("GET", f"/api/v1/contacts/{contact['id']}/conversations?limit=1")
    assert len(page["items"]) == 1
    rest = await alice.json("GET", f"/api/v1/contacts/{contact['id']}/conversations?limit=1&after={page['next']}")
    assert {page["items"][0]["id"], rest["items"][0]["id"]} == {first, second}
    detail = await alice.json("GET", f"/api/v1/contacts/{contact['id']}")
    assert sorted(i["external_id"] for i in detail["identities"]) == ["+420600000001", "+420600000002"]


async def test_a_page_of_contacts_carries_each_contacts_identities(api: Api) -> None:
    alice = await api.agent("alice")
    await api.customer_writes(sender="+420600000001")
    await api.customer_writes(sender="+420600000002")
    jana = await alice.json("POST", "/api/v1/contacts", {"name": "Jana"}, status=201)
    await alice.json("POST", "/api/v1/contacts", {"name": "Karel"}, status=201)
    for identity in (await alice.json("GET", "/api/v1/identities"))["items"]:
        await alice.json("PUT", f"/api/v1/identities/{identity['id']}/contact", {"contact": jana["id"]})
    body = await alice.json("GET", "/api/v1/contacts")
    by_name = {c["name"]: c for c in body["items"]}
    assert sorted(i["external_id"] for i in by_name["Jana"]["identities"]) == ["+420600000001", "+420600000002"]
    assert all(i["last_inbound_at"] for i in by_name["Jana"]["identities"])
    assert by_name["Karel"]["identities"] == []
    detail = await alice.json("GET", f"/api/v1/contacts/{jana['id']}")
    assert by_name["Jana"]["identities"] == detail["identities"]


async def test_contacts_need_authentication(api: Api) -> None:
    response = await api.client.get("/api/v1/contacts")
    assert response.status == 401
    response = await api.client.post("/api/v1/contacts", json={"name": "Jana"})
    assert response.status == 401
    assert await _count_contacts(api) == 0


async def test_retried_create_with_the_same_idempotency_key_creates_one_contact(api: Api) -> None:
    alice = await api.agent("alice")
    key = {"Idempotency-Key": "create-jana-1"}
    first = await alice.post("/api/v1/contacts", json={"name": "Jana"}, headers=key)
    again = await alice.post("/api/v1/contacts", json={"name": "Jana"}, headers=key)
    assert (first.status, again.status) == (201, 201)
    assert (await first.json())["id"] == (await again.json())["id"]
    assert await _count_contacts(api) == 1
