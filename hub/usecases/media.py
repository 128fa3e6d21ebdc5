"""Media use cases: an agent uploads a file, an agent or bot reads an attachment of a conversation they may
see, an admin asks for a failed fetch again, a provider fetches an agent's file by its public link, and a
send's ``{"upload": id}`` becomes an attachment the policy can judge.

The bytes go through ``hub.media`` (the blob store); the metadata through ``hub.store.media``.
"""

from __future__ import annotations

import logging
import mimetypes
import secrets
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from hub.audit import record
from hub.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from hub.events import AttachmentChanged
from hub.media import (
    BlobNotFound,
    BlobStat,
    BlobStore,
    BlobTooLarge,
    ImageRefused,
    MediaError,
    StoreUnavailable,
    describe_stored_image,
    refined_mime,
    types_disagree,
)
from hub.media.sniff import UNKNOWN
from hub.model import Attachment, Message, MessageKind, Role
from hub.store.contacts import get_contact
from hub.store.media import (
    FAILED,
    STORED,
    AttachmentRecord,
    Upload,
    attachments_json,
    blob_in_use,
    blobs_named,
    create_upload,
    expire_attachments,
    forget_contact_media,
    load_attachment,
    load_attachment_row,
    load_linked,
    load_upload,
    new_link_token,
    prune_uploads,
    render_attachments,
    retry_failed,
)
from hub.usecases._parts import HubParts
from hub.usecases.access import conversation_for
from hub.usecases.permissions import require_role
from hub.usecases.principal import Principal

__all__ = [
    "ORPHAN_GRACE",
    "AttachmentRecord",
    "BlobsDropped",
    "attachment_for",
    "attachments_of",
    "delete_contact_media",
    "drop_orphan_blobs",
    "drop_unused_blobs",
    "kind_of",
    "linked_attachment",
    "render_attachments",
    "resolve_uploads",
    "retry_fetch",
    "store_unavailable",
    "sweep_media",
    "upload_file",
]

logger = logging.getLogger(__name__)

#: the longest file name kept (longer ones are cut, keeping the extension)
_NAME_LENGTH = 300
#: how long an upload no message sent is kept
UPLOADS_KEPT = timedelta(days=1)
#: how long a blob that no row names is left alone by the orphan walk. A fetch or an upload puts the bytes first
#: and writes the row that names them right after (seconds; a fetch at most its lease, minutes), and a put of
#: content already kept renews the blob's time: an hour never takes a blob whose row is on its way, and allows
#: for the store's clock (S3's ``LastModified``) being a few minutes off the hub's.
ORPHAN_GRACE = timedelta(hours=1)
#: blob keys looked up in the database at once by the orphan walk (one query each time; a few hundred keep the
#: query's bound parameters under SQLite's oldest limit)
_NAMES_BATCH = 200


def kind_of(mime: str) -> MessageKind:
    """The attachment kind a file's type sends as: image, audio, video, or file."""
    major = mime.split("/", 1)[0]
    return {"image": MessageKind.IMAGE, "audio": MessageKind.AUDIO, "video": MessageKind.VIDEO}.get(
        major, MessageKind.FILE
    )


def _clean_name(name: str | None) -> str | None:
    """The file's own name, without any folder a browser sent with it, control characters removed."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable()).strip()
    if not base:
        return None
    if len(base) > _NAME_LENGTH:
        stem, dot, extension = base.rpartition(".")
        base = (stem[: _NAME_LENGTH - len(extension) - 1] + dot + extension) if dot else base[:_NAME_LENGTH]
    return base


async def upload_file(
    hub: HubParts,
    blobs: BlobStore,
    actor: Principal,
    chunks: AsyncIterable[bytes],
    *,
    file_name: str | None,
    declared_mime: str | None,
) -> Upload:
    """Keep an agent's file (streamed, up to ``[media] max_bytes``), sniff its real type and, for images,
    its dimensions and a thumbnail. Refusals: ``file_too_large`` (Invalid with ``limit``), ``empty_file``,
    ``type_mismatch`` (the bytes are not what the name or the declared type says); ``media_store_unavailable``
    (Unavailable) when the blob store cannot be used now. Nothing is kept then: the upload's row is written
    only once its bytes (and thumbnail) are."""
    agent_id = actor.agent_id()
    kept: list[str] = []
    try:
        upload = await _keep_upload(
            hub, blobs, agent_id, chunks, kept, file_name=file_name, declared_mime=declared_mime
        )
    except StoreUnavailable as exc:
        # the store may still take a delete; if not, the bytes are the orphan walk's
        await drop_unused_blobs(hub, blobs, set(kept), action="upload refused")
        raise store_unavailable(exc, "upload") from None
    await create_upload(hub.store, upload, hub.clock())
    return upload


def store_unavailable(exc: StoreUnavailable, action: str) -> Unavailable:
    """The refusal for a blob store that cannot be used now (503 ``media_store_unavailable``), logged once with
    its reason: the caller sees that the hub's storage, not their request, is at fault."""
    logger.warning("media store unavailable (%s): %s", action, exc.reason)
    return Unavailable("media_store_unavailable", "the media store cannot be used now; try again later")


async def _keep_upload(
    hub: HubParts,
    blobs: BlobStore,
    agent_id: int,
    chunks: AsyncIterable[bytes],
    kept: list[str],
    *,
    file_name: str | None,
    declared_mime: str | None,
) -> Upload:
    """The upload's bytes in the blob store (their keys added to ``kept`` as they are), and the row to write."""
    limit = hub.settings.media.max_bytes
    try:
        blob = await blobs.put(chunks, max_bytes=limit)
    except BlobTooLarge:
        raise Invalid(
            "file_too_large", f"the file is larger than {limit} bytes, the most the hub takes", limit=limit
        ) from None
    kept.append(blob.key)
    name = _clean_name(file_name)
    refusal = _refusal(blob.size, blob.mime, name, declared_mime)
    if refusal is not None:
        if not await blob_in_use(hub.store, blob.key):
            await blobs.delete(blob.key)
        raise refusal
    mime = refined_mime(blob.mime, declared=declared_mime, file_name=name)  # a CSV or a vCard is more than text
    if mime == UNKNOWN and declared_mime and declared_mime.split("/", 1)[0] not in ("image", "audio", "video"):
        mime = declared_mime.split(";", 1)[0].strip() or UNKNOWN
    width = height = None
    thumbnail_key = None
    if mime.startswith("image/"):
        try:
            facts = await describe_stored_image(blobs, blob.key)
        except ImageRefused:
            facts = None
        if facts is not None:
            width, height = facts.width, facts.height
            thumbnail_key = (await blobs.put(_one(facts.thumbnail))).key
            kept.append(thumbnail_key)
    return Upload(
        id=secrets.token_hex(16),
        agent_id=agent_id,
        mime=mime,
        size=blob.size,
        sha256=blob.key,
        file_name=name,
        width=width,
        height=height,
        thumbnail_key=thumbnail_key,
    )


def _refusal(size: int, sniffed: str, name: str | None, declared: str | None) -> Invalid | None:
    if size == 0:
        return Invalid("empty_file", "the file is empty", field="file")
    by_name = mimetypes.guess_type(name)[0] if name else None
    if by_name is not None:
        if types_disagree(by_name, sniffed):
            return Invalid(
                "type_mismatch",
                f"the file is named {name!r} ({by_name}) but its bytes are {sniffed}",
                field="file",
                sniffed=sniffed,
                declared=by_name,
            )
        # A browser declares a file's type from its name, by its computer's own table (Windows with Excel calls
        # every .csv application/vnd.ms-excel): once the name agrees with the bytes, that table is not asked.
        return None
    if declared and types_disagree(declared, sniffed):
        return Invalid(
            "type_mismatch",
            f"the file was sent as {declared} but its bytes are {sniffed}",
            field="file",
            sniffed=sniffed,
            declared=declared,
        )
    return None


async def _one(data: bytes) -> AsyncIterable[bytes]:
    yield data


async def attachments_of(hub: HubParts, message: Message) -> list[dict[str, Any]]:
    """A message's attachments as the message JSON gives them, read back from the store (their ids and states
    as stored); what the message itself holds where a row is missing."""
    return await attachments_json(hub.store, message)


async def attachment_for(hub: HubParts, actor: Principal, attachment_id: int) -> AttachmentRecord:
    """The attachment if ``actor`` may see its conversation and its bytes are kept. NotFound; Forbidden;
    Conflict ``media_not_stored`` (still pending, failed or expired)."""
    record = await load_attachment(hub.store, attachment_id)
    if record is None:
        raise NotFound("not_found", f"no attachment {attachment_id}")
    await conversation_for(hub.store, actor, record.conversation_id, act=False)
    if record.state != STORED or record.blob_key is None:
        raise Conflict(
            "media_not_stored",
            f"the attachment is {record.state}" + (f": {record.error}" if record.error else ""),
            state=record.state,
        )
    return record


async def linked_attachment(hub: HubParts, token: str) -> AttachmentRecord:
    """The attachment a provider fetches by the public link the hub sent (valid for a few days)."""
    record = await load_linked(hub.store, token, now=hub.clock())
    if record is None or record.blob_key is None:
        raise NotFound("not_found", "no such media link, or it expired")
    return record


async def retry_fetch(hub: HubParts, actor: Principal, attachment_id: int) -> dict[str, object]:
    """An admin asks for a failed fetch again: the attachment is pending and due now (the caller wakes the
    fetcher). Forbidden unless admin; NotFound; Conflict ``not_failed``, or ``not_refetchable`` for a failed
    attachment the hub no longer knows where to fetch (its contact's data was deleted)."""
    require_role(actor, Role.ADMIN)
    failed = await load_attachment(hub.store, attachment_id)
    if failed is None:
        raise NotFound("not_found", f"no attachment {attachment_id}")
    if not await retry_failed(hub.store, attachment_id, now=hub.clock()):
        if failed.state == FAILED:
            raise Conflict("not_refetchable", f"there is nothing to fetch again: {failed.error}", state=failed.state)
        raise Conflict("not_failed", f"the attachment is {failed.state}; only a failed fetch is tried again")
    found = await load_attachment_row(hub.store, attachment_id)
    assert found is not None
    await record(
        hub.store,
        "media.retried",
        actor=actor,
        at=hub.clock(),
        target=f"attachment:{attachment_id}",
        conversation_id=failed.conversation_id,
        after={"state": found["state"]},  # not the fetch's error: it may quote the provider's signed link
    )
    hub.bus.publish(
        AttachmentChanged(conversation_id=failed.conversation_id, message_id=failed.message_id, attachment=found)
    )
    return found


async def resolve_uploads(hub: HubParts, actor: Principal, attachments: Sequence[Attachment]) -> tuple[Attachment, ...]:
    """Each ``{"upload": id}`` of a send as the attachment it sends: its kind from the bytes' type, its size
    and name, and the hub's public link (``server.public_url`` + ``/media/{token}``) for providers that fetch
    by URL. An upload is its uploader's only: another agent's is NotFound, like one that does not exist."""
    resolved = []
    for index, attachment in enumerate(attachments):
        if attachment.upload_id is None:
            resolved.append(attachment)
            continue
        upload = await load_upload(hub.store, attachment.upload_id)
        if upload is None or upload.agent_id != actor.id:
            raise NotFound(
                "upload_not_found", f"attachments[{index}]: no upload {attachment.upload_id!r}", field="attachments"
            )
        token = new_link_token()
        public = hub.settings.server.public_url.rstrip("/")
        resolved.append(
            replace(
                attachment,
                kind=kind_of(upload.mime),
                url=f"{public}/media/{token}",
                mime_type=upload.mime,
                file_name=upload.file_name,
                size=upload.size,
                link_token=token,
            )
        )
    return tuple(resolved)


@dataclass(frozen=True, slots=True)
class BlobsDropped:
    """What deleting blobs came to: how many went, and how many no row names any more but the store could not
    delete now (``pending``: the orphan walk takes them once the store is back)."""

    removed: int = 0
    pending: int = 0


async def drop_unused_blobs(hub: HubParts, blobs: BlobStore, keys: set[str], *, action: str) -> BlobsDropped:
    """Delete the blobs of ``keys`` that no attachment or upload names any more. Never raises for the store: the
    rows that named the blobs are gone already, so a store that fails (an outage) leaves the rest ``pending``,
    said in one warning naming ``action``, for the orphan walk."""
    ordered = sorted(keys)
    removed = 0
    for done, key in enumerate(ordered):
        try:
            if not await blob_in_use(hub.store, key) and await blobs.delete(key):
                removed += 1
        except Exception as exc:  # whatever the store says, the blobs are the orphan walk's now (see the docstring)
            pending = await _unnamed(hub, ordered[done:])
            _store_fault("%s: %d blobs left for the orphan walk", exc, action, pending)
            return BlobsDropped(removed, pending)
    return BlobsDropped(removed)


async def _unnamed(hub: HubParts, keys: Sequence[str]) -> int:
    """How many of ``keys`` no row names."""
    count = 0
    for first in range(0, len(keys), _NAMES_BATCH):
        batch = keys[first : first + _NAMES_BATCH]
        count += len(set(batch) - await blobs_named(hub.store, batch))
    return count


def _store_fault(message: str, exc: Exception, *args: object) -> None:
    """One warning for a store that failed; the traceback only for a failure that is not the store's known
    bad state (StoreUnavailable says its reason in words)."""
    if isinstance(exc, StoreUnavailable):
        logger.warning(message + " (the media store cannot be used now: %s)", *args, exc.reason)
    else:
        logger.warning(message + " (the media store failed: %s)", *args, exc, exc_info=exc)


async def sweep_media(hub: HubParts, blobs: BlobStore) -> int:
    """Retention: attachments stored more than ``[media] keep_days`` ago lose their bytes (0: kept), uploads
    never sent are forgotten after a day; their blobs go once nothing names them. How many blobs went. A store
    that cannot delete now does not stop the sweep: its blobs are left to the orphan walk."""
    now = hub.clock()
    keys = await prune_uploads(hub.store, before=now - UPLOADS_KEPT)
    keep_days = hub.settings.media.keep_days
    if keep_days > 0:
        keys |= await expire_attachments(hub.store, before=now - timedelta(days=keep_days))
    return (await drop_unused_blobs(hub, blobs, keys, action="media retention")).removed


async def drop_orphan_blobs(hub: HubParts, blobs: BlobStore) -> int | None:
    """The orphan walk: delete every blob of the store that no attachment or upload names and that was stored
    more than ``ORPHAN_GRACE`` ago. Orphans are what a deletion left when the store could not delete (an outage,
    ``BlobsDropped.pending``) or a process stopped between forgetting a row and deleting its blob, and the bytes
    of a fetch or an upload that stopped before its row was written. Names are looked up a few hundred blobs at
    a time. How many went; None when the store failed on the way (one warning: the walk starts again next time,
    and what it deleted before stays deleted).

    The walk first deletes what writes left unfinished in the store's ``incoming/`` area more than the same
    grace ago (a process stopped mid-write): no blob, so not counted, but logged."""
    cutoff = hub.clock() - ORPHAN_GRACE
    removed = 0
    old: list[BlobStat] = []
    try:
        unfinished = await blobs.drop_unfinished(cutoff)
        if unfinished:
            logger.info("media orphan walk removed %s unfinished writes", unfinished)
        async for stat in blobs.scan():
            if stat.stored_at < cutoff:
                old.append(stat)
            if len(old) >= _NAMES_BATCH:
                removed += await _drop_orphans(hub, blobs, old, cutoff)
                old = []
        removed += await _drop_orphans(hub, blobs, old, cutoff)
    except (MediaError, OSError) as exc:
        _store_fault("media orphan walk stopped after %d blobs removed; it walks again next time", exc, removed)
        return None
    return removed


async def _drop_orphans(hub: HubParts, blobs: BlobStore, found: Sequence[BlobStat], cutoff: datetime) -> int:
    """Delete the blobs of ``found`` that no row names. Each is looked at again just before: the scan's view may
    be old, and a put of the same content since (whose row is on its way) has renewed its time."""
    named = await blobs_named(hub.store, [stat.key for stat in found])
    removed = 0
    for stat in found:
        if stat.key in named:
            continue
        try:
            now = await blobs.stat(stat.key)
        except BlobNotFound:
            continue
        if now.stored_at < cutoff and await blobs.delete(stat.key):
            removed += 1
    return removed


async def delete_contact_media(hub: HubParts, blobs: BlobStore, actor: Principal, contact_id: int) -> dict[str, int]:
    """An admin deletes a contact's data: the media of every conversation of their identities goes (rows
    keep their place, without facts; blobs go once nothing names them). Recorded in the audit log
    (``contact.data_deleted``, with the counts). A store that cannot delete now (an S3 outage) does not undo or
    fail the deletion: no row names the blobs any more, so nobody gets them through the hub, and the answer
    counts them as ``blobs_pending``, for the orphan walk to delete once the store is back."""
    require_role(actor, Role.ADMIN)
    if await get_contact(hub.store, contact_id) is None:
        raise NotFound("not_found", f"no contact {contact_id}")
    count, keys = await forget_contact_media(hub.store, contact_id)
    dropped = await drop_unused_blobs(hub, blobs, keys, action=f"contact {contact_id}'s data deleted")
    outcome = {"attachments": count, "blobs": dropped.removed, "blobs_pending": dropped.pending}
    logger.info(
        "contact data deleted: %s attachments, %s blobs, %s left for the orphan walk",
        count,
        dropped.removed,
        dropped.pending,
    )
    await record(
        hub.store, "contact.data_deleted", actor=actor, at=hub.clock(), target=f"contact:{contact_id}", after=outcome
    )
    return outcome


def may_upload(actor: Principal) -> None:
    """Only agents upload (an operator has no id to own the file)."""
    if actor.id is None:
        raise Forbidden("forbidden", "only a logged-in agent uploads files")
