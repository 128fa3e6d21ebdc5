"""``GET|PUT /api/v1/me/layout``: each agent's side-panel widgets and their order, remembered per agent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api


async def test_a_layout_is_null_until_saved_then_remembered_per_agent(api: Api) -> None:
    ana, ben = await api.agent("ana"), await api.agent("ben")
    assert await ana.json("GET", "/api/v1/me/layout") == {"widgets": None, "updated_at": None}
    saved = await ana.json("PUT", "/api/v1/me/layout", {"widgets": ["ticket", "contact", "articles"]})
    assert saved == {"widgets": ["ticket", "contact", "articles"], "updated_at": api.clock().isoformat()}
    assert (await ana.json("GET", "/api/v1/me/layout"))["widgets"] == ["ticket", "contact", "articles"]
    assert (await ben.json("GET", "/api/v1/me/layout"))["widgets"] is None  # ana's choice is hers alone
    api.clock.advance(60)
    again = await ana.json("PUT", "/api/v1/me/layout", {"widgets": []})  # hide every side widget
    assert again == {"widgets": [], "updated_at": api.clock().isoformat()}
    assert (await ana.json("GET", "/api/v1/me/layout"))["widgets"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"widgets": "contact"}, "invalid_field"),
        ({"widgets": ["contact", 3]}, "invalid_field"),
        ({}, "invalid_field"),
        ({"widgets": ["contact"], "extra": 1}, "unknown_field"),
        ({"widgets": ["Contact"]}, "invalid_widget"),
        ({"widgets": ["<script>"]}, "invalid_widget"),
        ({"widgets": ["x" * 41]}, "invalid_widget"),
        ({"widgets": ["contact", "ticket", "contact"]}, "duplicate_widget"),
        ({"widgets": [f"w{i}" for i in range(31)]}, "too_many_widgets"),
    ],
)
async def test_a_bad_layout_is_422_with_its_code_and_saves_nothing(api: Api, body: dict[str, Any], code: str) -> None:
    ana = await api.agent("ana")
    await ana.json("PUT", "/api/v1/me/layout", {"widgets": ["contact"]})
    response = await ana.put("/api/v1/me/layout", body)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == code
    assert (await ana.json("GET", "/api/v1/me/layout"))["widgets"] == ["contact"]


async def test_the_layout_needs_a_login(api: Api) -> None:
    assert (await api.client.get("/api/v1/me/layout")).status == 401
    assert (await api.client.put("/api/v1/me/layout", json={"widgets": []})).status == 401


async def test_null_puts_the_default_layout_back(api: Api) -> None:
    ana = await api.agent("ana")
    await ana.json("PUT", "/api/v1/me/layout", {"widgets": ["contact"]})
    reset = await ana.json("PUT", "/api/v1/me/layout", {"widgets": None})
    assert reset == {"widgets": None, "updated_at": None}
    assert await ana.json("GET", "/api/v1/me/layout") == {"widgets": None, "updated_at": None}
    assert (await ana.json("PUT", "/api/v1/me/layout", {"widgets": None}))["widgets"] is None  # nothing saved: fine
