"""The ``[rooms]`` configuration: how long co-browsing room links work, and the STUN/TURN servers the
two browsers use to reach each other (ADR 0032).

```toml
[rooms]
link_minutes = 60

[[rooms.ice_servers]]                        # STUN: finds each browser's public address
urls = ["stun:stun.example.org:3478"]

[[rooms.ice_servers]]                        # TURN with a fixed user (credential is a secret)
urls = ["turn:turn.example.org:3478"]
username = "channelhub"
credential = "env:TURN_PASSWORD"

[[rooms.ice_servers]]                        # TURN with coturn's use-auth-secret: short-lived
urls = ["turns:turn.example.org:5349"]       # credentials made per room by the hub
shared_secret = "env:TURN_SECRET"
```
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.errors import ConfigError

__all__ = ["IceServer", "RoomsSettings", "ice_for_browsers", "rooms_settings"]

_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True, slots=True, kw_only=True)
class IceServer:
    """One STUN or TURN server. TURN takes ``username`` + ``credential`` or a ``shared_secret``."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None
    shared_secret: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomsSettings:
    link_minutes: int = 60  # a room's links (agent's and customer's) work this long after it is made
    ice_servers: tuple[IceServer, ...] = ()  # none: only addresses the browsers see directly (same network)

    def secrets(self) -> set[str]:
        return {v for s in self.ice_servers for v in (s.credential, s.shared_secret) if v}


def _ice_server(entry: Any, where: str) -> IceServer:
    if not isinstance(entry, dict):
        raise ConfigError(where, "must be a table")
    known = {"urls", "username", "credential", "shared_secret"}
    unknown = set(entry) - known
    if unknown:
        raise ConfigError.unknown(f"{where}.{sorted(unknown)[0]}", known)
    urls = entry.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ConfigError(f"{where}.urls", "must be a list of stun:, stuns:, turn: or turns: URLs")
    for url in urls:
        if not url.startswith(_SCHEMES):
            raise ConfigError(f"{where}.urls", f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
    values = {k: entry.get(k) for k in ("username", "credential", "shared_secret")}
    for key, value in values.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}.{key}", "must be a non-empty string")
    turn = any(u.startswith(("turn:", "turns:")) for u in urls)
    if values["shared_secret"] is not None and (values["username"] or values["credential"]):
        raise ConfigError(f"{where}.shared_secret", "give either shared_secret or username and credential")
    if (values["username"] is None) != (values["credential"] is None):
        raise ConfigError(f"{where}.credential", "username and credential go together")
    if turn and values["shared_secret"] is None and values["credential"] is None:
        raise ConfigError(f"{where}.credential", "a TURN server needs username and credential, or shared_secret")
    return IceServer(urls=tuple(urls), **values)


def rooms_settings(table: Mapping[str, Any]) -> RoomsSettings:
    """``[rooms]`` as read from the file (``env:`` references already replaced)."""
    known = {"link_minutes", "ice_servers"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError.unknown(f"rooms.{sorted(unknown)[0]}", known)
    try:
        raw_minutes = table.get("link_minutes", 60)
        if isinstance(raw_minutes, bool):
            raise ValueError
        minutes = int(raw_minutes)
    except (TypeError, ValueError):
        raise ConfigError("rooms.link_minutes", "must be a whole number of minutes") from None
    if not 1 <= minutes <= 7 * 24 * 60:
        raise ConfigError("rooms.link_minutes", "must be between 1 and 10080 (a week)")
    servers = table.get("ice_servers", [])
    if not isinstance(servers, list):
        raise ConfigError("rooms.ice_servers", "must be a list of tables ([[rooms.ice_servers]])")
    ice = tuple(_ice_server(entry, f"rooms.ice_servers[{i}]") for i, entry in enumerate(servers))
    return RoomsSettings(link_minutes=minutes, ice_servers=ice)


def ice_for_browsers(settings: RoomsSettings, room_id: str, until: datetime) -> list[dict[str, Any]]:
    """The ``iceServers`` a room's browsers get (RTCConfiguration's shape). A ``shared_secret`` server gets
    coturn's time-limited credentials: user ``<expiry unix time>:<room>``, password
    base64(HMAC-SHA1(secret, user)), valid until the room's links expire."""
    servers: list[dict[str, Any]] = []
    for server in settings.ice_servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.shared_secret is not None:
            username = f"{int(until.timestamp())}:{room_id}"
            digest = hmac.new(server.shared_secret.encode(), username.encode(), hashlib.sha1).digest()
            entry |= {"username": username, "credential": base64.b64encode(digest).decode()}
        elif server.credential is not None:
            entry |= {"username": server.username, "credential": server.credential}
        servers.append(entry)
    return servers
