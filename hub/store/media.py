"""Attachments and uploads: the metadata of media (the bytes are in the blob store, ``hub.media``).

A customer's attachment is written ``pending`` with its message, in the ingest's transaction; the media
fetcher (``hub.media_fetch``) claims due rows with a lease (``locked_until``), so a restarted or second
process takes over a fetch that was cut short, and records ``stored`` or ``failed``. An agent's upload is a
row of ``uploads``; a message that sends it gets an attachment row, already ``stored``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, union, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import Attachment, Message, MessageKind
from hub.store._db import Store
from hub.store.tables import attachments, identities, messages, uploads

__all__ = [
    "FETCHABLE",
    "AttachmentRecord",
    "FetchJob",
    "FetchOutcome",
    "ImageFacts",
    "StoredFile",
    "Upload",
    "any_fetch_due",
    "attachment_json",
    "attachment_rows",
    "attachments_by_message",
    "attachments_json",
    "blob_in_use",
    "blobs_named",
    "claim_fetches",
    "create_upload",
    "expire_attachments",
    "forget_contact_media",
    "insert_attachments",
    "insert_sent_attachments",
    "load_attachment",
    "load_attachment_row",
    "load_linked",
    "load_upload",
    "new_link_token",
    "prune_uploads",
    "record_and_claim_fetches",
    "render_attachments",
    "retry_failed",
]

PENDING, STORED, FAILED = "pending", "stored", "failed"

#: the kinds whose bytes the hub fetches and keeps (a location or a contact card has none)
FETCHABLE = frozenset({MessageKind.IMAGE, MessageKind.AUDIO, MessageKind.VIDEO, MessageKind.FILE, MessageKind.STICKER})

#: how long the public link of an agent's file stays valid (the outbox retries for a while)
LINK_DAYS = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFacts:
    """What the fetcher learned of an image: its dimensions and its thumbnail's blob key."""

    width: int
    height: int
    thumbnail_key: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchJob:
    """One claimed fetch: where the provider keeps the bytes, and whose message they belong to."""

    id: int
    message_id: int
    conversation_id: int
    account_id: str
    kind: str
    mime: str | None
    file_name: str | None
    provider_media_id: str | None
    provider_url: str | None
    attempts: int  # this one included
    leased_until: datetime  # the claim's lease: nobody else fetches the row before then


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentRecord:
    """One stored attachment row, with the conversation its message is in (who may see it)."""

    id: int
    message_id: int
    conversation_id: int
    identity_id: int
    kind: str
    state: str
    mime: str | None
    size: int | None
    sha256: str | None
    file_name: str | None
    blob_key: str | None
    thumbnail_key: str | None
    width: int | None
    height: int | None
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """A file an agent uploaded (``POST /api/v1/uploads``), ready to be attached to a message."""

    id: str
    agent_id: int
    mime: str
    size: int
    sha256: str
    file_name: str | None
    width: int | None = None
    height: int | None = None
    thumbnail_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "mime": self.mime, "size": self.size, "sha256": self.sha256, "file_name": self.file_name}


# ------------------------------------------------------------------ inbound: rows written with the message


def attachment_rows(message_id: int, found: Sequence[Attachment], now: datetime) -> list[dict[str, Any]]:
    """The ``pending`` rows of a customer's message: one per attachment whose bytes can be fetched."""
    rows = []
    for position, attachment in enumerate(found):
        url = attachment.url if attachment.url and attachment.url.startswith(("https://", "http://")) else None
        # a URL that is not http(s) is nothing the hub fetches (shown as the provider gave it); without any
        # URL the media id is the way (WhatsApp Cloud)
        fetchable = url is not None if attachment.url else attachment.provider_media_id is not None
        if attachment.kind not in FETCHABLE or not fetchable:
            continue
        rows.append(
            {
                "message_id": message_id,
                "position": position,
                "kind": attachment.kind.value,
                "state": PENDING,
                "mime": attachment.mime_type,
                "file_name": attachment.file_name,
                "provider_media_id": attachment.provider_media_id,
                "provider_url": url,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    return rows


async def insert_attachments(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write attachment rows in the caller's transaction (nothing when there are none)."""
    if rows:
        await connection.execute(attachments.insert(), list(rows))


# ------------------------------------------------------------------ the fetcher's claims

# The fetcher's statements are built once, with bound parameters: a busy fetcher runs them many times a
# second, and building a statement costs more than running it.
_a = attachments.c
_WHEN = _a.next_attempt_at.type
_DUE = and_(
    _a.state == PENDING,
    _a.next_attempt_at <= bindparam("now", type_=_WHEN),
    or_(_a.locked_until.is_(None), _a.locked_until <= bindparam("now", type_=_WHEN)),
)
_CLAIMABLE = (
    select(
        _a.id,
        _a.message_id,
        _a.kind,
        _a.mime,
        _a.file_name,
        _a.provider_media_id,
        _a.provider_url,
        _a.attempts,
        messages.c.conversation_id,
        messages.c.account_id,
    )
    .join(messages, messages.c.id == _a.message_id)
    .where(_DUE)
    .order_by(_a.next_attempt_at, _a.id)
    .limit(bindparam("limit"))
)
_LEASE = (
    update(attachments)
    .where(_a.id.in_(bindparam("ids", expanding=True)), _DUE)
    .values(
        locked_until=bindparam("until", type_=_WHEN),
        attempts=_a.attempts + 1,
        next_attempt_at=bindparam("until", type_=_WHEN),
    )
)
_LEASED = (
    select(*_CLAIMABLE.selected_columns)
    .join_from(attachments, messages, messages.c.id == _a.message_id)
    .where(_a.id.in_(bindparam("ids", expanding=True)), _a.locked_until == bindparam("until", type_=_WHEN))
)
_RELEASE = (
    update(attachments)
    .where(_a.id == bindparam("row_id"), _a.state == PENDING, _a.locked_until == bindparam("until", type_=_WHEN))
    .values(locked_until=None, next_attempt_at=bindparam("now", type_=_WHEN), attempts=_a.attempts - 1)
)
_STILL_PENDING = select(_a.id).where(_a.id.in_(bindparam("ids", expanding=True)), _a.state == PENDING)
_RECORD_STORED = (
    update(attachments)
    .where(_a.id == bindparam("row_id"), _a.state == PENDING)
    .values(
        state=STORED,
        sha256=bindparam("key"),
        blob_key=bindparam("key"),
        size=bindparam("size"),
        mime=bindparam("mime"),
        kind=bindparam("kind"),
        file_name=bindparam("name"),
        width=bindparam("image_width"),
        height=bindparam("image_height"),
        thumbnail_key=bindparam("thumbnail"),
        error=None,
        locked_until=None,
        next_attempt_at=None,
        stored_at=bindparam("now", type_=_WHEN),
    )
)
_RECORD_FAILED = (
    update(attachments)
    .where(_a.id == bindparam("row_id"), _a.state == PENDING)
    .values(state=FAILED, error=bindparam("reason"), locked_until=None, next_attempt_at=None)
)
_RECORD_RETRY = (
    update(attachments)
    .where(_a.id == bindparam("row_id"), _a.state == PENDING)
    .values(next_attempt_at=bindparam("retry_at", type_=_WHEN), locked_until=None, error=bindparam("reason"))
)
_CHANGED = select(attachments).where(_a.id.in_(bindparam("ids", expanding=True)))


async def any_fetch_due(store: Store, *, now: datetime) -> bool:
    """Whether some row may be due for fetching now, read without the write lock: most inbound messages carry
    no media, and a fetcher woken by each of them must not take SQLite's one write turn to find nothing."""
    async with store.read() as connection:
        found = await connection.execute(select(_a.id).where(_DUE).limit(1), {"now": now})
        return found.first() is not None


async def claim_fetches(store: Store, *, now: datetime, lease: timedelta, limit: int) -> list[FetchJob]:
    """Due pending rows, leased to the caller until ``now + lease``; a row whose lease ran out (its fetcher
    stopped mid-way) is due again. Each claim counts as an attempt. The guarded update decides races between
    processes: a row another process claimed meanwhile is not returned."""
    async with store.write() as connection:
        return await _claim(connection, now=now, lease=lease, limit=limit)


async def record_and_claim_fetches(
    store: Store,
    outcomes: Sequence[FetchOutcome],
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    release: Sequence[FetchJob] = (),
) -> tuple[dict[int, dict[str, Any]], list[FetchJob]]:
    """Record fetches' outcomes and ``claim_fetches`` (up to ``limit`` rows; none for 0) in one transaction: a
    busy fetcher pays one commit per round. A row no longer pending (deleted, retried meanwhile) is left alone.
    Claimed jobs the caller will not start (``release``) are given back first: due at once, their unused
    attempt not counted. Returns the JSON of the rows that changed state and the claimed jobs."""
    async with store.write() as connection:
        if release:
            await _release(connection, release, now=now)
        changed = await _record_outcomes(connection, outcomes, now=now)
        return changed, await _claim(connection, now=now, lease=lease, limit=limit) if limit > 0 else []


async def _claim(connection: AsyncConnection, *, now: datetime, lease: timedelta, limit: int) -> list[FetchJob]:
    """The claim's statements, in the caller's transaction: the due rows, then one guarded update that leases
    them. When the update took every row (always on SQLite, whose writer holds the lock) the rows read first
    are the claim; otherwise another process took some meanwhile and what is ours is read again."""
    until = now + lease
    found = (await connection.execute(_CLAIMABLE, {"now": now, "limit": limit})).all()
    if not found:
        return []
    ids = [int(row.id) for row in found]
    leased = await connection.execute(_LEASE, {"ids": ids, "now": now, "until": until})
    if leased.rowcount == len(ids):
        return [_job(row, until, attempts=int(row.attempts) + 1) for row in found]
    rows = await connection.execute(_LEASED, {"ids": ids, "until": until})
    return [_job(row, until, attempts=int(row.attempts)) for row in rows]


def _job(row: Any, until: datetime, *, attempts: int) -> FetchJob:
    return FetchJob(
        id=int(row.id),
        message_id=int(row.message_id),
        conversation_id=int(row.conversation_id),
        account_id=str(row.account_id),
        kind=str(row.kind),
        mime=row.mime,
        file_name=row.file_name,
        provider_media_id=row.provider_media_id,
        provider_url=row.provider_url,
        attempts=attempts,
        leased_until=until,
    )


async def _release(connection: AsyncConnection, jobs: Sequence[FetchJob], *, now: datetime) -> None:
    """Give claimed rows back unfetched, unless their lease ran out and another process holds them now."""
    await connection.execute(_RELEASE, [{"row_id": job.id, "until": job.leased_until, "now": now} for job in jobs])


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """Bytes a fetch kept: the blob key (SHA-256), size, sniffed type, the kind the bytes are (the provider's,
    unless its image, audio or video disagrees with them), name, and for images their facts."""

    key: str
    size: int
    mime: str
    kind: str
    file_name: str | None
    image: ImageFacts | None = None


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    """What one fetch came to: ``stored``; or ``failed`` for good; or to try again at ``retry_at``."""

    attachment_id: int
    stored: StoredFile | None = None
    retry_at: datetime | None = None
    error: str | None = None
    failed: bool = False


async def _record_outcomes(
    connection: AsyncConnection, outcomes: Sequence[FetchOutcome], *, now: datetime
) -> dict[int, dict[str, Any]]:
    """A few statements whatever the number of outcomes, in the caller's transaction: which rows are still
    pending, one guarded update per kind of outcome (stored, failed, to retry) for all its rows, and the
    changed rows read back for the announcement."""
    final = [o.attachment_id for o in outcomes if o.stored is not None or o.failed]
    pending = set((await connection.execute(_STILL_PENDING, {"ids": final})).scalars()) if final else set[int]()
    stored = [_stored_parameters(o.attachment_id, o.stored, now) for o in outcomes if o.stored is not None]
    failed = [{"row_id": o.attachment_id, "reason": _reason(o)} for o in outcomes if o.stored is None and o.failed]
    retry = [
        {"row_id": o.attachment_id, "retry_at": o.retry_at, "reason": _reason(o)}
        for o in outcomes
        if o.stored is None and not o.failed
    ]
    for statement, parameters in ((_RECORD_STORED, stored), (_RECORD_FAILED, failed), (_RECORD_RETRY, retry)):
        if parameters:
            await connection.execute(statement, parameters)
    changed = [i for i in final if i in pending]
    if not changed:
        return {}
    rows = await connection.execute(_CHANGED, {"ids": changed})
    return {int(row.id): attachment_json(row) for row in rows}


def _reason(outcome: FetchOutcome) -> str:
    return (outcome.error or "")[:1000]


def _stored_parameters(row_id: int, found: StoredFile, now: datetime) -> dict[str, Any]:
    image = found.image
    return {
        "row_id": row_id,
        "key": found.key,
        "size": found.size,
        "mime": found.mime,
        "kind": found.kind,
        "name": found.file_name,
        "image_width": None if image is None else image.width,
        "image_height": None if image is None else image.height,
        "thumbnail": None if image is None else image.thumbnail_key,
        "now": now,
    }


async def retry_failed(store: Store, attachment_id: int, *, now: datetime) -> bool:
    """An admin asks for a failed fetch again: pending, due now, attempts counted afresh. False unless it
    was failed and the provider's media id or URL is still known (a contact's deleted data names none)."""
    a = attachments.c
    async with store.write() as connection:
        result = await connection.execute(
            update(attachments)
            .where(
                a.id == attachment_id,
                a.state == FAILED,
                or_(a.provider_media_id.is_not(None), a.provider_url.is_not(None)),
            )
            .values(state=PENDING, attempts=0, next_attempt_at=now, locked_until=None, error=None)
        )
        return bool(result.rowcount)


# ------------------------------------------------------------------ reading


def _record(row: Any) -> AttachmentRecord:
    return AttachmentRecord(
        id=int(row.id),
        message_id=int(row.message_id),
        conversation_id=int(row.conversation_id),
        identity_id=int(row.identity_id),
        kind=str(row.kind),
        state=str(row.state),
        mime=row.mime,
        size=None if row.size is None else int(row.size),
        sha256=row.sha256,
        file_name=row.file_name,
        blob_key=row.blob_key,
        thumbnail_key=row.thumbnail_key,
        width=row.width,
        height=row.height,
        error=row.error,
    )


_RECORD = select(attachments, messages.c.conversation_id, messages.c.identity_id).join(
    messages, messages.c.id == attachments.c.message_id
)
# built once and bound per call: every provider's fetch of a public link reads it, and building the two
# comparisons cost more of the event loop than the rest of the read
_LINKED = _RECORD.where(
    attachments.c.link_token == bindparam("token"), attachments.c.link_expires_at > bindparam("now")
)


async def load_attachment(store: Store, attachment_id: int) -> AttachmentRecord | None:
    """The attachment and the conversation of its message, or None (a brief read: every media request makes it)."""
    async with store.read(brief=True) as connection:
        row = (await connection.execute(_RECORD.where(attachments.c.id == attachment_id))).first()
    return None if row is None else _record(row)


async def load_linked(store: Store, token: str, *, now: datetime) -> AttachmentRecord | None:
    """The attachment whose public link carries ``token``, while the link is valid (a brief read: every fetch of a
    public link makes it)."""
    async with store.read(brief=True) as connection:
        row = (await connection.execute(_LINKED, {"token": token, "now": now})).first()
    return None if row is None else _record(row)


async def load_attachment_row(store: Store, attachment_id: int) -> dict[str, Any] | None:
    """The attachment's JSON as the message JSON gives it, or None."""
    async with store.read() as connection:
        row = (await connection.execute(select(attachments).where(attachments.c.id == attachment_id))).first()
    return None if row is None else attachment_json(row)


def attachment_json(row: Any) -> dict[str, Any]:
    """One attachment as the message JSON gives it (``url``: the hub's own route, once stored)."""
    stored = row.state == STORED and row.blob_key is not None
    found: dict[str, Any] = {
        "id": int(row.id),
        "kind": row.kind,
        "state": row.state,
        "mime": row.mime,
        "size": None if row.size is None else int(row.size),
        "sha256": row.sha256,
        "file_name": row.file_name,
        "url": f"/api/v1/media/{int(row.id)}" if stored else None,
        "error": row.error,
    }
    if row.width is not None:
        found["width"], found["height"] = row.width, row.height
    if stored and row.thumbnail_key is not None:
        found["thumbnail_url"] = f"/api/v1/media/{int(row.id)}?thumbnail=1"
    return found


def _plain_json(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An attachment the hub keeps no bytes of (an agent's link, a location): the same fields, as given."""
    return {
        "id": None,
        "kind": raw.get("kind"),
        "state": STORED if raw.get("url") else FAILED,
        "mime": raw.get("mime_type"),
        "size": raw.get("size"),
        "sha256": None,
        "file_name": raw.get("file_name"),
        "url": raw.get("url"),
        "error": None if raw.get("url") else "the provider gave no way to fetch this attachment",
    }


async def attachments_by_message(connection: AsyncConnection, message_ids: Iterable[int]) -> dict[int, dict[int, Any]]:
    """message id -> position -> attachment row, for the messages that have rows."""
    ids = sorted(set(message_ids))
    found: dict[int, dict[int, Any]] = {}
    if not ids:
        return found
    rows = await connection.execute(select(attachments).where(attachments.c.message_id.in_(ids)))
    for row in rows:
        found.setdefault(int(row.message_id), {})[int(row.position)] = row
    return found


async def attachments_json(store: Store, message: Message) -> list[dict[str, Any]]:
    """A message's attachments as the message JSON gives them, read back from the store."""
    if not message.attachments:
        return []
    async with store.read() as connection:
        rows = await attachments_by_message(connection, [message.id])
    return render_attachments([a.to_json() for a in message.attachments], rows.get(message.id))


def render_attachments(raw: Sequence[Mapping[str, Any]] | None, rows: Mapping[int, Any] | None) -> list[dict[str, Any]]:
    """The message's attachments as the API gives them: its rows where it has them, else what was given."""
    rendered = []
    for position, item in enumerate(raw or ()):
        row = (rows or {}).get(position)
        rendered.append(attachment_json(row) if row is not None else _plain_json(item))
    return rendered


# ------------------------------------------------------------------ uploads and what sends them


async def create_upload(store: Store, upload: Upload, now: datetime) -> None:
    """Keep the metadata of an agent's upload (its bytes are in the blob store already)."""
    async with store.write() as connection:
        await connection.execute(
            uploads.insert().values(
                id=upload.id,
                agent_id=upload.agent_id,
                mime=upload.mime,
                size=upload.size,
                sha256=upload.sha256,
                file_name=upload.file_name,
                width=upload.width,
                height=upload.height,
                thumbnail_key=upload.thumbnail_key,
                created_at=now,
            )
        )


async def load_upload(store: Store, upload_id: str) -> Upload | None:
    async with store.read() as connection:
        row = (await connection.execute(select(uploads).where(uploads.c.id == upload_id))).first()
    if row is None:
        return None
    return Upload(
        id=row.id,
        agent_id=int(row.agent_id),
        mime=row.mime,
        size=int(row.size),
        sha256=row.sha256,
        file_name=row.file_name,
        width=row.width,
        height=row.height,
        thumbnail_key=row.thumbnail_key,
    )


def new_link_token() -> str:
    """An unguessable token for a public, expiring link to one attachment's bytes."""
    return secrets.token_urlsafe(32)


async def insert_sent_attachments(
    connection: AsyncConnection, message_id: int, found: Sequence[Attachment], now: datetime
) -> None:
    """The ``stored`` rows of an agent's message: one per attachment sent from an upload, with its public link."""
    ids = [a.upload_id for a in found if a.upload_id]
    if not ids:
        return
    known = {row.id: row for row in await connection.execute(select(uploads).where(uploads.c.id.in_(ids)))}
    rows = []
    for position, attachment in enumerate(found):
        upload = known.get(attachment.upload_id) if attachment.upload_id else None
        if upload is None:
            continue
        rows.append(
            {
                "message_id": message_id,
                "position": position,
                "kind": attachment.kind.value,
                "state": STORED,
                "mime": upload.mime,
                "size": upload.size,
                "sha256": upload.sha256,
                "file_name": upload.file_name,
                "blob_key": upload.sha256,
                "width": upload.width,
                "height": upload.height,
                "thumbnail_key": upload.thumbnail_key,
                "attempts": 0,
                "link_token": attachment.link_token,
                "link_expires_at": now + timedelta(days=LINK_DAYS) if attachment.link_token else None,
                "created_at": now,
                "stored_at": now,
            }
        )
    await insert_attachments(connection, rows)


# ------------------------------------------------------------------ retention and deletion


async def blob_in_use(store: Store, key: str) -> bool:
    """Whether any attachment or upload still refers to the blob ``key`` (as its bytes or thumbnail)."""
    a, u = attachments.c, uploads.c
    async with store.read() as connection:
        used = (
            await connection.execute(
                select(func.count()).select_from(attachments).where(or_(a.blob_key == key, a.thumbnail_key == key))
            )
        ).scalar_one()
        if used:
            return True
        kept = (
            await connection.execute(
                select(func.count()).select_from(uploads).where(or_(u.sha256 == key, u.thumbnail_key == key))
            )
        ).scalar_one()
    return bool(kept)


async def blobs_named(store: Store, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` an attachment or upload still names (as its bytes or thumbnail), in one query for the
    lot: the orphan walk asks this for a few hundred blobs at a time, not twice per blob. Give it a few hundred
    keys at most (each key is a bound parameter four times over)."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    a, u = attachments.c, uploads.c
    columns = (a.blob_key, a.thumbnail_key, u.sha256, u.thumbnail_key)
    query = union(*(select(column.label("key")).where(column.in_(wanted)) for column in columns))
    async with store.read() as connection:
        return {str(key) for key in (await connection.execute(query)).scalars()}


async def prune_uploads(store: Store, *, before: datetime) -> set[str]:
    """Forget uploads made before ``before`` (a message that sent one has its own attachment row); the blob
    keys they named (the caller deletes the blobs no other row still uses)."""
    async with store.write() as connection:
        old = (
            await connection.execute(
                select(uploads.c.sha256, uploads.c.thumbnail_key).where(uploads.c.created_at < before)
            )
        ).all()
        await connection.execute(delete(uploads).where(uploads.c.created_at < before))
    return {k for row in old for k in (row.sha256, row.thumbnail_key) if k}


async def expire_attachments(store: Store, *, before: datetime) -> set[str]:
    """Forget the bytes of attachments stored before ``before`` (``[media] keep_days``): the rows say
    ``failed`` (``expired``) and keep their facts. Returns the blob keys they named (the caller deletes the
    blobs no other row still uses)."""
    a = attachments.c
    async with store.write() as connection:
        rows = (
            await connection.execute(
                select(a.id, a.blob_key, a.thumbnail_key).where(a.state == STORED, a.stored_at < before)
            )
        ).all()
        keys = {k for row in rows for k in (row.blob_key, row.thumbnail_key) if k}
        if rows:
            await connection.execute(
                update(attachments)
                .where(a.id.in_([int(row.id) for row in rows]))
                .values(
                    state=FAILED,
                    error="expired: removed after the retention period",
                    blob_key=None,
                    thumbnail_key=None,
                    link_token=None,
                    link_expires_at=None,
                )
            )
    return keys


async def forget_contact_media(store: Store, contact_id: int) -> tuple[int, set[str]]:
    """Remove the media of every message to or from the contact's identities: each attachment row keeps its
    place (``failed``, ``removed``) but no facts about the file. Returns how many rows, and the blob keys they
    named (the caller deletes the blobs no other row still uses)."""
    a = attachments.c
    async with store.write() as connection:
        rows = (
            await connection.execute(
                select(a.id, a.blob_key, a.thumbnail_key)
                .join(messages, messages.c.id == a.message_id)
                .join(identities, identities.c.id == messages.c.identity_id)
                .where(identities.c.contact_id == contact_id)
            )
        ).all()
        if rows:
            await connection.execute(
                update(attachments)
                .where(a.id.in_([int(row.id) for row in rows]))
                .values(
                    state=FAILED,
                    error="removed: the contact's data was deleted",
                    mime=None,
                    size=None,
                    sha256=None,
                    file_name=None,
                    blob_key=None,
                    thumbnail_key=None,
                    width=None,
                    height=None,
                    provider_media_id=None,
                    provider_url=None,
                    link_token=None,
                    link_expires_at=None,
                    next_attempt_at=None,
                    locked_until=None,
                )
            )
    return len(rows), {k for row in rows for k in (row.blob_key, row.thumbnail_key) if k}


async def conversation_of_message(connection: AsyncConnection, message_id: int) -> int | None:
    row = await connection.execute(select(messages.c.conversation_id).where(messages.c.id == message_id))
    found = row.scalar_one_or_none()
    return None if found is None else int(found)
