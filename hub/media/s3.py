"""Blobs in an S3-compatible bucket (AWS, MinIO, Ceph, R2, ...): ``<prefix>blobs/<sha256>``.

The key is known only once every byte went by, so a blob larger than one part is uploaded in parts to
``<prefix>incoming/<random>``, then copied to its key inside the server and the upload removed; a small one is
sent once, straight to its key. Reads are ranged GETs streamed in chunks. What a process that stopped mid-upload
left under ``incoming/`` goes with the orphan walk (``drop_unfinished``).
"""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from hub.media.blobs import (
    CHUNK_BYTES,
    BlobNotFound,
    BlobStat,
    BlobStream,
    Digest,
    RangeNotSatisfiable,
    StoredBlob,
    StoreUnavailable,
    byte_range,
    check_key,
    is_key,
)

__all__ = ["S3BlobStore"]

#: the size of each part of a multipart upload (S3's minimum is 5 MiB for every part but the last)
PART_BYTES = 8 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
#: a put of content already kept renews the object's time when it is older than this (one server-side copy): well
#: inside the orphan walk's grace (an hour), and rare enough that repeated puts of one file cost nothing more
_RENEW_AFTER = timedelta(minutes=10)
#: S3's answers that mean the credentials or the account are refused, whatever the object
_REFUSED = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "RequestTimeTooSkewed",
        "SignatureDoesNotMatch",
    }
)
#: the client's own faults that mean the server was not reached (or stopped answering)
_UNREACHED = (BotoConnectionError, HTTPClientError, NoCredentialsError, PartialCredentialsError)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _store_faults(
    method: Callable[Concatenate[S3BlobStore, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[S3BlobStore, _P], Coroutine[Any, Any, _R]]:
    """The bucket's bad state (missing, credentials refused, server down or failing) as StoreUnavailable with
    the reason in words; a refusal about one object (no such key, a range) is the method's own to say."""

    async def translated(self: S3BlobStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(self, *args, **kwargs)
        except (ClientError, *_UNREACHED) as exc:
            unavailable = _unavailable(exc, self.bucket)
            if unavailable is None:
                raise
            raise unavailable from exc

    return translated


def _unavailable(exc: Exception, bucket: str) -> StoreUnavailable | None:
    """The client's error as StoreUnavailable when it says the store as a whole cannot be used now; None for an
    answer about one object."""
    if isinstance(exc, ClientError):
        reason = _fault(exc, bucket)
        return None if reason is None else StoreUnavailable(reason)
    return StoreUnavailable(f"the S3 server cannot be reached: {exc}")


class S3BlobStore:
    """A ``BlobStore`` in ``url`` (``s3://bucket/prefix``). ``endpoint_url`` names an S3-compatible server
    (path-style addressing then); credentials left out fall back to the platform's (instance role, ...)."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        part_bytes: int = PART_BYTES,
    ) -> None:
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
        self.bucket, _, prefix = url[5:].partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._part_bytes = max(part_bytes, 5 * 1024 * 1024)
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
            "config": Config(
                s3={"addressing_style": "path"} if endpoint_url else {},
                # S3-compatible servers differ in the newer default checksums; S3 itself accepts both
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"mode": "standard"},
            ),
        }
        self._exits = contextlib.AsyncExitStack()
        self._client: Any = None

    def object_name(self, key: str) -> str:
        """The object that holds the blob ``key``."""
        return f"{self.prefix}blobs/{check_key(key)}"

    @_store_faults
    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None, sync: bool = True) -> StoredBlob:
        # an object S3 acknowledged is durable: nothing is left for ``sync``
        s3 = await self._s3()
        digest = Digest(max_bytes)
        incoming = f"{self.prefix}incoming/{uuid.uuid4().hex}"
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        part = io.BytesIO()  # a file, not bytes: the HTTP client streams it rather than send one large write
        try:
            async for chunk in chunks:
                digest.update(chunk)
                part.write(chunk)
                if part.tell() >= self._part_bytes:
                    if upload_id is None:
                        started = await s3.create_multipart_upload(Bucket=self.bucket, Key=incoming)
                        upload_id = str(started["UploadId"])
                    parts.append(await self._upload_part(incoming, upload_id, len(parts) + 1, part))
                    part = io.BytesIO()
            blob = digest.result()
            name = self.object_name(blob.key)
            if upload_id is None:  # one part: straight to its name
                if not await self._kept_renewed(name, blob.mime):
                    part.seek(0)
                    await s3.put_object(Bucket=self.bucket, Key=name, Body=part, ContentType=blob.mime)
                return blob
            if part.tell():
                parts.append(await self._upload_part(incoming, upload_id, len(parts) + 1, part))
            del part
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=incoming, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            upload_id = None
            await self._move(incoming, name, blob.mime)
            return blob
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(ClientError):
                    await s3.abort_multipart_upload(Bucket=self.bucket, Key=incoming, UploadId=upload_id)
            raise

    async def sync(self, keys: Iterable[str]) -> None:
        return None

    @_store_faults
    async def open(self, key: str, start: int | None = None, end: int | None = None) -> BlobStream:
        s3 = await self._s3()
        name = self.object_name(key)
        ranged: dict[str, str] = {}
        if start is not None or end is not None:
            first = start or 0
            if first < 0 or (end is not None and end < first):
                raise ValueError(f"invalid byte range {start}-{end}")
            ranged["Range"] = f"bytes={first}-{'' if end is None else end}"
        try:
            response = await s3.get_object(Bucket=self.bucket, Key=name, **ranged)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from None
            if _code(exc) == "InvalidRange":
                raise RangeNotSatisfiable(key, start or 0, (await self.stat(key)).size) from None
            raise
        body = response["Body"]
        matched = _CONTENT_RANGE.match(str(response.get("ContentRange", "")))
        if matched:
            first, last, size = (int(group) for group in matched.groups())
        else:
            size = int(response["ContentLength"])
            first, last = byte_range(key, size, start, end)

        async def release() -> None:
            body.close()

        return BlobStream(
            key=key, size=size, start=first, end=last, chunks=body.iter_chunks(CHUNK_BYTES), release=release
        )

    @_store_faults
    async def stat(self, key: str) -> BlobStat:
        s3 = await self._s3()
        try:
            head = await s3.head_object(Bucket=self.bucket, Key=self.object_name(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise BlobNotFound(key) from None
            raise
        return BlobStat(key=key, size=int(head["ContentLength"]), stored_at=head["LastModified"].astimezone(UTC))

    @_store_faults
    async def delete(self, key: str) -> bool:
        name = self.object_name(key)
        if not await self._exists(name):
            return False
        await (await self._s3()).delete_object(Bucket=self.bucket, Key=name)
        return True

    async def scan(self) -> AsyncIterator[BlobStat]:
        # a generator, so ``_store_faults`` cannot wrap it: the bucket's bad state is said here, page by page
        listed = f"{self.prefix}blobs/"
        pages = aiter((await self._s3()).get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=listed))
        while True:
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                return
            except (ClientError, *_UNREACHED) as exc:
                unavailable = _unavailable(exc, self.bucket)
                if unavailable is None:
                    raise
                raise unavailable from exc
            for item in page.get("Contents", []):
                if not is_key(item["Key"][len(listed) :]):
                    continue
                yield BlobStat(
                    key=item["Key"][len(listed) :],
                    size=int(item["Size"]),
                    stored_at=item["LastModified"].astimezone(UTC),
                )

    @_store_faults
    async def drop_unfinished(self, before: datetime) -> int:
        # a multipart upload never completed (its parts are kept, and billed, until aborted), and an upload
        # completed but never copied to its key
        s3 = await self._s3()
        incoming = f"{self.prefix}incoming/"
        removed = 0
        async for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=incoming):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < before:
                    await s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    removed += 1
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=incoming):
            for item in page.get("Contents", []):
                if item["LastModified"] < before:
                    await s3.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed

    @_store_faults
    async def check(self) -> None:
        try:
            await (await self._s3()).head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in ("NoSuchBucket", "404", "NotFound"):  # a HEAD's answer has no body, so no code
                raise StoreUnavailable(f"the bucket {self.bucket!r} does not exist") from exc
            raise

    async def close(self) -> None:
        await self._exits.aclose()
        self._client = None

    async def _s3(self) -> Any:
        """The client, made on first use (it needs a running event loop)."""
        if self._client is None:
            client = await self._exits.enter_async_context(get_session().create_client("s3", **self._client_args))
            if self._client is None:
                self._client = client
        return self._client

    async def _upload_part(self, name: str, upload_id: str, number: int, data: io.BytesIO) -> dict[str, Any]:
        s3 = await self._s3()
        data.seek(0)
        sent = await s3.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=data)
        return {"ETag": sent["ETag"], "PartNumber": number}

    async def _move(self, incoming: str, name: str, mime: str) -> None:
        """Copy a finished upload to its blob's name inside the server (unless the same content is there), then
        remove the upload."""
        s3 = await self._s3()
        try:
            if not await self._kept_renewed(name, mime):
                await self._copy(incoming, name, mime)
        finally:
            await s3.delete_object(Bucket=self.bucket, Key=incoming)

    async def _kept_renewed(self, name: str, mime: str) -> bool:
        """Whether the object ``name`` exists; if it was stored more than ``_RENEW_AFTER`` ago, it is copied onto
        itself, so that its ``LastModified`` says a put has just handed it out (the orphan walk goes by it)."""
        head = await self._head(name)
        if head is None:
            return False
        if datetime.now(UTC) - head["LastModified"] > _RENEW_AFTER:
            await self._copy(name, name, mime)
        return True

    async def _copy(self, source: str, name: str, mime: str) -> None:
        """Copy the object ``source`` to ``name`` inside the server (onto itself: only its time changes)."""
        await (await self._s3()).copy_object(
            Bucket=self.bucket,
            Key=name,
            CopySource={"Bucket": self.bucket, "Key": source},
            ContentType=mime,
            MetadataDirective="REPLACE",
        )

    async def _exists(self, name: str) -> bool:
        return await self._head(name) is not None

    async def _head(self, name: str) -> dict[str, Any] | None:
        """The object's metadata (``LastModified``, ...), or None when there is no such object."""
        try:
            head: dict[str, Any] = await (await self._s3()).head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return head


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _fault(exc: ClientError, bucket: str) -> str | None:
    """The reason the store as a whole cannot be used now, in words; None for an answer about one object."""
    code = _code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code == "NoSuchBucket":
        return f"the bucket {bucket!r} does not exist"
    if code in _REFUSED or status in (401, 403):
        return f"the S3 server refused the credentials or access to the bucket {bucket!r} ({code or status})"
    if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
        return f"the S3 server failed (HTTP {status}, {code or 'no code'})"
    return None
