"""Blob stores on real parts: a temporary directory, and moto's S3 server in its own process on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from hub.media import BlobStore, LocalBlobStore, S3BlobStore
from tests.api.conftest import make_api  # noqa: F401 -- a hub on both engines, for the tests of a store in a bad state
from tests.ports import free_port

S3_CREDENTIALS = {"access_key": "test-access", "secret_key": "test-secret"}
#: S3's smallest part, so that the multipart path is taken by blobs of a few MiB
PART_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server, started once for the test session in its own process."""
    yield from _moto_server()


@pytest.fixture(scope="session")
def s3_endpoint_checking_credentials() -> Iterator[str]:
    """A second moto server that checks every request's credentials, and knows none: each is refused (403)."""
    yield from _moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})


def unreachable_endpoint() -> str:
    """An S3 endpoint on a loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


def _moto_server(env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def s3_client(endpoint: str) -> Any:
    """A client of the test's S3 server, for what a test does to the bucket behind the hub's back."""
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
    )


async def make_bucket(endpoint: str) -> str:
    name = f"media-{uuid.uuid4().hex[:12]}"
    async with s3_client(endpoint) as s3:
        await s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def s3_store(s3_endpoint: str) -> AsyncIterator[S3BlobStore]:
    bucket = await make_bucket(s3_endpoint)
    store = S3BlobStore(f"s3://{bucket}/hub/media", endpoint_url=s3_endpoint, part_bytes=PART_BYTES, **S3_CREDENTIALS)
    yield store
    await store.close()


@pytest.fixture
async def local_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "media")


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """Each contract test runs against both stores."""
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "media")
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = await make_bucket(endpoint)
    s3 = S3BlobStore(f"s3://{bucket}/hub/media", endpoint_url=endpoint, part_bytes=PART_BYTES, **S3_CREDENTIALS)
    yield s3
    await s3.close()
