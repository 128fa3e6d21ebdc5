"""Identities through the API: search, pair, unpair, add a new contact in one step."""

from __future__ import annotations

from sqlalchemy import func, select, update

from hub.store.tables import contacts, identities
from tests.api.conftest import Api


async def _identity_id(api: Api, sender: str) -> int:
    async with api.store.read() as connection:
        return int(
            (await connection.execute(select(identities.c.id).where(identities.c.external_id == sender))).scalar_one()
        )


async def test_identity_shows_what_the_channel_knows(api: Api) -> None:
    alice = await api.agent("alice")
    await api.customer_writes(sender="+420600000001")
    identity_id = await _identity_id(api, "+420600000001")
    body = await alice.json("GET", f"/api/v1/identities/{identity_id}")
    assert body["account"] == "wa-test"
    assert body["channel"] == "whatsapp"
    assert body["external_id"] == "+420600000001"
    assert body["display_name"] == "Customer +420600000001"
    assert body["contact"] is None
    assert body["last_inbound_at"] is not None
    assert set(body) >= {"phone", "avatar_url", "first_inbound_at", "subscription"}


async def test_identities_are_found_by_name_external_id_and_contact_name(api: Api) -> None:
    alice = await api.agent("alice")
    await api.customer_writes(sender="+420600000001")
    await api.customer_writes(sender="+420600000002")
    second = await _identity_id(api, "+420600000002")
    await alice.json("POST", f"/api/v1/identities/{second}/contact", {"name": "Zuzana Veselá"}, status=201)

    async def externals(query: str) -> list[str]:
        body = await alice.json("GET", f"/api/v1/identities?{query}")
        return [i["external_id"] for i in body["items"]]

    assert await externals("q=zuzana") == ["+420600000002"]
    assert await externals("q=%2B420600000001") == ["+420600000001"]
    assert await externals("q=customer") == ["+420600000002", "+420600000001"]
    assert await externals("channel=viber") == []
    assert await externals("channel=whatsapp&q=0000001") == ["+420600000001"]
    response = await alice.get("/api/v1/identities?channel=telegram")
    assert response.status == 422


async def test_contacted_filter_keeps_only_identities_that_wrote_to_us(api: Api) -> None:
    alice = await api.agent("alice")
    await api.customer_writes(sender="+420600000001")
    await api.customer_writes(sender="+420600000002")
    async with api.store.write() as connection:
        await connection.execute(
            update(identities).where(identities.c.external_id == "+420600000002").values(first_inbound_at=None)
        )
    body = await alice.json("GET", "/api/v1/identities?contacted=1")
    assert [i["external_id"] for i in body["items"]] == ["+420600000001"]
    body = await alice.json("GET", "/api/v1/identities")
    assert len(body["items"]) == 2


async def test_identity_is_paired_re_paired_and_unpaired(api: Api) -> None:
    alice = await api.agent("alice")
    await api.customer_writes(sender="+420600000001")
    identity_id = await _identity_id(api, "+420600000001")
    jana = await alice.json("POST", "/api/v1/contacts", {"name": "Jana", "company": "Acme"}, status=201)
    eva = await alice.json("POST", "/api/v1/contacts", {"name": "Eva"}, status=201)
    paired = await alice.json("PUT", f"/api/v1/identities/{identity_id}/contact", {"contact": jana["id"]})
    assert paired["contact"] == {"id": jana["id"], "name": "Jana", "company": "Acme"}
    paired = await alice.json("PUT", f"/api/v1/identities/{identity_id}/contact", {"contact": eva["id"]})
    assert paired["contact"]["id"] == eva["id"]
    unpaired = await alice.json("DELETE", f"/api/v1/identities/{identity_id}/contact")
    assert unpaired["contact"] is None
    again = await alice.json("DELETE", f"/api/v1/identities/{identity_id}/contact")
    assert again["contact"] is None


async def test_pairing_with_an_unknown_contact_is_422_and_changes_nothing(api: Api) -> None:
    alice = await api.agent("alice")
    await api.customer_writes(sender="+420600000001")
    identity_id = await _identity_id(api, "+420600000001")
    response = await alice.put(f"/api/v1/identities/{identity_id}/contact", json={"contact": 4242})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "unknown_contact"
    response = await alice.put(f"/api/v1/identities/{identity_id}/contact", json={"contact": "jana"})
    assert response.status == 422
    response = await alice.put(f"/api/v1/identities/{identity_id}/contact", json={})
    assert response.status == 422
    assert (await alice.json("GET", f"/api/v1/identities/{identity_id}"))["contact"] is None


async def test_add_new_contact_creates_and_pairs_in_one_step(api: Api) -> None:
    alice = await api.agent("alice")
    await api.customer_writes(sender="+420600000001")
    identity_id = await _identity_id(api, "+420600000001")
    body = await alice.json(
        "POST", f"/api/v1/identities/{identity_id}/contact", {"name": "Jana", "phone": "+420600000001"}, status=201
    )
    contact = await alice.json("GET", f"/api/v1/contacts/{body['contact']['id']}")
    assert contact["name"] == "Jana"
    assert [i["id"] for i in contact["identities"]] == [identity_id]


async def test_add_new_contact_with_bad_input_or_unknown_identity_writes_nothing(api: Api) -> None:
    alice = await api.agent("alice")
    await api.customer_writes(sender="+420600000001")
    identity_id = await _identity_id(api, "+420600000001")
    response = await alice.post(f"/api/v1/identities/{identity_id}/contact", json={"name": "Jana", "email": "nope"})
    assert response.status == 422
    response = await alice.post("/api/v1/identities/99999/contact", json={"name": "Jana"})
    assert response.status == 404
    async with api.store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(contacts))).scalar_one() == 0
    assert (await alice.json("GET", f"/api/v1/identities/{identity_id}"))["contact"] is None


async def test_unknown_identity_is_404(api: Api) -> None:
    alice = await api.agent("alice")
    contact = await alice.json("POST", "/api/v1/contacts", {"name": "Jana"}, status=201)
    for method, path, body in [
        ("GET", "/api/v1/identities/999", None),
        ("PUT", "/api/v1/identities/999/contact", {"contact": contact["id"]}),
        ("DELETE", "/api/v1/identities/999/contact", None),
    ]:
        response = await alice.request(method, path, json=body)
        assert response.status == 404, (method, path)


async def test_identity_list_pages_newest_first(api: Api) -> None:
    alice = await api.agent("alice")
    for i in range(5):
        await api.customer_writes(sender=f"+42060000000{i}")
    first = await alice.json("GET", "/api/v1/identities?limit=2")
    second = await alice.json("GET", f"/api/v1/identities?limit=2&after={first['next']}")
    third = await alice.json("GET", f"/api/v1/identities?limit=2&after={second['next']}")
    ids = [i["id"] for page in (first, second, third) for i in page["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 5
    assert third["next"] is None
