"""The [media] section: where attachments are kept, validated with one line naming the key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.logs import RedactSecrets
from hub.media import LocalBlobStore, S3BlobStore, open_blob_store
from hub.settings import Settings

S3 = """
[media]
url = "s3://hub-media/prod/attachments"
endpoint_url = "http://127.0.0.1:9000"
access_key = "env:MEDIA_ACCESS_KEY"
secret_key = "env:MEDIA_SECRET_KEY"
keep_days = 365
max_bytes = 1048576
"""
KEYS = {"MEDIA_ACCESS_KEY": "AKIA-media", "MEDIA_SECRET_KEY": "media-secret-value"}


def test_without_a_media_section_attachments_go_beside_the_sqlite_file(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(database_url=f"sqlite:///{tmp_path}/data/hub.db")
    assert settings.media.path is None
    assert settings.media.keep_days == 0
    assert settings.media.max_bytes == 100 * 1024 * 1024
    store = open_blob_store(settings)
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "data" / "media"
    relative = open_blob_store(make_settings(database_url="sqlite:///hub.db"))
    assert isinstance(relative, LocalBlobStore)
    assert relative.root == Path("media")


def test_a_postgresql_hub_must_name_its_media_store(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings(database_url="postgresql://hub@db/hub")
    with pytest.raises(ConfigError) as caught:
        open_blob_store(settings)
    assert caught.value.key == "media.path"
    named = make_settings(f'\n[media]\npath = "{tmp_path}/shared"\n', database_url="postgresql://hub@db/hub")
    shared = open_blob_store(named)
    assert isinstance(shared, LocalBlobStore)
    assert shared.root == tmp_path / "shared"


def test_an_s3_store_is_read_with_secrets_from_the_environment(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(S3, env=KEYS)
    media = settings.media
    assert (media.url, media.endpoint_url, media.keep_days, media.max_bytes) == (
        "s3://hub-media/prod/attachments",
        "http://127.0.0.1:9000",
        365,
        1048576,
    )
    assert (media.access_key, media.secret_key) == ("AKIA-media", "media-secret-value")
    store = open_blob_store(settings)
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("hub-media", "prod/attachments/")


def test_the_s3_credentials_are_redacted_from_logs(make_settings: Callable[..., Settings]) -> None:
    secrets = make_settings(S3, env=KEYS).secrets()
    assert {"AKIA-media", "media-secret-value"} <= secrets
    record = logging.LogRecord("hub", logging.INFO, __file__, 1, "key media-secret-value", None, None)
    RedactSecrets(secrets).filter(record)
    assert "media-secret-value" not in record.getMessage()


def test_every_media_key_can_come_from_the_environment(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        env={
            "CHANNELHUB_MEDIA_URL": "s3://bucket",
            "CHANNELHUB_MEDIA_KEEP_DAYS": "30",
            "CHANNELHUB_MEDIA_MAX_BYTES": "2048",
        }
    )
    assert (settings.media.url, settings.media.keep_days, settings.media.max_bytes) == ("s3://bucket", 30, 2048)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('path = "/srv/media"\nurl = "s3://bucket"', "media.url"),
        ('url = "https://bucket.example/media"', "media.url"),
        ('url = "s3:///prefix-without-bucket"', "media.url"),
        ('url = "s3://b"\nendpoint_url = "minio:9000"', "media.endpoint_url"),
        ('url = "s3://b"\naccess_key = "AKIA"', "media.secret_key"),
        ('url = "s3://b"\nsecret_key = "shh"', "media.access_key"),
        ("keep_days = -1", "media.keep_days"),
        ('keep_days = "a year"', "media.keep_days"),
        ("max_bytes = 0", "media.max_bytes"),
        ('path = ""', "media.path"),
        ('bucket = "b"', "media.bucket"),
    ],
)
def test_a_wrong_media_value_names_its_key(make_settings: Callable[..., Settings], toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(f"\n[media]\n{toml}\n")
    assert caught.value.key == key
