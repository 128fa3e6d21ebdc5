"""The admin view of accounts reads each provider's declared facts: a hand-installed fifth adapter
(``tests.fakes.RelayAdapter``) shows its address and hides its secrets like the real ones."""

from __future__ import annotations

from hub.registry import adapters_installed
from tests.api.conftest import MakeApi
from tests.fakes import RelayAdapter

RELAY = """
[[accounts]]
id = "relay-main"
channel = "whatsapp"
provider = "relay"
queue = "support"
relay_key = "rk-public"
relay_secret = "rs-very-secret"
line = "+15550002222"
"""


async def test_an_installed_adapter_s_accounts_show_their_declared_address_and_no_secret(make_api: MakeApi) -> None:
    with adapters_installed(RelayAdapter):
        api = await make_api(RELAY)
        boss = await api.agent("boss", role="admin")
        response = await boss.get("/api/v1/accounts")
        assert response.status == 200
        raw = await response.text()
        items = {item["id"]: item for item in (await response.json())["items"]}
    assert "rs-very-secret" not in raw
    assert "test-auth-token" not in raw
    relay = items["relay-main"]
    assert (relay["channel"], relay["provider"], relay["address"]) == ("whatsapp", "relay", "+15550002222")
    assert relay["health"]["state"] == "silent"
    assert items["wa-test"]["address"] == "+15550001111"  # the real adapters' address is declared the same way
