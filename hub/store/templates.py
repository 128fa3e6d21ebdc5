"""Message templates and their immutable versions.

``message_templates`` holds one row per name with the current version;
``template_versions`` every saved version. Each save is one transaction: a new
version row and the pointer move together or not at all. Validation happens
before (``hub.templates.validate``); this module only stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.model import DeliveryState
from hub.store._db import Store
from hub.store.tables import message_templates, messages, template_versions
from hub.templates import TemplateDraft, TemplateExists, TemplateInUse, TemplateNotFound, TemplateVersion

__all__ = [
    "count_templates",
    "create_template",
    "current_templates",
    "delete_template",
    "get_template",
    "import_templates",
    "list_templates",
    "restore_template",
    "template_versions_of",
    "update_template",
]


def _version_from_row(row: Mapping[Any, Any]) -> TemplateVersion:
    return TemplateVersion(
        name=row["name"],
        version=row["version"],
        description=row["description"],
        body=row["body"],
        variables=dict(row["variables"] or {}),
        variants=dict(row["variants"] or {}),
        tag=row["tag"],
        bindings=dict(row["bindings"] or {}),
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


def _version_values(draft: TemplateDraft, version: int, created_by: int | None, now: datetime) -> dict[str, Any]:
    return {
        "name": draft.name,
        "version": version,
        "description": draft.description or None,
        "body": draft.body,
        "variables": dict(draft.variables),
        "variants": dict(draft.variants),
        "tag": draft.tag or None,
        "bindings": dict(draft.bindings),
        "created_by": created_by,
        "created_at": now,
    }


async def _current_version(connection: AsyncConnection, name: str, *, lock: bool) -> int | None:
    query = select(message_templates.c.current_version).where(message_templates.c.name == name)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await connection.execute(query)).scalar_one_or_none()


async def _load(connection: AsyncConnection, name: str, version: int) -> TemplateVersion | None:
    row = (
        (
            await connection.execute(
                select(template_versions).where(
                    template_versions.c.name == name, template_versions.c.version == version
                )
            )
        )
        .mappings()
        .first()
    )
    return _version_from_row(row) if row else None


async def _insert_new(
    connection: AsyncConnection, draft: TemplateDraft, created_by: int | None, now: datetime
) -> TemplateVersion:
    """The template's first version: 1, or for a name deleted and made again, one past the last version a message
    was sent with, so that a sent message's (name, version) never names another text."""
    sent = (
        await connection.execute(
            select(func.max(messages.c.template_version)).where(messages.c.template_name == draft.name)
        )
    ).scalar_one()
    first = int(sent or 0) + 1
    await connection.execute(
        insert(message_templates).values(name=draft.name, current_version=first, created_at=now, updated_at=now)
    )
    values = _version_values(draft, first, created_by, now)
    await connection.execute(insert(template_versions).values(**values))
    return _version_from_row(values)


async def _append(
    connection: AsyncConnection, draft: TemplateDraft, current: int, created_by: int | None, now: datetime
) -> TemplateVersion:
    values = _version_values(draft, current + 1, created_by, now)
    await connection.execute(insert(template_versions).values(**values))
    await connection.execute(
        update(message_templates)
        .where(message_templates.c.name == draft.name)
        .values(current_version=current + 1, updated_at=now)
    )
    return _version_from_row(values)


async def create_template(
    store: Store, draft: TemplateDraft, *, now: datetime, created_by: int | None = None
) -> TemplateVersion:
    """Version 1 of a new template; TemplateExists when the name is taken."""
    try:
        async with store.write() as connection:
            if await _current_version(connection, draft.name, lock=False) is not None:
                raise TemplateExists(draft.name)
            return await _insert_new(connection, draft, created_by, now)
    except IntegrityError:  # a concurrent create of the same name won
        raise TemplateExists(draft.name) from None


async def update_template(
    store: Store, draft: TemplateDraft, *, now: datetime, created_by: int | None = None
) -> TemplateVersion:
    """A new current version; TemplateNotFound when there is no such template."""
    async with store.write() as connection:
        current = await _current_version(connection, draft.name, lock=True)
        if current is None:
            raise TemplateNotFound(draft.name)
        return await _append(connection, draft, current, created_by, now)


async def restore_template(
    store: Store, name: str, version: int, *, now: datetime, created_by: int | None = None
) -> TemplateVersion:
    """A new current version equal to ``version`` (history is never rewritten)."""
    async with store.write() as connection:
        current = await _current_version(connection, name, lock=True)
        if current is None:
            raise TemplateNotFound(name)
        old = await _load(connection, name, version)
        if old is None:
            raise TemplateNotFound(name, version)
        return await _append(connection, old.draft(), current, created_by, now)


async def get_template(store: Store, name: str, version: int | None = None) -> TemplateVersion:
    """The current version, or the given one; TemplateNotFound otherwise."""
    async with store.read() as connection:
        if version is None:
            version = await _current_version(connection, name, lock=False)
            if version is None:
                raise TemplateNotFound(name)
        found = await _load(connection, name, version)
    if found is None:
        raise TemplateNotFound(name, version)
    return found


_CURRENT_VERSIONS = (
    select(template_versions)
    .join(
        message_templates,
        (message_templates.c.name == template_versions.c.name)
        & (message_templates.c.current_version == template_versions.c.version),
    )
    .order_by(template_versions.c.name)
)


async def list_templates(store: Store) -> list[TemplateVersion]:
    """The current version of every template, by name."""
    async with store.read() as connection:
        return await current_templates(connection)


async def current_templates(connection: AsyncConnection) -> list[TemplateVersion]:
    """``list_templates`` in a transaction the caller holds (a bot's turn reads them with the conversation)."""
    rows = (await connection.execute(_CURRENT_VERSIONS)).mappings().all()
    return [_version_from_row(row) for row in rows]


async def template_versions_of(store: Store, name: str) -> list[TemplateVersion]:
    """Every version, oldest first; TemplateNotFound when the template does not exist."""
    async with store.read() as connection:
        if await _current_version(connection, name, lock=False) is None:
            raise TemplateNotFound(name)
        rows = (
            (
                await connection.execute(
                    select(template_versions)
                    .where(template_versions.c.name == name)
                    .order_by(template_versions.c.version)
                )
            )
            .mappings()
            .all()
        )
    return [_version_from_row(row) for row in rows]


async def count_templates(store: Store) -> int:
    async with store.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(message_templates))).scalar_one())


async def delete_template(store: Store, name: str) -> None:
    """Remove a template and its history; TemplateInUse while a queued message was rendered from it."""
    async with store.write() as connection:
        if await _current_version(connection, name, lock=True) is None:
            raise TemplateNotFound(name)
        pending = (
            await connection.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.template_name == name, messages.c.delivery_state == DeliveryState.QUEUED.value)
            )
        ).scalar_one()
        if pending:
            raise TemplateInUse(name, int(pending))
        await connection.execute(delete(template_versions).where(template_versions.c.name == name))
        await connection.execute(delete(message_templates).where(message_templates.c.name == name))


async def import_templates(
    store: Store,
    drafts: Sequence[TemplateDraft],
    *,
    now: datetime,
    created_by: int | None = None,
    only_if_empty: bool = False,
) -> dict[str, str]:
    """Save validated drafts in one transaction: ``{name: "created" | "updated" | "unchanged"}``.

    A template whose content equals its current version gets no new version, so
    importing the same folder twice changes nothing. ``only_if_empty`` (the seed at
    start-up) imports nothing when any template exists; concurrent seeders race
    harmlessly: the loser's transaction fails on the primary key and changes nothing.
    """
    outcome: dict[str, str] = {}
    try:
        async with store.write() as connection:
            if only_if_empty:
                existing = (await connection.execute(select(func.count()).select_from(message_templates))).scalar_one()
                if existing:
                    return {}
            for draft in drafts:
                current = await _current_version(connection, draft.name, lock=True)
                if current is None:
                    await _insert_new(connection, draft, created_by, now)
                    outcome[draft.name] = "created"
                    continue
                stored = await _load(connection, draft.name, current)
                if stored is not None and stored.draft().content() == draft.content():
                    outcome[draft.name] = "unchanged"
                    continue
                await _append(connection, draft, current, created_by, now)
                outcome[draft.name] = "updated"
    except IntegrityError:
        if only_if_empty:
            return {}
        raise
    return outcome
