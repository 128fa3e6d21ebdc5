"""Signed webhooks per second to a durable 200, per provider, against a bare handler in the same run.

    python bench/webhooks.py [--requests 4000] [--concurrency 64] [--providers messenger,whatsapp,twilio,viber]

The hub runs as a real `channelhub serve` process on a SQLite file. The baseline is a bare aiohttp server in its
own process that checks the same signature, parses the same body and answers 200 without storing anything. One
load generator (this process, aiohttp with `concurrency` connections) drives both with the same signed payloads
(every message id unique, 500 customers); the bare server runs before and after the hub, and the ratio is
against the mean of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web

PAGE_ID = "100200300"
PHONE_NUMBER_ID = "106540352242922"
SECRETS = {
    "messenger": "bench-messenger-secret",
    "whatsapp": "bench-cloud-secret",
    "twilio": "bench-twilio-token",
    "viber": "bench-viber-token",
}
CONFIG = """
log_level = "WARNING"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[database]
url = "sqlite:///{folder}/bench.db"
[[statuses]]
id = "resolved"
[[queues]]
id = "support"
[[accounts]]
id = "fb"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9/graph"
page_id = "{page_id}"
app_secret = "{s[messenger]}"
verify_token = "v"
page_access_token = "t"
[[accounts]]
id = "wa"
channel = "whatsapp"
provider = "cloud"
queue = "support"
api_base = "http://127.0.0.1:9/graph"
phone_number_id = "{phone}"
app_secret = "{s[whatsapp]}"
verify_token = "v"
access_token = "t"
[[accounts]]
id = "tw"
channel = "whatsapp"
provider = "twilio"
queue = "support"
api_base = "http://127.0.0.1:9/twilio"
account_sid = "AC00000000000000000000000000000000"
auth_token = "{s[twilio]}"
from_number = "+14155238886"
[[accounts]]
id = "vb"
channel = "viber"
queue = "support"
api_base = "http://127.0.0.1:9/viber"
auth_token = "{s[viber]}"
name = "Bench"
"""

Request = tuple[str, bytes, dict[str, str]]  # path, body, headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _meta_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _twilio_signature(secret: str, url: str, params: dict[str, str]) -> str:
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(secret.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def make_request(provider: str, n: int, base_url: str, run: str) -> Request:
    customer = n % 500
    now = int(time.time())
    if provider == "messenger":
        body = json.dumps(
            {
                "object": "page",
                "entry": [
                    {
                        "id": PAGE_ID,
                        "time": now * 1000,
                        "messaging": [
                            {
                                "sender": {"id": f"psid{customer}"},
                                "recipient": {"id": PAGE_ID},
                                "timestamp": now * 1000,
                                "message": {"mid": f"m_{run}_{n}", "text": f"hello {n}"},
                            }
                        ],
                    }
                ],
            }
        ).encode()
        return (
            "/webhooks/messenger",
            body,
            {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": _meta_signature(SECRETS[provider], body),
            },
        )
    if provider == "whatsapp":
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": f"42060{customer:07d}"}],
            "messages": [
                {
                    "from": f"42060{customer:07d}",
                    "id": f"wamid.{run}.{n}",
                    "timestamp": str(now),
                    "type": "text",
                    "text": {"body": f"hello {n}"},
                }
            ],
        }
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
            }
        ).encode()
        return (
            "/webhooks/whatsapp",
            body,
            {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": _meta_signature(SECRETS[provider], body),
            },
        )
    if provider == "twilio":
        sid = f"SM{run}{n:024d}"  # 34 characters, unique per request
        params = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": "AC00000000000000000000000000000000",
            "From": f"whatsapp:+42060{customer:07d}",
            "To": "whatsapp:+14155238886",
            "Body": f"hello {n}",
            "NumMedia": "0",
            "ProfileName": "Bench",
            "WaId": f"42060{customer:07d}",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        url = base_url + "/webhooks/twilio"
        return (
            "/webhooks/twilio",
            urlencode(params).encode(),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": _twilio_signature(SECRETS[provider], url, params),
            },
        )
    body = json.dumps(
        {
            "event": "message",
            "timestamp": now * 1000,
            "chat_hostname": "SN-1",
            "message_token": 5000000000000000000 + int(run[:6], 16) * 100000 + n,
            "sender": {"id": f"viber{customer}=", "name": "Bench"},
            "message": {"type": "text", "text": f"hello {n}"},
            "silent": False,
        }
    ).encode()
    signature = hmac.new(SECRETS["viber"].encode(), body, hashlib.sha256).hexdigest()
    return "/webhooks/viber/vb", body, {"Content-Type": "application/json", "X-Viber-Content-Signature": signature}


# ------------------------------------------------------------------ the bare handler


def bare_app(base_url: str) -> web.Application:
    """Checks the same signature and parses the same body as the hub would; stores nothing."""

    async def meta(request: web.Request) -> web.Response:
        body = await request.read()
        secret = SECRETS["messenger" if request.path.endswith("messenger") else "whatsapp"]
        if not hmac.compare_digest(_meta_signature(secret, body), request.headers.get("X-Hub-Signature-256", "")):
            return web.Response(status=403)
        json.loads(body)
        return web.Response(text="ok")

    async def twilio(request: web.Request) -> web.Response:
        body = await request.read()
        params = dict(parse_qsl(body.decode()))
        expected = _twilio_signature(SECRETS["twilio"], base_url + request.path, params)
        if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
            return web.Response(status=403)
        return web.Response(text="<Response/>", content_type="text/xml")

    async def viber(request: web.Request) -> web.Response:
        body = await request.read()
        expected = hmac.new(SECRETS["viber"].encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Viber-Content-Signature", "")):
            return web.Response(status=403)
        json.loads(body)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/messenger", meta)
    app.router.add_post("/webhooks/whatsapp", meta)
    app.router.add_post("/webhooks/twilio", twilio)
    app.router.add_post("/webhooks/viber/{account}", viber)
    return app


# ------------------------------------------------------------------- load generator


async def drive(base_url: str, requests: list[Request], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    pending = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            for path, body, headers in pending:
                started = time.perf_counter()
                async with session.post(base_url + path, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "per_second": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000,
        "failures": failures,
    }


def _cpu_seconds(pid: int) -> float | None:
    """User and system time of a process, all its threads (Linux's /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(
    name: str, server: subprocess.Popen[bytes], base_url: str, requests: list[Request], concurrency: int
) -> tuple[dict[str, float], dict[str, float | None]]:
    """``drive`` against ``server``; also the CPU seconds the server and this load generator spent meanwhile,
    which say which of the two is the limit (the bare handler's figure is the load generator's, on two cores)."""
    server_before, generator_before = _cpu_seconds(server.pid), time.process_time()
    result = asyncio.run(drive(base_url, requests, concurrency))
    server_after, generator_after = _cpu_seconds(server.pid), time.process_time()
    server_seconds = None if server_before is None or server_after is None else server_after - server_before
    return result, {name: server_seconds, f"load generator for {name}": generator_after - generator_before}


def _per_request(seconds: float | None, requests: int) -> float | None:
    return None if seconds is None else round(seconds * 1e6 / requests)


def wait_ready(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback only)
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--providers", default="messenger,whatsapp,twilio,viber")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        web.run_app(bare_app(f"http://127.0.0.1:{args.bare_server}"), port=args.bare_server, print=None)
        return

    results = []
    with tempfile.TemporaryDirectory() as folder:
        hub_port, bare_port = free_port(), free_port()
        config = Path(folder) / "bench.toml"
        config.write_text(
            CONFIG.format(port=hub_port, folder=folder, page_id=PAGE_ID, phone=PHONE_NUMBER_ID, s=SECRETS),
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELHUB_")}
        hub = start([sys.executable, "-m", "hub.cli", "serve", "--config", str(config)], env)
        bare = start([sys.executable, __file__, "--bare-server", str(bare_port)])
        try:
            wait_ready(f"http://127.0.0.1:{hub_port}/readyz")
            wait_port(bare_port)
            for provider in args.providers.split(","):
                run = os.urandom(4).hex()

                def make(n: int, base: str, provider: str = provider, run: str = run) -> Request:
                    return make_request(provider, n, base, run)

                bare_base, hub_base = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{hub_port}"
                bare_requests = [make(n, bare_base) for n in range(args.requests)]
                hub_requests = [make(n, hub_base) for n in range(args.requests)]
                # the hub between two bare runs, against their mean: the machine's load drifts
                bare_before, bare_cpu = measured("bare", bare, bare_base, bare_requests, args.concurrency)
                hub_result, hub_cpu = measured("hub", hub, hub_base, hub_requests, args.concurrency)
                bare_after, _ = measured("bare", bare, bare_base, bare_requests, args.concurrency)
                bare_rate = statistics.mean([bare_before["per_second"], bare_after["per_second"]])
                ratio = hub_result["per_second"] / bare_rate
                cpu = {name: _per_request(seconds, args.requests) for name, seconds in (bare_cpu | hub_cpu).items()}
                results.append(
                    {
                        "provider": provider,
                        "hub": hub_result,
                        "bare": [bare_before, bare_after],
                        "ratio": ratio,
                        "cpu_us_per_request": cpu,
                    }
                )
                print(
                    f"{provider:9} hub {hub_result['per_second']:7.0f}/s p99 {hub_result['p99_ms']:6.1f} ms "
                    f"(failures {hub_result['failures']:.0f}) | bare {bare_before['per_second']:6.0f} and "
                    f"{bare_after['per_second']:6.0f}/s p99 {bare_before['p99_ms']:5.1f} ms | ratio {ratio:.2f} | "
                    "CPU µs/request: " + ", ".join(f"{name} {value}" for name, value in cpu.items()),
                    flush=True,
                )
        finally:
            stop(hub)
            stop(bare)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
