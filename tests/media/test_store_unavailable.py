"""An S3 media store in a bad state (its bucket missing, its server refusing the credentials or not listening) is
the hub's fault to say, not a 500: the store raises StoreUnavailable with the reason, an upload or a media read
answers 503 ``media_store_unavailable`` and keeps nothing, the fault is logged once per request, and start-up
warns once, naming ``[media] url``, without refusing to start. Against moto's server on loopback."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import func, select

from hub.api.keys import HUB
from hub.media import S3BlobStore, StoreUnavailable
from hub.store.tables import uploads
from tests.api.conftest import MakeApi
from tests.media._serving import ACCOUNT, stored_video
from tests.media.conftest import S3_CREDENTIALS, make_bucket, s3_client, unreachable_endpoint

FAULTS = ("no_bucket", "credentials_refused", "unreachable")
#: what the reason says for each fault
REASONS = {"no_bucket": "does not exist", "credentials_refused": "refused", "unreachable": "cannot be reached"}


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _target(fault: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """(bucket URL, endpoint) of a store in the bad state ``fault``."""
    missing = f"s3://missing-{uuid.uuid4().hex[:10]}/hub"
    if fault == "no_bucket":
        return missing, request.getfixturevalue("s3_endpoint")
    if fault == "credentials_refused":
        return missing, request.getfixturevalue("s3_endpoint_checking_credentials")
    return missing, unreachable_endpoint()


def _media_toml(url: str, endpoint: str) -> str:
    return (
        f'\n[media]\nurl = "{url}"\nendpoint_url = "{endpoint}"\n'
        f'access_key = "{S3_CREDENTIALS["access_key"]}"\nsecret_key = "{S3_CREDENTIALS["secret_key"]}"\n'
    )


async def _drop_bucket(endpoint: str, bucket: str) -> None:
    """The bucket goes away under a running hub (removed by hand, a lifecycle rule, another deployment)."""
    async with s3_client(endpoint) as s3:
        listed = await s3.list_objects_v2(Bucket=bucket)
        for item in listed.get("Contents", []):
            await s3.delete_object(Bucket=bucket, Key=item["Key"])
        await s3.delete_bucket(Bucket=bucket)


def _store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings of requests (the media sweep, in the background, warns of the same store on its own)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("media store unavailable")
    ]


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_store_in_a_bad_state_says_why_rather_than_failing_with_the_client_error(
    fault: str, request: pytest.FixtureRequest
) -> None:
    url, endpoint = _target(fault, request)
    store = S3BlobStore(url, endpoint_url=endpoint, **S3_CREDENTIALS)
    try:
        with pytest.raises(StoreUnavailable, match=REASONS[fault]):
            await store.put(_chunks(b"a customer's invoice"))
        with pytest.raises(StoreUnavailable, match=REASONS[fault]):
            await store.open("0" * 64)
        with pytest.raises(StoreUnavailable, match=REASONS[fault]):
            await store.check()
    finally:
        await store.close()


async def test_a_store_whose_bucket_exists_passes_the_check(s3_endpoint: str) -> None:
    bucket = await make_bucket(s3_endpoint)
    store = S3BlobStore(f"s3://{bucket}/hub", endpoint_url=s3_endpoint, **S3_CREDENTIALS)
    try:
        await store.check()
    finally:
        await store.close()


@pytest.mark.parametrize("fault", FAULTS)
async def test_an_upload_to_a_store_in_a_bad_state_is_503_and_keeps_nothing(
    fault: str, request: pytest.FixtureRequest, make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    url, endpoint = _target(fault, request)
    api = await make_api(_media_toml(url, endpoint))
    alice = await api.agent("alice")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(b"a" * 4096), filename="notes.txt", content_type="text/plain")
        response = await alice.client.post("/api/v1/uploads", data=form, headers=alice.headers)
    assert response.status == 503, await response.text()
    assert (await response.json())["error"]["code"] == "media_store_unavailable"
    async with api.store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(uploads))).scalar_one() == 0
    logged = _store_warnings(caplog)
    assert len(logged) == 1, logged
    assert REASONS[fault] in logged[0]


async def test_a_media_read_from_a_missing_bucket_is_503(
    s3_endpoint: str, make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = await make_bucket(s3_endpoint)
    api = await make_api(ACCOUNT + _media_toml(f"s3://{bucket}/hub", s3_endpoint))
    hub = api.app[HUB]
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4096
    blob = await hub.blobs.put(_chunks(video))
    token = await stored_video(hub, api.settings, key=blob.key, size=blob.size)
    assert (await api.client.get(f"/media/{token}")).status == 200
    await _drop_bucket(s3_endpoint, bucket)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        response = await api.client.get(f"/media/{token}")
    assert response.status == 503, await response.text()
    assert (await response.json())["error"]["code"] == "media_store_unavailable"
    logged = _store_warnings(caplog)
    assert len(logged) == 1, logged
    assert "does not exist" in logged[0]


@pytest.mark.parametrize("fault", ["no_bucket", "unreachable"])
async def test_start_up_warns_once_naming_the_setting_and_starts_anyway(
    fault: str, request: pytest.FixtureRequest, make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    url, endpoint = _target(fault, request)
    with caplog.at_level(logging.WARNING):
        api = await make_api(_media_toml(url, endpoint))
    logged = [r.getMessage() for r in caplog.records if "[media] url" in r.getMessage()]
    assert len(logged) == 1, logged
    assert url in logged[0]
    # a closed port is refused at once, but the client's retries with back-off may outlast the start-up check's
    # time on a busy machine: either reason is the truth about a server that cannot be reached
    reasons = (REASONS[fault], "no answer within") if fault == "unreachable" else (REASONS[fault],)
    assert any(reason in logged[0] for reason in reasons), logged[0]
    assert (await api.client.get("/healthz")).status == 200
