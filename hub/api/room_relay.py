"""The rooms' signalling relay: who is connected to which room, one WebSocket per side.

The hub does not read the WebRTC offers, answers and ICE candidates it relays; it only makes sure that
a room has at most one agent and one customer connected, and hands each message to the other side.
It lives in one process's memory: both parties of a room must reach the same hub process (ADR 0032).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.usecases.rooms import Side

__all__ = ["RELAY", "RoomRelay"]


class RoomRelay:
    """Rooms by id, each with at most one socket per side."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[Side, web.WebSocketResponse]] = {}

    def claim(self, room_id: str, side: Side, ws: web.WebSocketResponse) -> bool:
        """Take the room's seat for ``side``; False when someone already sits there (a third party)."""
        seats = self._rooms.setdefault(room_id, {})
        if side in seats:
            return False
        seats[side] = ws
        return True

    def release(self, room_id: str, side: Side, ws: web.WebSocketResponse) -> None:
        seats = self._rooms.get(room_id, {})
        if seats.get(side) is ws:
            del seats[side]
        if not seats:
            self._rooms.pop(room_id, None)

    def peer(self, room_id: str, side: Side) -> web.WebSocketResponse | None:
        other = Side.CUSTOMER if side is Side.AGENT else Side.AGENT
        return self._rooms.get(room_id, {}).get(other)

    async def tell_peer(self, room_id: str, side: Side, message: dict[str, Any]) -> bool:
        """Send ``message`` to the other side, if it is there; True when it was sent."""
        peer = self.peer(room_id, side)
        if peer is None or peer.closed:
            return False
        try:
            await peer.send_json(message)
        except (ConnectionError, RuntimeError):
            return False  # the peer is going away; its own handler releases its seat
        return True


RELAY = web.AppKey("room_relay", RoomRelay)
