"""Login, sessions, bearer tokens, CSRF, logout and presence, through HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api


async def test_login_gives_a_bearer_token_and_an_httponly_strict_session_cookie(api: Api) -> None:
    handle = await api.agent("alice")
    response = await api.client.post("/api/v1/auth/login", json={"login": "alice", "password": "correct horse battery"})
    assert response.status == 200
    body = await response.json()
    assert body["agent"]["login"] == "alice"
    assert body["agent"]["presence"]["state"] == "offline"
    assert body["token"]
    assert body["csrf_token"]
    cookie = response.headers["Set-Cookie"]
    assert "channelhub_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    me = await handle.json("GET", "/api/v1/me")
    assert me["id"] == handle.id


async def test_wrong_password_or_unknown_login_is_401(api: Api) -> None:
    await api.agent("alice")
    for body in ({"login": "alice", "password": "nope"}, {"login": "bob", "password": "x"}):
        response = await api.client.post("/api/v1/auth/login", json=body)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"login": "alice"}, "password"),
        ({"password": "secret words"}, "login"),
        ({}, "login"),
        ({"login": "alice", "password": 7}, "password"),
        ({"login": "", "password": "secret words"}, "login"),
    ],
)
async def test_a_login_without_its_fields_is_422_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.client.post("/api/v1/auth/login", json=body)
    assert response.status == 422
    assert (await response.json())["error"] | {"message": ""} == {
        "code": "invalid_field",
        "field": field,
        "message": "",
    }


async def test_requests_without_credentials_or_with_a_bad_token_are_401(api: Api) -> None:
    response = await api.client.get("/api/v1/me")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthenticated"
    response = await api.client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert response.status == 401


async def test_cookie_session_needs_the_csrf_header_for_changes(api: Api) -> None:
    await api.agent("alice")
    login = await api.client.post("/api/v1/auth/login", json={"login": "alice", "password": "correct horse battery"})
    csrf = (await login.json())["csrf_token"]
    # the test client keeps the cookie, as a browser would
    assert (await api.client.get("/api/v1/me")).status == 200
    refused = await api.client.put("/api/v1/me/presence", json={"state": "ready"})
    assert refused.status == 401
    assert (await api.client.get("/api/v1/me")).status == 200
    assert (await (await api.client.get("/api/v1/me")).json())["presence"]["state"] == "offline"
    wrong = await api.client.put("/api/v1/me/presence", json={"state": "ready"}, headers={"X-CSRF-Token": "guess"})
    assert wrong.status == 401
    ok = await api.client.put("/api/v1/me/presence", json={"state": "ready"}, headers={"X-CSRF-Token": csrf})
    assert ok.status == 200
    assert (await ok.json())["presence"]["state"] == "ready"


async def test_logout_of_a_bearer_token_revokes_it(api: Api) -> None:
    handle = await api.agent("alice")
    response = await handle.post("/api/v1/auth/logout")
    assert response.status == 204
    assert (await handle.get("/api/v1/me")).status == 401


async def test_logout_of_a_session_ends_it(api: Api) -> None:
    await api.agent("alice")
    login = await api.client.post("/api/v1/auth/login", json={"login": "alice", "password": "correct horse battery"})
    csrf = (await login.json())["csrf_token"]
    session_cookie = login.cookies["channelhub_session"].value
    response = await api.client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status == 204
    again = await api.client.get("/api/v1/me", cookies={"channelhub_session": session_cookie})
    assert again.status == 401


async def test_logging_out_sets_the_agent_offline_and_gives_their_offer_to_the_next_agent(api: Api) -> None:
    """An agent who logged out sees no offers: one left with them would run out and pause them while the
    customer waited the whole offer time."""
    alice = await api.agent("alice", ready=True)
    conversation = await api.customer_writes()
    await api.sweep()
    offered = await alice.json("GET", f"/api/v1/conversations/{conversation}")
    assert (offered["state"], offered["offered_to"]) == ("offered", alice.id)
    bob = await api.agent("bob", ready=True)

    response = await alice.post("/api/v1/auth/logout")
    assert response.status == 204

    agents = {
        a["login"]: a
        for a in (await (await api.agent("sue", role="supervisor")).json("GET", "/api/v1/agents"))["items"]
    }
    assert agents["alice"]["presence"]["state"] == "offline"
    now = await bob.json("GET", f"/api/v1/conversations/{conversation}")
    assert (now["state"], now["offered_to"]) == ("offered", bob.id)
    # logging in again starts offline, as any login does; nothing was paused for a missed offer
    again = await api.client.post("/api/v1/auth/login", json={"login": "alice", "password": "correct horse battery"})
    assert (await again.json())["agent"]["presence"] == {
        "state": "offline",
        "reason": None,
        "paid": None,
        "since": agents["alice"]["presence"]["since"],
    }


async def test_tokens_expire_after_the_session_lifetime(api: Api) -> None:
    handle = await api.agent("alice")
    api.clock.advance(api.settings.auth.session_hours * 3600 + 1)
    assert (await handle.get("/api/v1/me")).status == 401


async def test_an_agent_who_logs_in_is_not_ready_until_they_say_so(api: Api) -> None:
    handle = await api.agent("alice")
    assert (await handle.json("GET", "/api/v1/me"))["presence"]["state"] == "offline"
    paused = await handle.json("PUT", "/api/v1/me/presence", {"state": "paused", "reason": "lunch", "paid": False})
    assert paused["presence"] == {
        "state": "paused",
        "reason": "lunch",
        "paid": False,
        "since": paused["presence"]["since"],
    }
    ready = await handle.json("PUT", "/api/v1/me/presence", {"state": "ready"})
    assert ready["presence"]["state"] == "ready"
    assert ready["presence"]["reason"] is None


async def test_unknown_presence_state_is_422_and_changes_nothing(api: Api) -> None:
    handle = await api.agent("alice")
    response = await handle.put("/api/v1/me/presence", json={"state": "asleep"})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_presence"
    assert (await handle.json("GET", "/api/v1/me"))["presence"]["state"] == "offline"
