"""The hub process: health and readiness over real HTTP on both engines, logs, shutdown."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from hub.api.server import create_app
from hub.logs import JsonFormatter, RedactSecrets, configure_logging
from hub.settings import Settings
from tests.ports import free_port


async def test_health_and_readiness_answer_on_each_engine(
    aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings], database_url: str
) -> None:
    client = await aiohttp_client(create_app(make_settings(database_url=database_url)))
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["status"] == "ok"


async def test_unknown_routes_get_the_json_error_shape(
    aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    client = await aiohttp_client(create_app(make_settings(database_url=sqlite_url)))
    response = await client.get("/nothing-here")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


def test_json_logs_redact_every_secret_wherever_it_appears() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets({"EAAB-very-secret"}))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token %s refused", "EAAB-very-secret", extra={"detail": "Bearer EAAB-very-secret"})
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue().strip()
    entry = json.loads(line)
    assert "EAAB-very-secret" not in line
    assert entry["message"] == "token [redacted] refused"
    assert entry["detail"] == "Bearer [redacted]"
    assert entry["level"] == "warning"


def test_logs_are_json_off_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "auto", (), stream=stream)
    try:
        logging.getLogger("test.json").info("hello", extra={"account": "fb"})
    finally:
        configure_logging("WARNING", "text", ())
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["message"] == "hello"
    assert entry["account"] == "fb"


@pytest.mark.parametrize("loop", [None, "uvloop"])
def test_serve_starts_migrates_answers_and_stops_gracefully_on_sigterm(tmp_path: Path, loop: str | None) -> None:
    # on the default loop (asyncio's) and on the one [server] event_loop may choose instead
    port = free_port()
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[server]\nport = {port}\n[database]\nurl = "sqlite:///{tmp_path / "hub.db"}"\n[[queues]]\nid = "support"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELHUB_")}
    if loop is not None:
        env["CHANNELHUB_SERVER_EVENT_LOOP"] = loop
    log_path = tmp_path / "serve.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    body = response.read()
                    break
            except OSError:
                time.sleep(0.2)
        assert json.loads(body)["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log_file.close()
    logs = log_path.read_text(encoding="utf-8")
    assert "channelhub listening" in logs
    started = [entry for entry in map(json.loads, _json_lines(logs)) if entry["message"] == "channelhub started"]
    assert [entry["event_loop"] for entry in started] == [loop or "asyncio"]  # the loop that really ran
    assert (tmp_path / "hub.db").exists()


def _json_lines(logs: str) -> list[str]:
    return [line for line in logs.splitlines() if line.startswith("{")]
