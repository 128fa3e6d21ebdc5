"""The bytes of an agent's file, for the adapters that upload them to their provider instead of sending the
hub's public link (WhatsApp Cloud's media upload; docs/media.md, *Outbound*).

The hub names no provider here: it opens the blob an attachment's public link points at and hands the adapter
a stream of it (``hub.ports.FileOpener``); an adapter that wants the bytes declares ``use_files``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime

from hub.media import BlobStore, MediaError
from hub.model import Attachment
from hub.ports import ChannelAdapter, FileOpener, FileUploader, StoredFile
from hub.store import Store
from hub.store.media import load_linked

__all__ = ["file_opener", "give_files"]

logger = logging.getLogger(__name__)


def file_opener(store: Store, blobs: BlobStore, clock: Callable[[], datetime]) -> FileOpener:
    """An opener of the agent's files this hub keeps: an attachment sent from an upload carries the token of
    its public link, which names the stored row and its blob while the link is valid. Anything else (a
    ``url`` the agent gave, a link past its days, bytes removed since) opens as None."""

    def open_file(attachment: Attachment) -> AbstractAsyncContextManager[StoredFile | None]:
        return _opened(store, blobs, clock, attachment)

    return open_file


@asynccontextmanager
async def _opened(
    store: Store, blobs: BlobStore, clock: Callable[[], datetime], attachment: Attachment
) -> AsyncIterator[StoredFile | None]:
    if attachment.link_token is None:
        yield None
        return
    record = await load_linked(store, attachment.link_token, now=clock())
    if record is None or record.blob_key is None or record.mime is None:
        yield None
        return
    try:
        stream = await blobs.open(record.blob_key)
    except MediaError as exc:
        logger.warning("an agent's file has no bytes any more: sending its link", extra={"error": str(exc)})
        yield None
        return
    async with stream:
        yield StoredFile(
            key=record.blob_key,
            mime=record.mime,
            size=stream.size,
            file_name=record.file_name,
            chunks=aiter(stream),
        )


def give_files(opener: FileOpener) -> Callable[[Mapping[str, ChannelAdapter]], None]:
    """What the hub runs on its adapters once they exist: each one that uploads files gets the opener."""

    def configure(adapters: Mapping[str, ChannelAdapter]) -> None:
        for adapter in adapters.values():
            if isinstance(adapter, FileUploader):
                adapter.use_files(opener)

    return configure
