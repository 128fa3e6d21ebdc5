"""Co-browsing rooms through the API, on both engines: creating one sends the customer its link under
the outbound rules; only the room's agent and the holder of its customer token join; links expire;
the signalling socket relays between exactly two parties."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy import select

from hub.store.tables import messages, rooms
from tests.api.conftest import AgentHandle, Api
from tests.api.test_tickets import make_owner

TURN = """
[rooms]
link_minutes = 30

[[rooms.ice_servers]]
urls = ["stun:stun.example.org:3478"]

[[rooms.ice_servers]]
urls = ["turn:turn.example.org:3478"]
shared_secret = "turn-shared-secret"
"""


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _room(api: Api) -> tuple[AgentHandle, int, dict[str, Any]]:
    alice = await api.agent("alice")
    conversation_id = await api.customer_writes(text="where do I click?")
    await make_owner(api, conversation_id, alice)
    room = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/rooms", status=201)
    return alice, conversation_id, room


async def test_a_room_is_made_and_its_link_sent_to_the_customer(make_api: Any) -> None:
    api = await make_api(TURN)
    _, conversation_id, room = await _room(api)
    assert set(room) >= {"id", "agent_url", "customer_url", "expires_at"}
    assert datetime.fromisoformat(room["expires_at"]) == api.clock() + timedelta(minutes=30)
    assert room["agent_url"] == f"{api.settings.server.public_url.rstrip('/')}/rooms/{room['id']}"
    assert room["customer_url"].startswith(room["agent_url"] + "?token=")
    assert room["warnings"] == []
    async with api.store.read() as connection:
        text = (await connection.execute(select(messages.c.text).where(messages.c.id == room["message"]))).scalar_one()
        stored = (await connection.execute(select(rooms).where(rooms.c.id == room["id"]))).mappings().one()
    assert room["customer_url"] in text
    token = room["customer_url"].split("token=", 1)[1]
    assert token not in str(dict(stored))  # only its hash is kept
    assert stored["conversation_id"] == conversation_id


async def test_a_refused_invitation_is_reported_and_the_room_still_works(api: Api) -> None:
    alice = await api.agent("alice")
    api.clock.advance(-25 * 3600)
    conversation_id = await api.customer_writes()  # 25 hours ago: the WhatsApp window has closed
    api.clock.advance(25 * 3600)
    await make_owner(api, conversation_id, alice)
    room = await alice.json("POST", f"/api/v1/conversations/{conversation_id}/rooms", status=201)
    assert room["message"] is None
    [warning] = room["warnings"]
    assert warning["code"] == "window_closed"
    assert (await api.client.get(_path(room["customer_url"]))).status == 200


async def test_only_an_agent_who_may_act_on_the_conversation_makes_a_room(api: Api) -> None:
    alice = await api.agent("alice")
    bob = await api.agent("bob")
    conversation_id = await api.customer_writes()
    await make_owner(api, conversation_id, alice)
    answer = await bob.json("POST", f"/api/v1/conversations/{conversation_id}/rooms", status=403)
    assert answer["error"]["code"] == "forbidden"
    await alice.json("POST", "/api/v1/conversations/999999/rooms", status=404)
    async with api.store.read() as connection:
        assert (await connection.execute(select(rooms.c.id))).first() is None


async def test_the_room_page_opens_for_its_two_parties_only(api: Api) -> None:
    alice, _, room = await _room(api)
    bob = await api.agent("bob")
    customer = await api.client.get(_path(room["customer_url"]))
    assert customer.status == 200
    assert customer.content_type == "text/html"
    assert customer.headers["Referrer-Policy"] == "no-referrer"
    assert (await alice.get(_path(room["agent_url"]))).status == 200
    assert (await bob.get(_path(room["agent_url"]))).status == 403
    api.client.session.cookie_jar.clear()  # the logins above left a session cookie in the test client
    assert (await api.client.get(_path(room["agent_url"]))).status == 401
    assert (await api.client.get(_path(room["agent_url"]) + "?token=guess")).status == 403
    assert (await api.client.get("/rooms/no-such-room?token=x")).status == 404


async def test_links_expire(api: Api) -> None:
    alice, _, room = await _room(api)
    api.clock.advance(60 * 60)  # the default: links work for 60 minutes
    assert (await api.client.get(_path(room["customer_url"]))).status == 410
    assert (await alice.get(_path(room["agent_url"]))).status == 410
    socket = _path(room["customer_url"]).replace("?", "/ws?")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect(socket)
    assert refused.value.status == 410


async def test_signalling_relays_between_the_agent_and_the_customer_and_refuses_a_third(make_api: Any) -> None:
    api = await make_api(TURN)
    alice, _, room = await _room(api)
    bob = await api.agent("bob")
    agent_socket = f"/rooms/{room['id']}/ws"
    customer_socket = _path(room["customer_url"]).replace("?", "/ws?")

    agent = await api.client.ws_connect(agent_socket, headers=alice.headers)
    welcome = await agent.receive_json()
    assert (welcome["type"], welcome["side"], welcome["polite"], welcome["peer"]) == ("welcome", "agent", False, False)
    stun, turn = welcome["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    assert turn["username"].endswith(f":{room['id']}")  # coturn's time-limited credentials
    assert int(turn["username"].split(":")[0]) == int(datetime.fromisoformat(room["expires_at"]).timestamp())
    assert turn["credential"]
    assert turn["credential"] != "turn-shared-secret"

    customer = await api.client.ws_connect(customer_socket)
    welcome = await customer.receive_json()
    assert (welcome["side"], welcome["polite"], welcome["peer"]) == ("customer", True, True)
    assert await agent.receive_json() == {"type": "peer-joined"}

    offer = {"type": "offer", "sdp": "v=0 ..."}
    await agent.send_json({"type": "description", "data": offer})
    assert await customer.receive_json() == {"type": "description", "data": offer}
    await customer.send_json(
        {"type": "candidate", "data": {"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host"}}
    )
    assert (await agent.receive_json())["type"] == "candidate"

    intruders = (
        (customer_socket, None, 409),  # a second holder of the customer's link: the seat is taken
        (agent_socket, alice.headers, 409),  # the agent again, from another tab
        (agent_socket, bob.headers, 403),  # another agent
    )
    for intruder, headers, status in intruders:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.client.ws_connect(intruder, headers=headers)
        assert refused.value.status == status

    await customer.close()
    assert await agent.receive_json() == {"type": "peer-left"}
    customer = await api.client.ws_connect(customer_socket)  # the seat is free again: the customer comes back
    assert (await customer.receive_json())["peer"] is True
    await customer.close()
    await agent.close()


async def test_a_connection_still_open_when_the_links_expire_is_closed(api: Api) -> None:
    _, _, room = await _room(api)
    api.clock.advance(60 * 60 - 0.2)  # a moment before the room's links expire
    customer = await api.client.ws_connect(_path(room["customer_url"]).replace("?", "/ws?"))
    assert (await customer.receive_json())["type"] == "welcome"
    assert await customer.receive_json() == {"type": "expired"}
    closing = await customer.receive()
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert customer.close_code == 4410


async def test_a_field_in_a_new_rooms_body_is_refused_like_on_every_route(api: Api) -> None:
    alice = await api.agent("alice")
    conversation_id = await api.customer_writes()
    await make_owner(api, conversation_id, alice)
    refused = await alice.post(f"/api/v1/conversations/{conversation_id}/rooms", {"link_minutes": 5})
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "unknown_field"
    # the message says what to send instead, not an empty list of allowed fields
    assert (await refused.json())["error"]["message"] == (
        "unknown field 'link_minutes'; this body takes no fields (send {} or nothing)"
    )
    async with api.store.read() as connection:
        assert (await connection.execute(select(rooms.c.id))).all() == []  # nothing made, nothing sent
    await alice.json("POST", f"/api/v1/conversations/{conversation_id}/rooms", {}, status=201)
