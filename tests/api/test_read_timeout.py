"""A request body that stops arriving is answered 408 and its connection closed, over a real socket."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from hub.api.server import create_app
from hub.model import Role
from hub.settings import Settings
from hub.store import Store
from hub.store.agents import create_agent

BODY = b'{"login": "alice", "password": "correct horse battery"}'


def _head(length: int) -> bytes:
    return (
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _everything(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it closes the connection (bounded, so a hang fails the test)."""
    return await asyncio.wait_for(reader.read(), timeout=30)


@pytest.fixture
async def server(aiohttp_client: Any, make_settings: Callable[..., Settings], database_url: str) -> Any:
    """A hub whose bodies may pause 1.5 s, served on loopback; alice can log in."""
    settings = make_settings(database_url=database_url)
    settings = dataclasses.replace(settings, server=dataclasses.replace(settings.server, read_timeout=1.5))
    client = await aiohttp_client(create_app(settings))
    from hub.api.keys import CLOCK, STORE

    store: Store = client.app[STORE]
    await create_agent(
        store, login="alice", password="correct horse battery", role=Role.AGENT, now=client.app[CLOCK](), queues=()
    )
    return client.server


async def test_a_body_that_stalls_halfway_is_answered_408_and_the_connection_closed(server: Any) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(_head(len(BODY)) + BODY[: len(BODY) // 2])
        await writer.drain()
        answer = await _everything(reader)  # returns only once the server has closed the connection
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"request_timeout"' in answer


async def test_a_slow_but_steady_body_is_read(server: Any) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(_head(len(BODY)))
        for i in range(0, len(BODY), 10):
            writer.write(BODY[i : i + 10])
            await writer.drain()
            await asyncio.sleep(0.3)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
