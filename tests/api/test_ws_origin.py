"""A cookie session's WebSocket is accepted only from the hub's own pages; token clients are unaffected."""

from __future__ import annotations

import pytest
from aiohttp import WSServerHandshakeError

from hub.api._origin import origin_allowed
from tests.api.conftest import Api

PUBLIC = "http://127.0.0.1:8080"  # server.public_url of the test configuration


async def _logged_in(api: Api) -> str:
    handle = await api.agent("alice")
    await api.client.post("/api/v1/auth/login", json={"login": "alice", "password": "correct horse battery"})
    return handle.token


async def _hello(api: Api, path: str, origin: str | None) -> None:
    headers = {"Origin": origin} if origin else {}
    ws = await api.client.ws_connect(path, headers=headers)
    try:
        assert (await ws.receive_json(timeout=10))["kind"] == "hello"
    finally:
        await ws.close()


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1:8080.evil.example", "null"])
async def test_a_session_websocket_from_another_origin_is_403(api: Api, origin: str) -> None:
    await _logged_in(api)
    with pytest.raises(WSServerHandshakeError) as refused:
        await api.client.ws_connect("/api/v1/ws", headers={"Origin": origin})
    assert refused.value.status == 403


async def test_a_session_websocket_from_the_public_url_or_the_host_it_was_sent_to_is_accepted(api: Api) -> None:
    await _logged_in(api)
    host = f"{api.client.server.host}:{api.client.server.port}"
    for origin in (PUBLIC, f"http://{host}", None):
        await _hello(api, "/api/v1/ws", origin)


async def test_token_clients_keep_working_with_or_without_an_origin(api: Api) -> None:
    token = await _logged_in(api)
    api.client.session.cookie_jar.clear()
    await _hello(api, f"/api/v1/ws?token={token}", None)
    await _hello(api, f"/api/v1/ws?token={token}", "https://integration.example")


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "hub.example", True),
        ("http://127.0.0.1:8080", None, True),
        ("HTTP://127.0.0.1:8080", None, True),
        ("https://hub.example", "hub.example", True),  # behind a TLS proxy that keeps the Host header
        ("https://hub.example", "other.example", False),
        ("https://evil.example", "hub.example", False),
        ("null", "hub.example", False),
        ("http://127.0.0.1:8081", "127.0.0.1:8080", False),
    ],
)
def test_origin_allowed(origin: str | None, host: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, public_url=PUBLIC, host=host) is allowed
