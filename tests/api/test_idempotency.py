"""Idempotency-Key: a retried state change returns the first answer and changes nothing more."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_a_retry_with_the_same_key_returns_the_first_answer(api: Api) -> None:
    alice = await api.agent("alice")
    conversation_id = await api.customer_writes()
    path = f"/api/v1/conversations/{conversation_id}/important"
    first = await alice.post(path, headers={"Idempotency-Key": "k-1"})
    retry = await alice.post(path, headers={"Idempotency-Key": "k-1"})
    assert first.status == 403  # alice does not own it yet: the refusal is the answer, kept too
    assert retry.status == 403
    assert retry.headers.get("Idempotency-Replayed") == "true"
    taken = await alice.post(f"/api/v1/conversations/{conversation_id}/take", headers={"Idempotency-Key": "k-2"})
    again = await alice.post(f"/api/v1/conversations/{conversation_id}/take", headers={"Idempotency-Key": "k-2"})
    assert taken.status == 200
    assert again.status == 200
    assert await again.json() == await taken.json()
    toggled = await alice.post(path, headers={"Idempotency-Key": "k-3"})
    replay = await alice.post(path, headers={"Idempotency-Key": "k-3"})
    assert (await toggled.json())["important"] is True
    assert (await replay.json())["important"] is True  # toggled once, not twice
    history = await alice.json("GET", f"/api/v1/conversations/{conversation_id}/messages")
    kinds = [i["kind"] for i in history["items"] if i["type"] == "event"]
    assert kinds.count("taken") == 1
    assert kinds.count("important") == 1


async def test_the_same_key_on_another_request_is_422(api: Api) -> None:
    alice = await api.agent("alice")
    conversation_id = await api.customer_writes()
    await alice.post(f"/api/v1/conversations/{conversation_id}/take", headers={"Idempotency-Key": "k"})
    reused = await alice.post(f"/api/v1/conversations/{conversation_id}/important", headers={"Idempotency-Key": "k"})
    assert reused.status == 422
    assert (await reused.json())["error"]["code"] == "idempotency_key_reused"


async def test_keys_belong_to_one_agent(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    first = await api.customer_writes(sender="+420600000001")
    second = await api.customer_writes(sender="+420600000002")
    mine = await alice.post(f"/api/v1/conversations/{first}/take", headers={"Idempotency-Key": "same"})
    theirs = await bob.post(f"/api/v1/conversations/{second}/take", headers={"Idempotency-Key": "same"})
    assert mine.status == 200
    assert theirs.status == 200
    assert (await theirs.json())["owner"] == bob.id
