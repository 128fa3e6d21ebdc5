"""The outgoing webhooks' admin API: create (with a secret made by the hub), validate, change, delete, list
deliveries with their attempts, replay, resume; configured integrations are the configuration's."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

from hub.store.webhooks_out import get_subscription
from tests.api.conftest import Api
from tests.webhook_receiver import Receiver

CONFIGURED_SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()
CONFIGURED = f"""
[[webhooks_out]]
id = "crm"
url = "http://127.0.0.1:9/hook"
secret = "{CONFIGURED_SECRET}"
events = ["conversation.closed"]

[webhooks_delivery]
first_retry_seconds = 0.01
max_retry_seconds = 0.01
poll_seconds = 0.05
"""


async def until(condition: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError("the condition never became true")
        await asyncio.sleep(0.02)


async def test_an_admin_creates_an_integration_and_sees_its_deliveries_signed_and_delivered(
    make_api: Callable[..., Awaitable[Api]],
) -> None:
    api = await make_api(CONFIGURED)
    root = await api.agent("root", role="admin")
    created = await root.json(
        "POST",
        "/api/v1/webhooks-out",
        {"id": "shop", "url": "http://127.0.0.1:9/placeholder", "events": ["message.created"], "queues": ["support"]},
        status=201,
    )
    assert created["secret"].startswith("whsec_")  # made by the hub, shown this once
    assert (created["source"], created["paused"], created["queues"]) == ("admin", False, ["support"])
    receiver = Receiver(created["secret"])
    await receiver.start()
    try:
        changed = await root.json("PUT", "/api/v1/webhooks-out/shop", {"url": receiver.url})
        assert changed["url"] == receiver.url
        assert "secret" not in changed
        await api.customer_writes(text="where is my parcel?")
        await until(lambda: _true(len(receiver.accepted) == 1))
    finally:
        await receiver.stop()
    (received,) = receiver.accepted
    assert received.type == "message.created"
    assert received.data["message"]["text"] == "where is my parcel?"
    assert received.data["conversation"]["queue"] == "support"
    page = await root.json("GET", "/api/v1/webhooks-out/shop/deliveries")
    (delivery,) = page["items"]
    assert delivery["webhook_id"] == received.webhook_id
    assert delivery["payload"]["type"] == "message.created"
    await until(lambda: _delivered(root))
    listed = await root.json("GET", "/api/v1/webhooks-out")
    assert [w["id"] for w in listed["items"]] == ["crm", "shop"]


async def _true(value: bool) -> bool:
    return value


async def _delivered(root: Any) -> bool:
    page = await root.json("GET", "/api/v1/webhooks-out/shop/deliveries")
    return bool(page["items"][0]["status"] == "delivered" and page["items"][0]["attempt_log"][-1]["status_code"] == 200)


async def test_failed_attempts_show_with_their_error_and_pause_the_endpoint_until_resumed(
    make_api: Callable[..., Awaitable[Api]],
) -> None:
    api = await make_api(CONFIGURED)
    root = await api.agent("root", role="admin")
    await root.json(
        "POST",
        "/api/v1/webhooks-out",
        {"id": "down", "url": "http://127.0.0.1:9/refused", "events": ["message.created"], "pause_after": 2},
        status=201,
    )
    for n in range(3):
        await api.customer_writes(sender=f"+42077700000{n}")

    async def paused() -> bool:
        return bool((await root.json("GET", "/api/v1/webhooks-out/down"))["paused"])

    await until(paused)
    shown = await root.json("GET", "/api/v1/webhooks-out/down")
    assert "consecutive failed attempts" in shown["paused_reason"]
    first = await root.json("GET", "/api/v1/webhooks-out/down/deliveries?limit=2")
    assert len(first["items"]) == 2
    assert first["next"] is not None
    rest = await root.json("GET", f"/api/v1/webhooks-out/down/deliveries?limit=2&after={first['next']}")
    assert len(rest["items"]) == 1
    assert rest["next"] is None
    every = first["items"] + rest["items"]
    assert [d["id"] for d in every] == sorted((d["id"] for d in every), reverse=True)  # newest first
    tried = [d for d in every if d["attempts"]]
    assert tried
    assert all(d["status"] == "pending" and d["last_error"] for d in tried)
    assert all(a["status_code"] is None and a["error"] for d in tried for a in d["attempt_log"])
    resumed = await root.json("POST", "/api/v1/webhooks-out/down/resume")
    assert (resumed["paused"], resumed["consecutive_failures"]) == (False, 0)
    replayed = await root.json("POST", f"/api/v1/webhooks-out/down/deliveries/{every[0]['id']}/replay", status=202)
    assert replayed["status"] == "pending"
    again = await root.json("POST", f"/api/v1/webhooks-out/down/deliveries/{tried[0]['id']}/replay", status=202)
    assert again["attempts"] > 0
    assert len(again["attempt_log"]) == again["attempts"], "the answer shows the delivery with every attempt"
    # the receiver knows a delivery by its webhook-id: that names it as well as its number does
    by_webhook_id = await root.json(
        "POST", f"/api/v1/webhooks-out/down/deliveries/dlv_{every[0]['id']}/replay", status=202
    )
    assert by_webhook_id["id"] == every[0]["id"]


async def test_bad_input_is_refused_with_a_code_and_changes_nothing(make_api: Callable[..., Awaitable[Api]]) -> None:
    api = await make_api(CONFIGURED)
    root = await api.agent("root", role="admin")
    good = {"id": "x", "url": "https://example.org/h", "events": ["message.created"]}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "events": ["message.sent"]}, 422, "invalid_field"),
        ({**good, "events": []}, 422, "invalid_field"),
        ({**good, "url": "ftp://example.org"}, 422, "invalid_field"),
        ({**good, "secret": "plain"}, 422, "invalid_field"),
        ({**good, "queues": ["nowhere"]}, 422, "invalid_field"),
        ({**good, "pause_after": 0}, 422, "invalid_field"),
        ({**good, "colour": "red"}, 422, "unknown_field"),
        ({"url": "https://example.org/h", "events": ["message.created"]}, 422, "invalid_field"),
        ({**good, "id": "crm"}, 409, "webhook_exists"),
    ]
    for body, status, code in cases:
        answer = await root.json("POST", "/api/v1/webhooks-out", body, status=status)
        assert answer["error"]["code"] == code, (body, answer)
    assert await get_subscription(api.store, "x") is None
    refused = await root.json("PUT", "/api/v1/webhooks-out/crm", {"events": ["message.created"]}, status=409)
    assert refused["error"]["code"] == "defined_in_config"
    assert (await root.json("DELETE", "/api/v1/webhooks-out/crm", status=409))["error"]["code"] == "defined_in_config"
    assert (await root.json("GET", "/api/v1/webhooks-out/nope", status=404))["error"]["code"] == "not_found"
    missing = await root.json("POST", "/api/v1/webhooks-out/crm/deliveries/999999/replay", status=404)
    assert missing["error"]["code"] == "not_found"
    for bad in ("dlv_", "dlv_x", "msg_12"):
        answer = await root.json("POST", f"/api/v1/webhooks-out/crm/deliveries/{bad}/replay", status=404)
        assert answer["error"]["code"] == "not_found"
    assert (await root.json("GET", "/api/v1/webhooks-out/crm/deliveries?after=zz", status=422))["error"]["code"] == (
        "invalid_cursor"
    )
    for limit in ("0", "201", "-1"):
        page = await root.json("GET", f"/api/v1/webhooks-out/crm/deliveries?limit={limit}", status=422)
        assert page["error"]["code"] == "invalid_query", limit
    await root.json("POST", "/api/v1/webhooks-out", good, status=201)
    assert (await root.json("PUT", "/api/v1/webhooks-out/x", {"id": "y"}, status=422))["error"][
        "code"
    ] == "invalid_field"
    await root.json("PUT", "/api/v1/webhooks-out/x", {"queues": None})
    await root.json("DELETE", "/api/v1/webhooks-out/x", status=204)
    assert await get_subscription(api.store, "x") is None
