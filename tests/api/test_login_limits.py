"""Login attempts are limited per login name and per client address, in the database, with back-off."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse

from tests.api.conftest import Api, Clock, MakeApi

RIGHT = "correct horse battery"
LIMITS = """
[auth]
login_attempts = 3
login_address_attempts = 100
login_window_seconds = 600
login_lockout_seconds = 30
login_max_lockout_seconds = 3600
"""


async def _login(api: Api, login: str, password: str) -> ClientResponse:
    return await api.client.post("/api/v1/auth/login", json={"login": login, "password": password})


async def _answer(response: ClientResponse) -> tuple[int, Any, str | None]:
    return response.status, await response.json(), response.headers.get("Retry-After")


async def test_past_the_limit_a_login_is_refused_with_429_and_retry_after_even_with_the_right_password(
    make_api: MakeApi,
) -> None:
    api = await make_api(LIMITS)
    await api.agent("alice")
    for _ in range(3):
        assert (await _login(api, "alice", "guess")).status == 401
    refused = await _login(api, "alice", RIGHT)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "30"
    body = await refused.json()
    assert body["error"]["code"] == "too_many_attempts"
    assert body["error"]["retry_after"] == 30
    api.clock.advance(29)
    assert (await _login(api, "alice", RIGHT)).status == 429
    assert (await _login(api, "alice", RIGHT)).headers["Retry-After"] == "1"
    api.clock.advance(1)
    assert (await _login(api, "alice", RIGHT)).status == 200


async def test_each_lockout_in_a_row_lasts_twice_as_long(make_api: MakeApi) -> None:
    api = await make_api(LIMITS)
    waits = []
    for _ in range(3):
        for _ in range(3):
            assert (await _login(api, "alice", "guess")).status == 401
        refused = await _login(api, "alice", "guess")
        assert refused.status == 429
        waits.append(int(refused.headers["Retry-After"]))
        api.clock.advance(waits[-1])
    assert waits == [30, 60, 120]


async def test_a_successful_login_starts_the_count_again(make_api: MakeApi) -> None:
    api = await make_api(LIMITS)
    await api.agent("alice")
    for _ in range(3):
        for _ in range(2):
            assert (await _login(api, "alice", "guess")).status == 401
        assert (await _login(api, "alice", RIGHT)).status == 200


async def test_unknown_and_known_logins_get_the_same_answers(make_api: MakeApi) -> None:
    api = await make_api(LIMITS)
    await api.agent("alice")
    known = [await _answer(await _login(api, "alice", "guess")) for _ in range(5)]
    unknown = [await _answer(await _login(api, "nobody", "guess")) for _ in range(5)]
    assert known == unknown
    assert [status for status, _, _ in known] == [401, 401, 401, 429, 429]


async def test_one_address_guessing_many_logins_is_limited(make_api: MakeApi) -> None:
    api = await make_api(LIMITS.replace("login_address_attempts = 100", "login_address_attempts = 4"))
    for name in ("a1", "a2", "a3", "a4"):
        assert (await _login(api, name, "guess")).status == 401
    refused = await _login(api, "a5", "guess")
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "too_many_attempts"


async def test_successful_logins_from_one_address_do_not_use_up_its_attempts(make_api: MakeApi) -> None:
    api = await make_api(LIMITS.replace("login_address_attempts = 100", "login_address_attempts = 2"))
    for name in ("a1", "a2", "a3", "a4", "a5"):
        await api.agent(name)  # logs in over HTTP from the same address
    assert (await _login(api, "a1", RIGHT)).status == 200


async def test_the_limit_holds_across_hub_processes_on_one_database(make_api: MakeApi) -> None:
    clock = Clock()
    first = await make_api(LIMITS, clock=clock)
    second = await make_api(LIMITS, clock=clock)
    await first.agent("alice")
    assert (await _login(first, "alice", "guess")).status == 401
    assert (await _login(second, "alice", "guess")).status == 401
    assert (await _login(first, "alice", "guess")).status == 401
    assert (await _login(second, "alice", RIGHT)).status == 429
    assert (await _login(first, "alice", RIGHT)).status == 429


async def test_concurrent_guesses_are_counted_before_any_password_is_checked(make_api: MakeApi) -> None:
    import asyncio

    api = await make_api(LIMITS)
    answers = await asyncio.gather(*(_login(api, "alice", "guess") for _ in range(12)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [401] * 3 + [429] * 9
