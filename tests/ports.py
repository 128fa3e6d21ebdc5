"""Loopback ports for servers a test starts later, in its own process or another.

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` comes from the ephemeral range, the same range every
outgoing connection's own end is taken from. Between the moment a test picks such a port and the moment its
server binds it, any connection of the other test worker (to PostgreSQL, to a hub, to a browser) may take it, and
the server fails with "address already in use". So the ports come from below that range, where only servers that
bind on purpose live, and each test worker draws from a block of its own.
"""

from __future__ import annotations

import functools
import os
import random
import socket
from pathlib import Path

__all__ = ["free_port"]

_LOWEST = 20000  # above the well-known services a machine may run (PostgreSQL, Redis, message brokers)
_BLOCK = 4000  # ports per test worker
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_given: set[int] = set()  # never the same port twice in one process: two picks before either server binds


def free_port() -> int:
    """A loopback port nobody listens on now, outside the kernel's ephemeral range where it can tell."""
    low, high = _block()
    for _ in range(200):
        port = random.randint(low, high - 1)
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    with socket.socket() as probe:  # every pick in the block taken: let the kernel choose
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@functools.cache
def _block() -> tuple[int, int]:
    """This test worker's ports: gw0 the first block, gw1 the next, ...; all below the ephemeral range. Read once:
    neither the worker nor the kernel's range changes while the tests run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    ceiling = _ephemeral_low()
    blocks = max((ceiling - _LOWEST) // _BLOCK, 1)
    low = _LOWEST + (index % blocks) * _BLOCK
    return low, min(low + _BLOCK, ceiling) if ceiling > low else low + _BLOCK


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
