"""Hostile input gets a 4xx with a machine-readable code, never a 500 with a traceback in the log."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError

from tests.api.conftest import Api

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
HUGE = 2**64


_REQUEST_LOGGERS = ("hub.api.errors", "aiohttp.server", "aiohttp.web")


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Any:
    """Every case here must be answered without a request's error logged (the 500 handler's traceback)."""
    caplog.set_level(logging.ERROR)
    yield
    logged = [r.getMessage() for r in caplog.records if r.name in _REQUEST_LOGGERS and r.levelno >= logging.ERROR]
    assert not logged


async def _error(response: Any, status: int) -> str:
    body = await response.json()
    assert response.status == status, body
    code: str = body["error"]["code"]
    return code


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, '{"login": ' + DEEP + "}"])
async def test_deeply_nested_json_to_login_is_400(api: Api, body: str) -> None:
    response = await api.client.post("/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"})
    assert await _error(response, 400) == "json_too_deep"


async def test_json_nested_past_the_limit_is_400_on_any_json_route(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    nested = '{"name": "x", "custom": ' + "[" * 65 + "]" * 65 + "}"
    for path in ("/api/v1/contacts", "/api/v1/queues", "/api/v1/templates"):
        response = await admin.client.post(
            path, data=DEEP, headers={**admin.headers, "Content-Type": "application/json"}
        )
        assert await _error(response, 400) == "json_too_deep"
    response = await admin.client.post(
        "/api/v1/contacts", data=nested, headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert await _error(response, 400) == "json_too_deep"


@pytest.mark.parametrize(
    "raw",
    ['{"name": NaN}', '{"name": Infinity}', '{"name": -Infinity}', '{"name": 1e999}', '{"name": "a\\u0000b"}'],
)
async def test_numbers_json_does_not_have_and_nul_characters_are_400(api: Api, raw: str) -> None:
    admin = await api.agent("root", role="admin")
    response = await admin.client.post(
        "/api/v1/contacts", data=raw, headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert await _error(response, 400) in {"invalid_json", "number_out_of_range"}


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/v1/contacts", b'{"name": "a\\ud800b"}'),
        ("/api/v1/contacts", b'{"name": "\\uDFFF"}'),
        ("/api/v1/contacts", b'{"name": "x", "\\ud800": 1}'),
        ("/api/v1/contacts", b'{"name": "a\xed\xa0\x80b"}'),  # the surrogate's bytes, which json.loads lets through
        ("/api/v1/tickets", b'{"title": "t", "description": "\\udbff"}'),
        ("/api/v1/articles/preview", b'{"body": "# \\ud800"}'),
    ],
)
async def test_a_lone_surrogate_in_a_body_is_400_and_nothing_is_written(api: Api, path: str, raw: bytes) -> None:
    """No database, log line or Markdown renderer can write a lone surrogate as UTF-8: it was a 500."""
    admin = await api.agent("root", role="admin")
    response = await admin.client.post(path, data=raw, headers={**admin.headers, "Content-Type": "application/json"})
    assert await _error(response, 400) == "invalid_json"
    assert (await admin.json("GET", "/api/v1/contacts"))["items"] == []
    assert (await admin.json("GET", "/api/v1/tickets"))["items"] == []


async def test_a_surrogate_pair_written_as_two_escapes_is_its_character(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    raw = b'{"name": "Jana \\ud83d\\ude00"}'
    response = await admin.client.post(
        "/api/v1/contacts", data=raw, headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert response.status == 201
    assert (await response.json())["name"] == "Jana \U0001f600"


async def test_integers_past_64_bits_in_a_body_are_400(api: Api) -> None:
    agent = await api.agent("alice", ready=True)
    conversation = await api.customer_writes()
    await api.sweep()
    await agent.json("POST", f"/api/v1/conversations/{conversation}/accept")
    for body in ({"agent": HUGE}, {"agent": -HUGE}, {"agent": 2**63}):
        response = await agent.post(f"/api/v1/conversations/{conversation}/transfer", json=body)
        assert await _error(response, 400) == "number_out_of_range"
    response = await agent.post(f"/api/v1/conversations/{conversation}/transfer", json={"agent": str(HUGE)})
    assert await _error(response, 422) == "unknown_agent"
    assert (await agent.json("GET", f"/api/v1/conversations/{conversation}"))["state"] == "active"


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/conversations/{HUGE}",
        f"/api/v1/conversations/{HUGE}/messages",
        f"/api/v1/contacts/{HUGE}",
        f"/api/v1/identities/{HUGE}",
        f"/api/v1/tickets/{HUGE}",
        f"/api/v1/agents/{HUGE}",
        f"/api/v1/conversations/{2**63}",
        "/api/v1/conversations/-1",
        "/api/v1/conversations/%C2%B2",  # "²" is a digit to str.isdigit, not to int()
        "/api/v1/contacts/%C2%B2",
        "/api/v1/conversations/1_0",
    ],
)
async def test_ids_in_paths_that_cannot_exist_are_404(api: Api, path: str) -> None:
    admin = await api.agent("root", role="admin")
    assert await _error(await admin.get(path), 404) == "not_found"


@pytest.mark.parametrize("query", [f"contact={HUGE}", "contact=%C2%B2", f"limit={HUGE}"])
async def test_ids_in_queries_that_cannot_exist_are_422(api: Api, query: str) -> None:
    admin = await api.agent("root", role="admin")
    assert await _error(await admin.get(f"/api/v1/tickets?{query}"), 422) == "invalid_query"


async def test_cursors_with_huge_or_deep_values_are_400(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    for payload in (f'{{"before": {HUGE}}}', "[" * 1500 + "]" * 1500):
        cursor = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        response = await admin.get(f"/api/v1/conversations?cursor={cursor}")
        assert await _error(response, 400) == "invalid_cursor"


@pytest.mark.parametrize("number", [f'"{HUGE}"', '"7"', "-1", "true", "null"])
async def test_a_history_cursor_with_numbers_this_api_never_wrote_is_400(api: Api, number: str) -> None:
    conversation_id = await api.customer_writes()
    admin = await api.agent("root", role="admin")
    payload = f'{{"c": {number}, "t": "2026-01-01T00:00:00+00:00", "r": 0, "i": 1}}'
    cursor = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    response = await admin.get(f"/api/v1/conversations/{conversation_id}/messages?before={cursor}")
    assert await _error(response, 400) == "invalid_cursor"


@pytest.mark.parametrize(
    "time",
    ['"2026-01-01T00:00:00"', '"2026-01-01"', '"0001-01-01T00:00:00+14:00"', '"9999-12-31T23:59:59-14:00"'],
)
async def test_a_history_cursor_with_a_time_this_api_never_wrote_is_400(api: Api, time: str) -> None:
    """A time without its offset or one outside the years UTC can hold was a 500 in the store."""
    conversation_id = await api.customer_writes()
    admin = await api.agent("root", role="admin")
    payload = f'{{"c": {conversation_id}, "t": {time}, "r": 0, "i": 1}}'
    cursor = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    response = await admin.get(f"/api/v1/conversations/{conversation_id}/messages?before={cursor}")
    assert await _error(response, 400) == "invalid_cursor"


@pytest.mark.parametrize("before", ["true", "false"])
async def test_a_conversation_cursor_with_a_boolean_is_400(api: Api, before: str) -> None:
    admin = await api.agent("root", role="admin")
    cursor = base64.urlsafe_b64encode(f'{{"before": {before}}}'.encode()).decode().rstrip("=")
    response = await admin.get(f"/api/v1/conversations?cursor={cursor}")
    assert await _error(response, 400) == "invalid_cursor"


@pytest.mark.parametrize("since", [str(HUGE), str(2**63), "-1", "%C2%B2", "1_0", "abc"])
async def test_a_websocket_since_that_is_no_sequence_number_is_400(api: Api, since: str) -> None:
    agent = await api.agent("alice")
    with pytest.raises(WSServerHandshakeError) as refused:
        await api.client.ws_connect(f"/api/v1/ws?token={agent.token}&since={since}")
    assert refused.value.status == 400


@pytest.mark.parametrize("path", ["/console/%00", "/console/js/%00.js", "/console/" + "a" * 5000])
async def test_console_paths_the_file_system_cannot_hold_are_404(api: Api, path: str) -> None:
    response = await api.client.get(path)
    assert response.status == 404


async def test_a_template_with_thousands_of_nested_brackets_is_422(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    body = {"name": "nested", "body": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "variables": {}}
    response = await admin.post("/api/v1/templates", json=body)
    assert await _error(response, 422) == "template_syntax"


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd", "//evil.example/x"]
)
async def test_an_outbound_attachment_url_that_is_not_http_is_refused(api: Api, url: str) -> None:
    agent = await api.agent("alice", ready=True)
    conversation = await api.customer_writes()
    await api.sweep()
    await agent.json("POST", f"/api/v1/conversations/{conversation}/accept")
    body = {"text": "see", "attachments": [{"kind": "file", "url": url}]}
    response = await agent.post(f"/api/v1/conversations/{conversation}/messages", json=body)
    assert await _error(response, 422) == "invalid_field"
    assert (await response.json())["error"]["field"] == "attachments[0].url"


async def _raw(api: Api, method: str, path: str, headers: list[bytes], body: bytes = b"") -> tuple[int, Any]:
    """One request written byte for byte (the client library would not send a header that is not UTF-8)."""
    url = api.client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: hub", b"Connection: close", b"Content-Length: %d" % len(body)]
    writer.write(b"\r\n".join([*head, *headers, b"", body]))
    data = await reader.read()
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body) if body.startswith(b"{") else body


@pytest.mark.parametrize(
    "header",
    [b"Authorization: Bearer \xff\xfe", b"Authorization: Bearer \xed\xa0\x80", b"Cookie: channelhub_session=\xff"],
)
async def test_a_credential_that_is_not_utf8_is_401(api: Api, header: bytes) -> None:
    """aiohttp keeps such bytes as lone surrogates; hashing the token to look it up was a 500."""
    status, body = await _raw(api, "GET", "/api/v1/me", [header])
    assert (status, body["error"]["code"]) == (401, "unauthenticated")


async def test_an_idempotency_key_that_is_not_utf8_is_kept_and_replayed(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    headers = [f"Authorization: Bearer {admin.token}".encode(), b"Content-Type: application/json"]
    headers.append(b"Idempotency-Key: k\xff\xfe")
    first = await _raw(api, "POST", "/api/v1/contacts", headers, b'{"name": "Jana"}')
    again = await _raw(api, "POST", "/api/v1/contacts", headers, b'{"name": "Jana"}')
    assert first[0] == again[0] == 201
    assert first[1]["id"] == again[1]["id"]
    assert len((await admin.json("GET", "/api/v1/contacts"))["items"]) == 1


async def test_a_webhook_signature_that_is_not_utf8_is_403(api: Api) -> None:
    headers = [b"Content-Type: application/x-www-form-urlencoded", b"X-Twilio-Signature: \xff"]
    status, body = await _raw(
        api, "POST", "/webhooks/twilio", headers, b"To=whatsapp%3A%2B15550001111&From=whatsapp%3A%2B1"
    )
    assert (status, body["error"]["code"]) == (403, "signature_invalid")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_whose_content_encoding_does_not_decode_is_400(api: Api, encoding: str) -> None:
    admin = await api.agent("root", role="admin")
    headers = [f"Authorization: Bearer {admin.token}".encode(), b"Content-Type: application/json"]
    headers.append(f"Content-Encoding: {encoding}".encode())
    status, body = await _raw(api, "POST", "/api/v1/contacts", headers, b'{"name": "Jana"}')
    assert (status, body["error"]["code"]) == (400, "invalid_body")
    assert (await admin.json("GET", "/api/v1/contacts"))["items"] == []


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/v1/" + "x" * 9000, []),
        ("/api/v1/me", [b"Authorization: Bearer \x00"]),
        ("/api/v1/me", [b"X-Long: " + b"y" * 9000]),
        ("/api/v1/me?q=\xff", []),
        ("/api/v1/me", [b"Transfer-Encoding: chunked"]),
    ],
    ids=["long-line", "nul-header", "long-header", "raw-byte-query", "chunked-and-length"],
)
async def test_a_request_the_http_parser_refuses_is_400_without_a_logged_traceback(
    api: Api, path: str, headers: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp logged each at ERROR with the parser's traceback: anyone could fill the error log."""
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    status, _ = await _raw(api, "GET", path, headers)
    assert status == 400
    (record,) = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert (record.levelno, record.exc_info) == (logging.INFO, None)
    assert "Error handling request" in record.getMessage()
