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
from dataclasses import replace
from datetime import timedelta

from hub.audit import record
from hub.errors import Conflict, Forbidden, Invalid, NotFound
from hub.events import AttachmentChanged
from hub.media import BlobStore, BlobTooLarge, ImageRefused, describe_stored_image, types_disagree
from hub.media.sniff import UNKNOWN
from hub.model import Attachment, MessageKind, Role
from hub.store.contacts import get_contact
from hub.store.media import (
    STORED,
    AttachmentRecord,
    Upload,
    blob_in_use,
    create_upload,
    expire_attachments,
    forget_contact_media,
    load_attachment,
    load_attachment_row,
    load_linked,
    load_upload,
    new_link_token,
    prune_uploads,
    retry_failed,
)
from hub.usecases._parts import HubParts
from hub.usecases.access import conversation_for
from hub.usecases.permissions import require_role
from hub.usecases.principal import Principal

__all__ = [
    "attachment_for",
    "delete_contact_media",
    "drop_unused_blobs",
    "kind_of",
    "linked_attachment",
    "resolve_uploads",
    "retry_fetch",
    "sweep_media",
    "upload_file",
]

logger = logging.getLogger(__name__)

#: the longest file name kept (longer ones are cut, keeping the extension)
_NAME_LENGTH = 300
#: how long an upload no message sent is kept
UPLOADS_KEPT = timedelta(days=1)


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
    ``type_mismatch`` (the bytes are not what the name or the declared type says); nothing is kept then."""
    agent_id = actor.agent_id()
    limit = hub.settings.media.max_bytes
    try:
        blob = await blobs.put(chunks, max_bytes=limit)
    except BlobTooLarge:
        raise Invalid(
            "file_too_large", f"the file is larger than {limit} bytes, the most the hub takes", limit=limit
        ) from None
    name = _clean_name(file_name)
    refusal = _refusal(blob.size, blob.mime, name, declared_mime)
    if refusal is not None:
        if not await blob_in_use(hub.store, blob.key):
            await blobs.delete(blob.key)
        raise refusal
    mime = blob.mime
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
    upload = Upload(
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
    await create_upload(hub.store, upload, hub.clock())
    return upload


def _refusal(size: int, sniffed: str, name: str | None, declared: str | None) -> Invalid | None:
    if size == 0:
        return Invalid("empty_file", "the file is empty", field="file")
    by_name = mimetypes.guess_type(name)[0] if name else None
    if by_name is not None and types_disagree(by_name, sniffed):
        return Invalid(
            "type_mismatch",
            f"the file is named {name!r} ({by_name}) but its bytes are {sniffed}",
            field="file",
            sniffed=sniffed,
            declared=by_name,
        )
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
    fetcher). Forbidden unless admin; NotFound; Conflict ``not_failed``."""
    require_role(actor, Role.ADMIN)
    record = await load_attachment(hub.store, attachment_id)
    if record is None:
        raise NotFound("not_found", f"no attachment {attachment_id}")
    if not await retry_failed(hub.store, attachment_id, now=hub.clock()):
        raise Conflict("not_failed", f"the attachment is {record.state}; only a failed fetch is tried again")
    found = await load_attachment_row(hub.store, attachment_id)
    assert found is not None
    hub.bus.publish(
        AttachmentChanged(conversation_id=record.conversation_id, message_id=record.message_id, attachment=found)
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


async def drop_unused_blobs(hub: HubParts, blobs: BlobStore, keys: set[str]) -> int:
    """Delete the blobs of ``keys`` that no attachment or upload names any more; how many went."""
    removed = 0
    for key in sorted(keys):
        if not await blob_in_use(hub.store, key) and await blobs.delete(key):
            removed += 1
    return removed


async def sweep_media(hub: HubParts, blobs: BlobStore) -> int:
    """Retention: attachments stored more than ``[media] keep_days`` ago lose their bytes (0: kept), uploads
    never sent are forgotten after a day; their blobs go once nothing names them. How many blobs went."""
    now = hub.clock()
    keys = await prune_uploads(hub.store, before=now - UPLOADS_KEPT)
    keep_days = hub.settings.media.keep_days
    if keep_days > 0:
        keys |= await expire_attachments(hub.store, before=now - timedelta(days=keep_days))
    return await drop_unused_blobs(hub, blobs, keys)


async def delete_contact_media(hub: HubParts, blobs: BlobStore, actor: Principal, contact_id: int) -> dict[str, int]:
    """An admin deletes a contact's data: the media of every conversation of their identities goes (rows
    keep their place, without facts; blobs go once nothing names them). Recorded in the audit log."""
    require_role(actor, Role.ADMIN)
    if await get_contact(hub.store, contact_id) is None:
        raise NotFound("not_found", f"no contact {contact_id}")
    count, keys = await forget_contact_media(hub.store, contact_id)
    removed = await drop_unused_blobs(hub, blobs, keys)
    logger.info(
        "contact data deleted: %s attachments, %s blobs",
        count,
        removed,
        extra={"audit": "contact.data_deleted", "contact_id": contact_id, "by": actor.id},
    )
    outcome = {"attachments": count, "blobs": removed}
    await record(
        hub.store, "contact.data_deleted", actor=actor, at=hub.clock(), target=f"contact:{contact_id}", after=outcome
    )
    return outcome


def may_upload(actor: Principal) -> None:
    """Only agents upload (an operator has no id to own the file)."""
    if actor.id is None:
        raise Forbidden("forbidden", "only a logged-in agent uploads files")
