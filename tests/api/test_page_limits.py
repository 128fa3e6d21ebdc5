"""Every paged route reads ``?limit=`` the same way: 50 when absent, 1 to 200, anything else one 422."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

PAGED = (
    "/api/v1/audit",
    "/api/v1/contacts",
    "/api/v1/articles",
    "/api/v1/conversations",
    "/api/v1/tickets",
    "/api/v1/webhooks/rejected",
)


@pytest.mark.parametrize("path", PAGED)
@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "1.5"])
async def test_a_limit_outside_one_to_two_hundred_is_the_same_422_everywhere(api: Api, path: str, limit: str) -> None:
    admin = await api.agent("root", role="admin")
    response = await admin.get(f"{path}?limit={limit}")
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["field"] == "limit"


@pytest.mark.parametrize("path", PAGED)
@pytest.mark.parametrize("limit", ["", "1", "200"])
async def test_a_limit_from_one_to_two_hundred_or_none_is_a_page(api: Api, path: str, limit: str) -> None:
    admin = await api.agent("root", role="admin")
    response = await admin.get(f"{path}?limit={limit}")
    body = await response.json()
    assert response.status == 200, body
    assert set(body) >= {"items", "next"}
