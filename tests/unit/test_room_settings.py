"""``[rooms]``: link lifetime and STUN/TURN servers, with TURN credentials kept as secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from hub.errors import ConfigError
from hub.room_settings import ice_for_browsers
from hub.settings import Settings

ROOMS = """
[rooms]
link_minutes = 15

[[rooms.ice_servers]]
urls = "stun:stun.example.org:3478"

[[rooms.ice_servers]]
urls = ["turn:turn.example.org:3478", "turns:turn.example.org:5349"]
username = "hub"
credential = "env:TURN_PASSWORD"

[[rooms.ice_servers]]
urls = ["turn:relay.example.org:3478"]
shared_secret = "env:TURN_SECRET"
"""


def test_rooms_are_read_with_secrets_from_the_environment(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(ROOMS, env={"TURN_PASSWORD": "pw-1", "TURN_SECRET": "shared-1"})
    assert settings.rooms.link_minutes == 15
    assert settings.rooms.ice_servers[0].urls == ("stun:stun.example.org:3478",)
    assert {"pw-1", "shared-1"} <= settings.secrets()  # redacted from the logs


def test_defaults_and_the_environment(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().rooms.link_minutes == 60
    assert make_settings().rooms.ice_servers == ()
    assert make_settings(env={"CHANNELHUB_ROOMS_LINK_MINUTES": "5"}).rooms.link_minutes == 5


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[rooms]\nlink_minutes = 0\n", "rooms.link_minutes"),
        ("[rooms]\nlink_minutes = 'soon'\n", "rooms.link_minutes"),
        ("[rooms]\nlifetime = 5\n", "rooms.lifetime"),
        ("[[rooms.ice_servers]]\nurls = ['http://x']\n", "rooms.ice_servers[0].urls"),
        ("[[rooms.ice_servers]]\nurls = ['turn:x']\n", "rooms.ice_servers[0].credential"),
        ("[[rooms.ice_servers]]\nurls = ['turn:x']\nusername = 'u'\n", "rooms.ice_servers[0].credential"),
        (
            "[[rooms.ice_servers]]\nurls = ['turn:x']\nshared_secret = 's'\nusername = 'u'\ncredential = 'c'\n",
            "rooms.ice_servers[0].shared_secret",
        ),
        ("[[rooms.ice_servers]]\nurls = ['stun:x']\nport = 1\n", "rooms.ice_servers[0].port"),
    ],
)
def test_a_wrong_rooms_value_names_its_key(make_settings: Callable[..., Settings], toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(toml)
    assert caught.value.key == key


def test_a_shared_secret_gives_time_limited_turn_credentials(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(ROOMS, env={"TURN_PASSWORD": "pw-1", "TURN_SECRET": "shared-1"})
    until = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    stun, fixed, limited = ice_for_browsers(settings.rooms, "room-1", until)
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    assert (fixed["username"], fixed["credential"]) == ("hub", "pw-1")
    assert limited["username"] == f"{int(until.timestamp())}:room-1"
    expected = hmac.new(b"shared-1", limited["username"].encode(), hashlib.sha1).digest()
    assert limited["credential"] == base64.b64encode(expected).decode()
