"""update_agent tries again when a concurrent hand-off wins the race, for every caller (API and CLI alike)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

import hub.store.admin as admin
from hub.model import Role
from hub.store import Store
from hub.store.admin import update_agent
from hub.store.agents import create_agent, get_agent
from hub.store.routing import RoutingRefused

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def losing(times: int, error: Exception, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make release_agent lose its first ``times`` races with ``error``; returns the list of attempts."""
    attempts: list[int] = []
    real = admin.release_agent

    async def release(*args: Any, **kwargs: Any) -> Any:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= times:
            raise error
        return await real(*args, **kwargs)

    monkeypatch.setattr(admin, "release_agent", release)
    return attempts


async def test_a_lost_race_is_tried_again_and_then_succeeds(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = await create_agent(store, login="ann", password="secret-pass", role=Role.AGENT, now=NOW)
    attempts = losing(2, RoutingRefused("conflict", "conflict", "changed meanwhile"), monkeypatch)
    updated = await update_agent(store, agent.id, {"active": False}, now=NOW)
    assert updated is not None
    assert updated.deactivated
    assert not updated.active
    assert attempts == [1, 2, 3]


async def test_three_lost_races_give_up_with_nothing_changed(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = await create_agent(store, login="ann", password="secret-pass", role=Role.AGENT, now=NOW)
    attempts = losing(5, RoutingRefused("conflict", "conflict", "changed meanwhile"), monkeypatch)
    with pytest.raises(RoutingRefused):
        await update_agent(store, agent.id, {"active": False, "display_name": "Renamed"}, now=NOW)
    assert attempts == [1, 2, 3]
    found = await get_agent(store, agent.id)
    assert found is not None
    assert found.display_name != "Renamed"  # every attempt rolled back


async def test_other_errors_are_not_retried(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = await create_agent(store, login="ann", password="secret-pass", role=Role.AGENT, now=NOW)
    attempts = losing(5, RoutingRefused("forbidden", "agent_inactive", "no"), monkeypatch)
    with pytest.raises(RoutingRefused, match="no"):
        await update_agent(store, agent.id, {"active": False}, now=NOW)
    assert attempts == [1]


async def test_a_deadlock_victim_is_tried_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = await create_agent(store, login="ann", password="secret-pass", role=Role.AGENT, now=NOW)
    deadlock = DBAPIError("UPDATE conversations ...", {}, Exception("deadlock detected"))
    attempts = losing(1, deadlock, monkeypatch)
    updated = await update_agent(store, agent.id, {"active": False}, now=NOW)
    assert updated is not None
    assert updated.deactivated
    assert attempts == [1, 2]
