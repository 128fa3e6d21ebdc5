"""X-Request-Id on every answer, and one correlation id on every log line of a request or a background job."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.logs import CorrelationIds, JsonFormatter, correlated
from tests.api.conftest import Api, MakeApi, delivered

HEADER = "X-Request-Id"


class Collected(logging.Handler):
    """Every record that reaches the root logger, after the correlation filter (as the server's handler has)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(CorrelationIds())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def ids_of(self, message_part: str) -> set[str | None]:
        return {r.correlation_id for r in self.records if message_part in r.getMessage()}  # type: ignore[attr-defined]


@pytest.fixture
def collected() -> Iterator[Collected]:
    handler = Collected()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_every_answer_carries_a_request_id(api: Api) -> None:
    agent = await api.agent("ana")
    answers = [
        await api.client.get("/healthz"),
        await api.client.get("/no/such/page"),
        await api.client.get("/api/v1/me"),  # 401: nobody logged in
        await agent.get("/api/v1/conversations/999999"),  # 404 from a use case
        await api.client.post("/webhooks/twilio", data=b"Body=hi"),  # refused webhook
        await agent.get("/api/v1/me"),
    ]
    ids = [answer.headers.get(HEADER) for answer in answers]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)  # one per request
    assert [a.status for a in answers][:2] == [200, 404]


async def test_the_websocket_upgrade_carries_a_request_id_too(api: Api) -> None:
    agent = await api.agent("ana")
    ws = await api.client.ws_connect(f"/api/v1/ws?token={agent.token}", headers={HEADER: "ws-trace-1"})
    try:
        assert ws._response.headers[HEADER] == "ws-trace-1"
    finally:
        await ws.close()
    for _ in range(100):  # the server's side of the session ends a moment after the close
        metrics = await api.client.get("/metrics")
        text = await metrics.text()
        if 'route="/api/v1/ws"' in text:
            break
        await asyncio.sleep(0.02)
    # counted as a request, but a session's length is not timed as a request's latency
    samples = {
        (sample.name, sample.labels.get("route"), sample.labels.get("status")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("channelhub_http_requests_total", "/api/v1/ws", "101")] == 1
    assert ("channelhub_http_request_duration_seconds_count", "/api/v1/ws", None) not in samples
    assert ("channelhub_http_request_duration_seconds_count", "/api/v1/auth/login", None) in samples


async def test_a_sane_incoming_id_is_honoured_and_another_is_replaced(api: Api) -> None:
    honoured = await api.client.get("/healthz", headers={HEADER: "lb-7f3a:42"})
    assert honoured.headers[HEADER] == "lb-7f3a:42"
    for insane in ("", "x" * 200, "two words", "<script>", "é-accent"):
        answer = await api.client.get("/healthz", headers={HEADER: insane})
        given = answer.headers[HEADER]
        assert given != insane
        assert len(given) == 32
        assert all(c in "0123456789abcdef" for c in given)


async def test_every_log_line_of_a_request_carries_its_id(api: Api, collected: Collected) -> None:
    # no Messenger page is configured: the route logs a warning about the unknown account
    answer = await api.client.post("/webhooks/messenger", data=b"{}", headers={HEADER: "trace-one"})
    assert answer.status == 404
    assert answer.headers[HEADER] == "trace-one"
    assert collected.ids_of("not configured") == {"trace-one"}


async def test_background_jobs_log_under_ids_of_their_own(make_api: MakeApi, collected: Collected) -> None:
    api = await make_api(fake_adapter=True)
    ana = await api.agent("ana", ready=True)
    conversation_id = await api.customer_writes()
    for _ in range(200):  # the router's own loop offers it (woken by the new conversation)
        if collected.ids_of("routing sweep"):
            break
        await asyncio.sleep(0.05)
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "On it!"}, 201)
    await delivered(api)

    [ingest] = collected.ids_of("ingest group committed")
    assert ingest is not None
    assert ingest.startswith("ingest-")
    sends = collected.ids_of("accepted by the provider")
    assert sends
    assert all(s is not None and s.startswith("send-") for s in sends)
    sweeps = collected.ids_of("routing sweep")
    assert sweeps
    assert all(s is not None and s.startswith("sweep-") for s in sweeps)


def test_json_lines_carry_the_correlation_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationIds())
    logger = logging.getLogger("tests.correlation")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with correlated("job-1"):
            logger.info("inside")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (inside["message"], inside["correlation_id"]) == ("inside", "job-1")
    assert (outside["message"], outside["correlation_id"]) == ("outside", None)
