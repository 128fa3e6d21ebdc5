"""Fuzzing the API with schemathesis: every route of the served OpenAPI document, as each role (agent,
supervisor, admin), against a real ``channelhub serve`` process. No answer is a 500, and every answer
matches the document (status, content type, body schema, headers).

One hub per role (a fresh SQLite database), so an admin's fuzzed changes never lock the other roles out;
each holds a few conversations from signed webhooks, so ids can be real. Examples per route are bounded
(``EXAMPLES``) and generation is derandomised: the same cases run on every machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.api.openapi import build_document
from hub.api.server import create_app
from hub.settings import load_settings
from tests.faults._support import HubProcess, make_hub, messenger_delivery

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults-fuzz")]  # one set of role hubs

EXAMPLES = 6  # generated cases per route and role
ROLES = ("agent", "supervisor", "admin")
PASSWORD = "fuzzing-password-123"
#: not fuzzed: logging out ends the session the other cases use; the WebSocket is not a JSON exchange
LEFT_OUT = {("POST", "/auth/logout"), ("GET", "/ws")}
#: known failures, each (method, path, role or None for every role) -> why; xfail(strict=True)
KNOWN: dict[tuple[str, str, str | None], str] = {}
#: what is checked of each answer: no 5xx, and the status, content type, headers and body the document
#: gives. Not checked: that every schema-valid input is accepted (an opaque cursor or an unknown id is
#: valid by the schema and rightly refused) and that every schema-invalid one is refused.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

DOCUMENT = build_document(create_app(load_settings(None, {})))
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if (method.upper(), path) not in LEFT_OUT
)


def _cases() -> list[Any]:
    cases = []
    for role in ROLES:
        for method, path in OPERATIONS:
            reason = KNOWN.get((method, path, role)) or KNOWN.get((method, path, None))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(role, method, path, marks=marks, id=f"{role}-{method}-{path}"))
    return cases


class RoleHub:
    """A hub with one user of ``role``, logged in; started on first use."""

    def __init__(self, folder: Path, role: str) -> None:
        self.role = role
        self.hub: HubProcess = make_hub(
            folder,
            f"sqlite:///{folder / 'hub.db'}",
            extra=f'[demo]\nagents = [{{login = "fz-{role}", password = "{PASSWORD}", role = "{role}"}}]\n',
        )
        self.token = ""
        self.cases = 0  # requests made by the fuzzer as this role

    def start(self) -> None:
        self.hub.start()
        self.hub.wait_ready()
        for n in range(3):  # customers wrote in: conversations, identities, messages exist
            body, headers = messenger_delivery(f"m_fuzz_{n}", n, f"hello {n}")
            delivered = requests.post(self.hub.url + "/webhooks/messenger", data=body, headers=headers, timeout=10)
            assert delivered.status_code == 200, delivered.text
        answer = requests.post(
            self.hub.url + "/api/v1/auth/login", json={"login": f"fz-{self.role}", "password": PASSWORD}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["token"]


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RoleHub]]:
    running: dict[str, RoleHub] = {}
    try:
        yield running
    finally:
        for role_hub in running.values():
            role_hub.hub.stop()
    for role, role_hub in running.items():
        print(f"\nfuzzing as {role}: {role_hub.cases} cases")


def hub_for(hubs: dict[str, RoleHub], role: str, tmp_path_factory: pytest.TempPathFactory) -> RoleHub:
    if role not in hubs:
        role_hub = RoleHub(tmp_path_factory.mktemp(f"fuzz-{role}"), role)
        role_hub.start()
        hubs[role] = role_hub
    return hubs[role]


def test_the_served_document_is_the_one_fuzzed(
    hubs: dict[str, RoleHub], tmp_path_factory: pytest.TempPathFactory
) -> None:
    role_hub = hub_for(hubs, "admin", tmp_path_factory)
    served = requests.get(role_hub.hub.url + "/api/v1/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(DOCUMENT))


@pytest.mark.parametrize(("role", "method", "path"), _cases())
def test_no_500_and_every_answer_matches_the_document(
    hubs: dict[str, RoleHub], tmp_path_factory: pytest.TempPathFactory, role: str, method: str, path: str
) -> None:
    role_hub = hub_for(hubs, role, tmp_path_factory)
    operation = SCHEMA[path][method]
    base_url = role_hub.hub.url + "/api/v1"
    headers = {"Authorization": f"Bearer {role_hub.token}"}
    session = requests.Session()

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the failing case is printed as it was
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy())
    def fuzz(case: Any) -> None:
        role_hub.cases += 1
        case.call_and_validate(base_url=base_url, headers=headers, session=session, checks=CHECKS, timeout=30)

    fuzz()
