"""Behind ``[server] trusted_proxies`` the client's address is read from ``X-Forwarded-For`` (ADR 0043): the
login limiter counts each client apart and the audit log names the client, not the proxy. The test client
connects from 127.0.0.1, which plays the proxy."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import make_mocked_request

from hub.api.observe import _loopback
from hub.api.proxies import client_address, parse_networks
from hub.errors import ConfigError
from tests.api.conftest import Api, MakeApi

LIMITS = """
[auth]
login_attempts = 100
login_address_attempts = 2
"""
PROXY = {"CHANNELHUB_SERVER_TRUSTED_PROXIES": "127.0.0.1"}


async def _login(api: Api, login: str, forwarded_for: str | None = None) -> ClientResponse:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return await api.client.post(
        "/api/v1/auth/login", json={"login": login, "password": "wrong guess"}, headers=headers
    )


async def _failure_addresses(api: Api) -> list[str]:
    admin = await api.agent("auditor", role="admin")
    body: Any = await admin.json("GET", "/api/v1/audit?limit=200&action=auth.login_failed")
    return [item["address"] for item in reversed(body["items"])]


async def test_behind_a_trusted_proxy_each_client_has_its_own_address_limit(make_api: MakeApi) -> None:
    api = await make_api(LIMITS, env=PROXY)
    for name in ("a1", "a2"):
        assert (await _login(api, name, "203.0.113.9")).status == 401
    assert (await _login(api, "a3", "203.0.113.9")).status == 429
    assert (await _login(api, "a4", "198.51.100.4")).status == 401  # another client is not locked out


async def test_without_trusted_proxies_the_header_is_ignored_and_the_peer_counts(make_api: MakeApi) -> None:
    api = await make_api(LIMITS)
    for name, address in (("a1", "203.0.113.9"), ("a2", "198.51.100.4")):
        assert (await _login(api, name, address)).status == 401
    assert (await _login(api, "a3", "192.0.2.1")).status == 429


async def test_the_audit_log_names_the_right_most_address_that_is_no_trusted_proxy(make_api: MakeApi) -> None:
    api = await make_api(env={"CHANNELHUB_SERVER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    await _login(api, "a1", "192.0.2.66, 203.0.113.9, 10.1.2.3")  # a client's own claim, the client, a proxy
    await _login(api, "a2", "not-an-address, 203.0.113.10")  # what the client wrote is not read
    await _login(api, "a3", "203.0.113.11, not-an-address")  # unreadable where it matters: the peer
    await _login(api, "a4", "10.0.0.5, 10.0.0.6")  # all proxies: the farthest
    await _login(api, "a5")  # no header: the peer
    assert await _failure_addresses(api) == ["203.0.113.9", "203.0.113.10", "127.0.0.1", "10.0.0.5", "127.0.0.1"]


async def test_a_peer_that_is_not_trusted_cannot_choose_its_address(make_api: MakeApi) -> None:
    api = await make_api(env={"CHANNELHUB_SERVER_TRUSTED_PROXIES": "10.0.0.1"})
    await _login(api, "a1", "203.0.113.9")
    assert await _failure_addresses(api) == ["127.0.0.1"]


async def test_a_forwarded_request_is_never_a_loopback_one_for_metrics(make_api: MakeApi) -> None:
    api = await make_api(env=PROXY)
    refused = await api.client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "metrics_loopback_only"
    assert (await api.client.get("/metrics")).status == 200


def test_the_setting_takes_a_list_and_refuses_what_is_no_address(make_settings: Any) -> None:
    settings = make_settings(env={"CHANNELHUB_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1,"})
    assert settings.server.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32")
    assert make_settings().server.trusted_proxies == ()
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        make_settings(env={"CHANNELHUB_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})


def test_an_ipv4_peer_seen_on_a_dual_stack_listener_is_still_trusted() -> None:
    networks = parse_networks(["127.0.0.1"])
    assert client_address("::ffff:127.0.0.1", ["203.0.113.9"], networks) == "203.0.113.9"
    assert client_address("2001:db8::1", ["203.0.113.9"], networks) == "2001:db8::1"


def test_metrics_reads_a_peer_as_the_proxies_middleware_does() -> None:
    """One reading of a peer's address: its zone dropped, an IPv4-mapped one as IPv4 (so a dual-stack listener's
    loopback client is a loopback one for /metrics, as 127.0.0.1 is)."""

    def peer(remote: str) -> Any:
        return make_mocked_request("GET", "/metrics").clone(remote=remote)

    assert _loopback(peer("::ffff:127.0.0.1"))
    assert _loopback(peer("::1%lo"))
    assert _loopback(peer("127.0.0.1"))
    assert not _loopback(peer("::ffff:203.0.113.9"))
    assert not _loopback(peer("not an address"))
