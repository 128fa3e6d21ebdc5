"""The client's address behind trusted reverse proxies (``[server] trusted_proxies``, ADR 0043).

Behind a proxy every connection comes from the proxy, so ``request.remote`` is the proxy's address. When the
direct peer is one of ``trusted_proxies`` (addresses or CIDR networks), this middleware reads
``X-Forwarded-For`` from the right (the end the trusted proxies wrote), skips the trusted proxies' own
addresses and takes the first address that is not one as the client's; the rest of the request sees it as
``request.remote`` (the login limiter, the audit log, every principal's address). When every address in the
header is a trusted proxy the left-most is the client. Anything else keeps the peer: a peer that is not
trusted (its header is whatever the client wrote), no header, or an entry that is not an IP address before
the client's was found.

``/metrics`` on the main listener never treats a request with a forwarding header as a loopback one
(hub/api/observe.py), whatever address this middleware gives it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["client_address", "ip_of", "parse_networks", "trusted_proxies_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8"`` or ``"192.0.2.7"`` per entry; raises ValueError naming a bad one."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def ip_of(text: str) -> Address | None:
    """The IP address ``text`` names, without its zone (``fe80::1%eth0``), an IPv4-mapped IPv6 address as the
    IPv4 one; None when it is no address. The one reading of a peer's or a forwarded address."""
    try:
        address = ipaddress.ip_address(text.strip().split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack listener sees an IPv4 peer as ::ffff:a.b.c.d
    return address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_address(peer: str | None, forwarded_for: list[str], networks: tuple[Network, ...]) -> str | None:
    """The client's address given the direct ``peer`` and the ``X-Forwarded-For`` values (module docstring)."""
    peer_address = ip_of(peer or "")
    if not networks or peer_address is None or not _trusted(peer_address, networks):
        return peer
    entries = [entry for value in forwarded_for for entry in value.split(",")]
    if not entries:
        return peer
    address: Address | None = None
    for entry in reversed(entries):
        address = ip_of(entry)
        if address is None:
            return peer  # an entry that is no address: the header cannot be read, trust nothing in it
        if not _trusted(address, networks):
            return str(address)
    return str(address)  # every hop was a trusted proxy: the left-most is the farthest known


def trusted_proxies_middleware(networks: tuple[Network, ...]) -> Middleware:
    """Give the rest of the request the client's address as ``request.remote`` (module docstring)."""

    @web.middleware
    async def trusted_proxies(request: web.Request, handler: Handler) -> web.StreamResponse:
        remote = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), networks)
        if remote is None or remote == request.remote:
            return await handler(request)
        return await handler(request.clone(remote=remote))

    return trusted_proxies
