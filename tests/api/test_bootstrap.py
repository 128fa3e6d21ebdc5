"""Start-up: queues and statuses seeded from the configuration, demo agents, the first-admin hint."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from hub.store.tables import queues, statuses
from tests.api.conftest import MakeApi


async def test_an_empty_database_tells_the_operator_how_to_create_the_first_admin(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hub.api.handoff"):
        await make_api()
    hints = [r.getMessage() for r in caplog.records if "channelhub agents create" in r.getMessage()]
    assert len(hints) == 1
    assert "--role admin" in hints[0]


async def test_queues_and_statuses_are_seeded_from_the_configuration(make_api: MakeApi) -> None:
    api = await make_api()
    async with api.store.read() as connection:
        queue_rows = {r.id: r for r in await connection.execute(select(queues))}
        status_ids = set((await connection.execute(select(statuses.c.id))).scalars())
    assert set(queue_rows) == {"support", "sales"}
    assert queue_rows["support"].offer_timeout == 30
    assert queue_rows["support"].statuses == ["resolved", "spam"]
    assert status_ids == {"resolved", "spam"}


async def test_demo_agents_from_the_configuration_are_created_and_can_log_in(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    demo = """
[demo]
admin_login = "admin"
admin_password = "admin-demo-pass"

[[demo.agents]]
login = "anna"
password = "anna-demo-pass"
role = "agent"
"""
    with caplog.at_level(logging.WARNING, logger="hub.api.handoff"):
        api = await make_api(demo)
    assert not [r for r in caplog.records if "channelhub agents create" in r.getMessage()]
    for login, password, role in (("admin", "admin-demo-pass", "admin"), ("anna", "anna-demo-pass", "agent")):
        response = await api.client.post("/api/v1/auth/login", json={"login": login, "password": password})
        assert response.status == 200
        body = await response.json()
        assert body["agent"]["role"] == role
        assert body["agent"]["queues"] == ["sales", "support"]
