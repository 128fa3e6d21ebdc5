"""Use-case refusals: one family with data, answered over HTTP from their fields alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub.api.errors import refusal_response
from hub.errors import ChannelhubError, Conflict, Forbidden, Invalid, NotFound, PolicyRefusal, Refusal


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        (NotFound("not_found", "no conversation 7"), 404),
        (Forbidden("own_account", "nobody deactivates themselves"), 403),
        (Conflict("conversation_taken", "not yours", conversation_id=7), 409),
        (Invalid("status_not_allowed", "'x' is not allowed", field="status"), 422),
    ],
)
def test_a_refusal_is_answered_with_its_kinds_status_and_its_fields(refusal: Refusal, status: int) -> None:
    response = refusal_response(refusal)
    assert response.status == status
    assert response.body is not None
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    assert body == {"error": {"code": refusal.code, "message": refusal.message, **refusal.fields}}


def test_a_policy_refusal_carries_the_rule_the_window_and_the_alternatives() -> None:
    closed = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    refusal = PolicyRefusal(
        "window_closed", "the 24 h window closed", window_closed_at=closed, alternatives=[{"kind": "template"}]
    )
    assert isinstance(refusal, Invalid)
    assert isinstance(refusal, ChannelhubError)
    assert (refusal.kind, refusal.code, refusal.rule, refusal.window_closed_at) == (
        "invalid",
        "window_closed",
        "window_closed",
        closed,
    )
    assert dict(refusal.fields) == {
        "rule": "window_closed",
        "window_closed_at": closed.isoformat(),
        "alternatives": [{"kind": "template"}],
    }
    assert str(refusal) == "window_closed: the 24 h window closed"
    assert refusal_response(refusal).status == 422


@pytest.mark.parametrize("kind", ["not_found", "forbidden", "conflict", "invalid"])
def test_the_routing_stores_kinds_name_members_of_the_family(kind: str) -> None:
    refusal = Refusal.of_kind(kind, "some_code", "a sentence", field="agent")
    assert refusal.kind == kind
    assert (refusal.code, refusal.message, dict(refusal.fields)) == ("some_code", "a sentence", {"field": "agent"})
    assert repr(refusal) == f"{type(refusal).__name__}('some_code', 'a sentence', field='agent')"


def test_an_unknown_kind_is_a_conflict() -> None:
    assert type(Refusal.of_kind("busy", "busy", "try again")) is Conflict
