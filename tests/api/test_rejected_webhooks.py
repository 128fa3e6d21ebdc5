"""GET /api/v1/webhooks/rejected: the signed deliveries the hub could never use, for admins."""

from __future__ import annotations

import base64
from datetime import timedelta

from hub.store.dead_letters import keep_dead_letter
from tests.api.conftest import START, Api


async def _keep(api: Api, n: int, *, body: bytes = b"{not json", seconds: int = 0) -> int:
    return await keep_dead_letter(
        api.store,
        channel="messenger",
        account_id="fb-main" if n % 2 else None,
        received_at=START + timedelta(seconds=seconds),
        reason_code="invalid_json",
        reason=f"the body is not JSON ({n})",
        body=body,
    )


async def test_admins_read_rejected_deliveries_newest_first(api: Api) -> None:
    root = await api.agent("root", role="admin")
    first = await _keep(api, 1, seconds=1)
    second = await _keep(api, 2, body=b'{"object":"page","entry":[[[]]]}', seconds=2)
    body = await root.json("GET", "/api/v1/webhooks/rejected")
    assert [item["id"] for item in body["items"]] == [second, first]
    newest = body["items"][0]
    assert newest == {
        "id": second,
        "channel": "messenger",
        "account": None,
        "received_at": (START + timedelta(seconds=2)).isoformat(),
        "reason_code": "invalid_json",
        "reason": "the body is not JSON (2)",
        "body": '{"object":"page","entry":[[[]]]}',
        "body_base64": None,
        "size": 32,
    }
    assert body["items"][1]["account"] == "fb-main"
    assert body["next"] is None


async def test_pages_follow_the_cursor_to_the_oldest(api: Api) -> None:
    root = await api.agent("root", role="admin")
    kept = [await _keep(api, n, seconds=n // 2) for n in range(7)]  # pairs share a received time
    seen: list[int] = []
    path = "/api/v1/webhooks/rejected?limit=3"
    while True:
        page = await root.json("GET", path)
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        if page["next"] is None:
            break
        path = f"/api/v1/webhooks/rejected?limit=3&after={page['next']}"
    assert seen == list(reversed(kept))


async def test_a_body_that_is_not_utf8_is_also_given_exactly(api: Api) -> None:
    root = await api.agent("root", role="admin")
    raw = b"\xff\x00binary"
    await _keep(api, 1, body=raw)
    [item] = (await root.json("GET", "/api/v1/webhooks/rejected"))["items"]
    assert base64.b64decode(item["body_base64"]) == raw
    assert item["size"] == len(raw)
    assert item["body"].endswith("binary")


async def test_only_admins_read_them(api: Api) -> None:
    await _keep(api, 1)
    for role in ("agent", "supervisor"):
        caller = await api.agent(f"a-{role}", role=role)
        response = await caller.get("/api/v1/webhooks/rejected")
        assert response.status == 403
    api.client.session.cookie_jar.clear()  # the logins above left a session cookie
    response = await api.client.get("/api/v1/webhooks/rejected")
    assert response.status == 401


async def test_a_cursor_we_did_not_hand_out_is_422(api: Api) -> None:
    root = await api.agent("root", role="admin")
    response = await root.get("/api/v1/webhooks/rejected?after=not-a-cursor")
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_cursor"


async def test_a_signed_twilio_form_the_hub_cannot_use_is_listed(api: Api) -> None:
    from adapters.twilio_whatsapp import sign

    root = await api.agent("root", role="admin")
    body = b"Body=hi&From=whatsapp%3A%2B447700900123&To=whatsapp%3A%2B15550001111"
    url = api.settings.server.public_url.rstrip("/") + "/webhooks/twilio"
    signature = sign(
        url, [("Body", "hi"), ("From", "whatsapp:+447700900123"), ("To", "whatsapp:+15550001111")], "test-auth-token"
    )
    response = await api.client.post(
        "/webhooks/twilio",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status == 200
    [item] = (await root.json("GET", "/api/v1/webhooks/rejected"))["items"]
    assert (item["channel"], item["account"], item["reason_code"], item["body"]) == (
        "whatsapp",
        "wa-test",
        "missing_field",
        body.decode(),
    )
