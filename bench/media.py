"""Media: inbound fetch-and-store rate, serving a stored file to many clients, and memory while a big file streams.

    python bench/media.py [--files 200] [--file-kib 256] [--serve-mib 5] [--clients 32] [--rounds 4] [--big-mib 100]
                          [--repeats 3] [--serve-only]

1. Fetch: ``--files`` customers' attachments (distinct bytes, ``--file-kib`` each) served by a provider on loopback
   (its own process). The hub's media fetcher (``hub.media_fetch``, SQLite file, local blob store) claims, fetches,
   hashes, sniffs and records them; the baseline fetches the same URLs with the same concurrency and writes each
   straight to a file, fsynced as the hub's blob store does (the hub says "stored" only once the bytes would survive a
   crash). Both write into a folder made before their timer (the hub's store has kept a file before, as a running hub's
   has: its fan-out folders are made once in its life). The hub runs ``--repeats`` times, each run between two baseline
   runs; a run's ratio is its files per second over the mean of those two baselines', and the median ratio counts
   (target: at least 0.70); the ratio to writes that are not synced is given beside it. The fetcher runs in
   ``channelhub serve``, so this process first settles the cycle collector as ``serve`` does once it has started
   (``settle_garbage_collector``); the baseline runs in the same process, under the same setting.
2. Serve: one stored ``--serve-mib`` MiB file sent ``--rounds`` times to each of ``--clients`` concurrent clients by
   a real ``channelhub serve`` process through its public media route (``/media/{token}``: the same streaming code
   as ``/api/v1/media/{id}``, without a login), against a bare aiohttp ``FileResponse`` of the same file in its own
   process. The two take turns as in 1.: each hub run between two FileResponse runs, ``--repeats`` times; the
   median ratio of hub MiB/s over FileResponse MiB/s counts (target: at least 0.80).
3. Memory: the hub process's resident memory (``VmRSS``) before and at its peak while one client streams a
   ``--big-mib`` MiB file; the growth must stay far below the file's size (target: under 32 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from _loop import add_loop_argument
from _loop import run as run_on_loop
from aiohttp import web

from hub.api.server import settle_garbage_collector
from hub.event_loop import new_event_loop

CONFIG = """
log_level = "WARNING"
[server]
port = {port}
event_loop = "{loop}"
public_url = "http://127.0.0.1:{port}"
[database]
url = "sqlite:///{folder}/bench.db"
[media]
path = "{folder}/media"
max_bytes = {max_bytes}
[[statuses]]
id = "resolved"
[[queues]]
id = "support"
[[accounts]]
id = "fb"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9/graph"
page_id = "100200300"
app_secret = "s"
verify_token = "v"
page_access_token = "t"
"""


def write_config(folder: Path, name: str, port: int, max_bytes: int, loop: str = "asyncio") -> Path:
    """The hub's configuration in ``folder`` (made if missing); ``loop`` is the served hub's event loop."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / name
    config.write_text(CONFIG.format(port=port, folder=folder, max_bytes=max_bytes, loop=loop))
    return config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


# ------------------------------------------------------------------ servers in their own processes


def provider_server(port: int, files: int, size: int) -> None:
    """Serves ``/f/{n}``: ``size`` bytes, distinct per n."""
    blobs = [n.to_bytes(4, "big") + secrets.token_bytes(size - 4) for n in range(files)]

    async def one(request: web.Request) -> web.Response:
        return web.Response(body=blobs[int(request.match_info["n"])], content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/f/{n}", one)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def file_server(port: int, path: str, loop: str) -> None:
    """aiohttp's own ``FileResponse`` of the file, on the same event loop as the hub it is compared with."""

    async def one(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/file", one)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=new_event_loop(loop))


# ------------------------------------------------------------------ 1. fetch


def write_file(path: Path, chunks: list[bytes], durable: bool) -> None:
    with open(path, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
        if durable:
            out.flush()
            os.fsync(out.fileno())


async def fetch_baseline(urls: list[str], folder: Path, concurrency: int, *, durable: bool) -> float:
    write_config(folder, "unused.toml", 1, 1)
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(urls):
        queue.put_nowait(item)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n, url = queue.get_nowait()
            async with session.get(url) as response:
                chunks = [chunk async for chunk in response.content.iter_chunked(256 * 1024)]
            await asyncio.to_thread(write_file, folder / f"{n}.bin", chunks, durable)

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return len(urls) / (time.perf_counter() - started)


async def fetch_hub(urls: list[str], folder: Path, concurrency: int) -> float:
    from hub.bus import EventBus
    from hub.media import LocalBlobStore
    from hub.media_fetch import FetchPolicy, MediaFetcher
    from hub.model import Attachment, Channel, InboundMessage, MessageKind
    from hub.registry import build_adapter
    from hub.settings import load_settings
    from hub.store import Store
    from hub.store.ingest import store_group

    config = write_config(folder, "fetch.toml", 1, 1 << 30)
    settings = load_settings(config, {})
    store = Store(settings.database_url)
    await store.migrate()
    now = datetime.now(UTC)
    events = [
        [
            InboundMessage(
                channel=Channel.MESSENGER,
                account_id="fb",
                sender_id=f"psid-{n % 50}",
                provider_message_id=f"m-{n}",
                sent_at=now,
                kind=MessageKind.FILE,
                attachments=(Attachment(kind=MessageKind.FILE, url=url),),
            )
        ]
        for n, url in enumerate(urls)
    ]
    accounts = {a.id: a for a in settings.accounts}
    for start_at in range(0, len(events), 100):
        await store_group(store, events[start_at : start_at + 100], accounts, now)
    blobs = LocalBlobStore(folder / "media")
    # a store that has kept a file before, as a running hub's has: its folders are made once in its life (as the
    # baseline's folder is made before its timer), not in every measured drain
    await blobs.put(_chunks(b"a file kept before the measured drain"))
    async with aiohttp.ClientSession() as http:
        adapters = {a.id: build_adapter(a, http) for a in settings.accounts}
        fetcher = MediaFetcher(
            store,
            EventBus(),
            adapters,
            blobs,
            settings,
            clock=lambda: datetime.now(UTC),
            policy=FetchPolicy(batch=concurrency),
        )
        fetcher._http = http
        started = time.perf_counter()
        done = await fetcher.drain()  # what the fetcher's worker runs
        elapsed = time.perf_counter() - started
    await store.close()
    assert done == len(urls), (done, len(urls))
    return len(urls) / elapsed


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


# ------------------------------------------------------------------ 2. and 3. serving


async def seed_served_file(folder: Path, mib: int) -> tuple[str, Path]:
    """A stored attachment of ``mib`` MiB with a public link; (its token, the blob's path)."""
    from hub.media import LocalBlobStore
    from hub.model import Attachment, Channel, InboundMessage, MessageKind
    from hub.settings import load_settings
    from hub.store import Store
    from hub.store.ingest import store_group
    from hub.store.tables import attachments

    config = write_config(folder, "serve.toml", 1, 1 << 31)
    settings = load_settings(config, {})
    store = Store(settings.database_url)
    await store.migrate()
    blobs = LocalBlobStore(folder / "media")

    async def chunks():  # type: ignore[no-untyped-def]
        block = secrets.token_bytes(1024 * 1024)
        for n in range(mib):
            yield n.to_bytes(8, "big") + block[8:]

    blob = await blobs.put(chunks())
    now = datetime.now(UTC)
    message_id = f"serve-{blob.key[:12]}"
    event = InboundMessage(
        channel=Channel.MESSENGER,
        account_id="fb",
        sender_id="psid-serve",
        provider_message_id=message_id,
        sent_at=now,
        kind=MessageKind.FILE,
        attachments=(Attachment(kind=MessageKind.VIDEO, url="https://cdn.example/v.mp4"),),
    )
    await store_group(store, [[event]], {a.id: a for a in settings.accounts}, now)
    token = secrets.token_urlsafe(32)
    async with store.write() as connection:
        from sqlalchemy import select, update

        from hub.store.tables import messages

        mid = (
            await connection.execute(select(messages.c.id).where(messages.c.provider_message_id == message_id))
        ).scalar_one()
        await connection.execute(
            update(attachments)
            .where(attachments.c.message_id == mid)
            .values(
                state="stored",
                blob_key=blob.key,
                sha256=blob.key,
                size=blob.size,
                mime="application/octet-stream",
                link_token=token,
                link_expires_at=now + timedelta(days=1),
                stored_at=now,
            )
        )
    await store.close()
    return token, blobs.path(blob.key)


async def serve_load(url: str, clients: int, rounds: int) -> float:
    """MiB per second over ``clients`` concurrent clients, each reading the file ``rounds`` times."""
    total = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal total
        for _ in range(rounds):
            async with session.get(url) as response:
                assert response.status == 200, response.status
                async for chunk in response.content.iter_chunked(256 * 1024):
                    total += len(chunk)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return total / (1024 * 1024) / elapsed


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def stream_memory(url: str, pid: int) -> tuple[int, int]:
    """(RSS before, peak RSS while streaming) of the hub process, KiB; the client reads slowly enough to
    make the server hold a response open for a while."""
    before = rss_kib(pid)
    peak = before
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        async for _chunk in response.content.iter_chunked(1024 * 1024):
            peak = max(peak, rss_kib(pid))
    return before, peak


async def measure_fetch(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    """1.: the hub's fetch rate against the fsynced baseline's, taking turns."""
    port = free_port()
    provider = start([sys.executable, __file__, "--provider", str(port), str(args.files), str(args.file_kib * 1024)])
    try:
        await wait_up(f"http://127.0.0.1:{port}/f/0")
        urls = [f"http://127.0.0.1:{port}/f/{n}" for n in range(args.files)]
        # baselines and the hub take turns: each hub run is set against the baselines just before and after it
        durable = [await fetch_baseline(urls, folder / "durable-0", args.concurrency, durable=True)]
        plain = [await fetch_baseline(urls, folder / "plain-0", args.concurrency, durable=False)]
        hub: list[float] = []
        for n in range(1, args.repeats + 1):
            hub.append(await fetch_hub(urls, folder / f"hub-{n}", args.concurrency))
            durable.append(await fetch_baseline(urls, folder / f"durable-{n}", args.concurrency, durable=True))
            plain.append(await fetch_baseline(urls, folder / f"plain-{n}", args.concurrency, durable=False))
    finally:
        stop(provider)
    ratios = [rate / ((durable[n] + durable[n + 1]) / 2) for n, rate in enumerate(hub)]
    unsynced = [rate / ((plain[n] + plain[n + 1]) / 2) for n, rate in enumerate(hub)]
    return {
        "hub_files_per_s": [round(rate, 1) for rate in hub],
        "fsynced_files_per_s": [round(rate, 1) for rate in durable],
        "written_files_per_s": [round(rate, 1) for rate in plain],
        "ratios": [round(ratio, 3) for ratio in ratios],
        "ratio": round(statistics.median(ratios), 3),
        "ratio_to_unsynced_writes": round(statistics.median(unsynced), 3),
        "target": 0.70,
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {}
    settle_garbage_collector()  # as `channelhub serve` does once started: the fetcher runs there
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        folder = Path(tmp)
        if not args.serve_only:
            results["fetch"] = await measure_fetch(args, folder)
        # 2. serve, 3. memory
        serve_folder = folder / "serve"
        token, blob_path = await seed_served_file(serve_folder, args.serve_mib)
        big_token, _ = await seed_served_file(serve_folder, args.big_mib)
        hub_port, file_port = free_port(), free_port()
        config = write_config(serve_folder, "hub.toml", hub_port, 1 << 31, loop=args.loop)
        hub_process = start([sys.executable, "-m", "hub.cli", "serve", "--config", str(config)])
        file_process = start([sys.executable, __file__, "--file-server", str(file_port), str(blob_path), args.loop])
        try:
            await wait_up(f"http://127.0.0.1:{hub_port}/healthz")
            await wait_up(f"http://127.0.0.1:{file_port}/file")
            hub_url = f"http://127.0.0.1:{hub_port}/media/{token}"
            file_url = f"http://127.0.0.1:{file_port}/file"
            await serve_load(hub_url, 4, 1)  # warm both
            await serve_load(file_url, 4, 1)
            # FileResponse and the hub take turns, as the fetch measure does
            plain = [await serve_load(file_url, args.clients, args.rounds)]
            served: list[float] = []
            for _ in range(args.repeats):
                served.append(await serve_load(hub_url, args.clients, args.rounds))
                plain.append(await serve_load(file_url, args.clients, args.rounds))
            ratios = [rate / ((plain[n] + plain[n + 1]) / 2) for n, rate in enumerate(served)]
            results["serve"] = {
                "hub_mib_per_s": [round(rate, 1) for rate in served],
                "file_response_mib_per_s": [round(rate, 1) for rate in plain],
                "ratios": [round(ratio, 3) for ratio in ratios],
                "ratio": round(statistics.median(ratios), 3),
                "target": 0.80,
            }
            before, peak = await stream_memory(f"http://127.0.0.1:{hub_port}/media/{big_token}", hub_process.pid)
            results["memory"] = {
                "file_mib": args.big_mib,
                "rss_before_mib": round(before / 1024, 1),
                "rss_peak_mib": round(peak / 1024, 1),
                "growth_mib": round((peak - before) / 1024, 1),
                "target_growth_below_mib": 32,
            }
        finally:
            stop(hub_process)
            stop(file_process)
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--provider":
        provider_server(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--file-server":
        file_server(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--file-kib", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve-mib", type=int, default=5)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--big-mib", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve-only", action="store_true", help="skip 1. (fetch): measure serving and memory")
    add_loop_argument(parser)
    args = parser.parse_args()
    os.environ.setdefault("CHANNELHUB_LOG_LEVEL", "WARNING")
    print(json.dumps(run_on_loop(run(args), args.loop), indent=2))


if __name__ == "__main__":
    main()
