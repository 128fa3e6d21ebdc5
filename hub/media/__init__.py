"""Media: the bytes of attachments, kept by content (SHA-256) in a directory or an S3-compatible bucket.

No aiohttp and no SQLAlchemy here: the database keeps the metadata, the API serves the bytes, and both call
this package. ``open_blob_store(settings)`` picks the store the configuration names.
"""

from __future__ import annotations

from pathlib import Path

from hub.errors import ConfigError
from hub.media.blobs import (
    BlobNotFound,
    BlobStat,
    BlobStore,
    BlobStream,
    BlobTooLarge,
    InvalidKey,
    MediaError,
    RangeNotSatisfiable,
    StoredBlob,
    StoreUnavailable,
)
from hub.media.images import ImageFacts, ImageRefused, describe_image, describe_stored_image
from hub.media.local import LocalBlobStore
from hub.media.s3 import S3BlobStore
from hub.media.sniff import kind_of_bytes, refined_mime, sniff_mime, types_disagree
from hub.settings import Settings

__all__ = [
    "BlobNotFound",
    "BlobStat",
    "BlobStore",
    "BlobStream",
    "BlobTooLarge",
    "ImageFacts",
    "ImageRefused",
    "InvalidKey",
    "LocalBlobStore",
    "MediaError",
    "RangeNotSatisfiable",
    "S3BlobStore",
    "StoreUnavailable",
    "StoredBlob",
    "default_media_path",
    "describe_image",
    "describe_stored_image",
    "kind_of_bytes",
    "open_blob_store",
    "refined_mime",
    "sniff_mime",
    "types_disagree",
]


def open_blob_store(settings: Settings) -> BlobStore:
    """The store ``[media]`` names: ``url`` (S3), else ``path``, else a ``media/`` folder beside the SQLite
    file. A PostgreSQL hub may run as several processes on several machines, so it must name its store:
    ConfigError on ``media.path`` otherwise."""
    media = settings.media
    if media.url:
        return S3BlobStore(
            media.url,
            endpoint_url=media.endpoint_url,
            region=media.region,
            access_key=media.access_key,
            secret_key=media.secret_key,
        )
    if media.path:
        return LocalBlobStore(media.path)
    path = default_media_path(settings.database_url)
    if path is None:
        raise ConfigError(
            "media.path",
            "is required with a PostgreSQL database: a directory every hub process shares, or media.url (s3://...)",
        )
    return LocalBlobStore(path)


def default_media_path(database_url: str) -> Path | None:
    """``media/`` beside the SQLite file of ``database_url`` (in the working directory for an in-memory
    database); None for PostgreSQL."""
    if not database_url.startswith("sqlite"):
        return None
    file = database_url.split(":///", 1)[1] if ":///" in database_url else ""
    file = file.split("?", 1)[0]
    if not file or file == ":memory:":
        return Path("media")
    return Path(file).parent / "media"
