"""Read message templates (any agent); save, restore, delete and import them (admin work), for the API and
the CLI alike.

Every draft is validated before anything is saved (off the event loop: validation is CPU work
bounded by hub.templates' budget); an import saves all its drafts in one transaction or none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from hub.audit import record
from hub.errors import Conflict, Invalid, NotFound
from hub.model import Role
from hub.store.templates import (
    create_template,
    delete_template,
    get_template,
    import_templates,
    list_templates,
    restore_template,
    template_versions_of,
    update_template,
)
from hub.template_files import TemplateFileError, read_dir
from hub.templates import (
    TemplateDraft,
    TemplateError,
    TemplateExists,
    TemplateInUse,
    TemplateNotFound,
    TemplateVersion,
    validate,
)
from hub.usecases._parts import HubParts
from hub.usecases.permissions import require_role
from hub.usecases.principal import Principal

logger = logging.getLogger(__name__)

__all__ = [
    "TemplateRefused",
    "create",
    "current_templates",
    "default_templates_dir",
    "delete",
    "history",
    "import_drafts",
    "restore",
    "save",
    "seed_shipped",
    "shown",
    "version_of",
]


class TemplateRefused(Invalid):
    """A template that cannot be saved or rendered; ``error`` says where (line, channel, missing names)."""

    def __init__(self, error: TemplateError, *, name: str | None = None) -> None:
        super().__init__(error.code, error.message, **error.to_json())
        self.error = error
        self.name = name


@asynccontextmanager
async def _refusals() -> AsyncIterator[None]:
    """The template store's and the validator's exceptions, as refusals."""
    try:
        yield
    except TemplateError as exc:
        raise TemplateRefused(exc) from None
    except TemplateNotFound as exc:
        raise NotFound("not_found", str(exc)) from None
    except TemplateExists as exc:
        raise Conflict("template_exists", str(exc)) from None
    except TemplateInUse as exc:
        raise Conflict("template_in_use", str(exc), pending=exc.pending) from None


async def current_templates(hub: HubParts) -> list[TemplateVersion]:
    """The current version of every template, by name."""
    return await list_templates(hub.store)


async def history(hub: HubParts, name: str) -> list[TemplateVersion]:
    """Every version of the template, oldest first."""
    async with _refusals():
        return await template_versions_of(hub.store, name)


async def shown(hub: HubParts, name: str, version: int | None) -> tuple[TemplateVersion, list[TemplateVersion]]:
    """The version asked for (None: the current one) and the whole history, oldest first."""
    versions = await history(hub, name)
    chosen = versions[-1] if version is None else next((t for t in versions if t.version == version), None)
    if chosen is None:
        raise NotFound("not_found", f"template {name!r} has no version {version}")
    return chosen, versions


async def version_of(hub: HubParts, name: str, version: int | None) -> TemplateVersion:
    """One version of the template (None: the current one)."""
    async with _refusals():
        return await get_template(hub.store, name, version)


async def _validated(draft: TemplateDraft) -> None:
    try:
        await asyncio.to_thread(validate, draft)
    except TemplateError as exc:
        raise TemplateRefused(exc, name=draft.name) from None


async def create(hub: HubParts, actor: Principal, draft: TemplateDraft) -> TemplateVersion:
    """A new template, version 1. Conflict ``template_exists`` when the name is taken."""
    require_role(actor, Role.ADMIN)
    await _validated(draft)
    async with _refusals():
        saved = await create_template(hub.store, draft, now=hub.clock(), created_by=actor.id)
    await _audit(hub, actor, "template.created", saved.name, None, saved)
    return saved


async def save(hub: HubParts, actor: Principal, draft: TemplateDraft) -> TemplateVersion:
    """A new version of an existing template. NotFound when there is none by that name."""
    require_role(actor, Role.ADMIN)
    async with _refusals():
        current = await get_template(hub.store, draft.name)
    await _validated(draft)
    async with _refusals():
        saved = await update_template(hub.store, draft, now=hub.clock(), created_by=actor.id)
    await _audit(hub, actor, "template.updated", saved.name, current, saved)
    return saved


async def restore(hub: HubParts, actor: Principal, name: str, version: int) -> TemplateVersion:
    """An old version saved again as the current one, if it still passes today's rules."""
    require_role(actor, Role.ADMIN)
    async with _refusals():
        old = await get_template(hub.store, name, version)
    await _validated(old.draft())  # the rules may have tightened since it was saved
    async with _refusals():
        current = await get_template(hub.store, name)
        saved = await restore_template(hub.store, name, version, now=hub.clock(), created_by=actor.id)
    await _audit(hub, actor, "template.restored", name, current, saved)
    return saved


async def delete(hub: HubParts, actor: Principal, name: str) -> None:
    """The template and its history. Conflict ``template_in_use`` while a queued message was rendered from it."""
    require_role(actor, Role.ADMIN)
    async with _refusals():
        current = await get_template(hub.store, name)
        await delete_template(hub.store, name)
    await _audit(hub, actor, "template.deleted", name, current, None)


async def import_drafts(hub: HubParts, actor: Principal, drafts: Sequence[TemplateDraft]) -> dict[str, str]:
    """Validate every draft, then save them all in one transaction: new versions only where changed.

    Returns what happened to each name; a draft that fails raises TemplateRefused naming it (``name``)."""
    require_role(actor, Role.ADMIN)
    for draft in drafts:
        await _validated(draft)
    outcome = await import_templates(hub.store, drafts, now=hub.clock(), created_by=actor.id)
    await record(hub.store, "template.imported", actor=actor, at=hub.clock(), target="templates", after=outcome)
    return outcome


async def _audit(
    hub: HubParts,
    actor: Principal,
    action: str,
    name: str,
    before: TemplateVersion | None,
    after: TemplateVersion | None,
) -> None:
    """The template's content before and after, in the audit log."""
    await record(
        hub.store,
        action,
        actor=actor,
        at=hub.clock(),
        target=f"template:{name}",
        before={"version": before.version, **before.draft().content()} if before is not None else None,
        after={"version": after.version, **after.draft().content()} if after is not None else None,
    )


# ----------------------------------------------------------------- seeding


def default_templates_dir() -> Path | None:
    """The ``templates/`` folder beside the package (a source checkout), if there is one."""
    candidate = Path(__file__).resolve().parents[2] / "templates"
    return candidate if candidate.is_dir() else None


async def seed_shipped(hub: HubParts) -> dict[str, str]:
    """Import the shipped templates (``templates.dir``, else the checkout's folder) into an empty store.

    Seeding must never stop the hub from starting: an unreadable folder or an invalid file is logged and
    skipped, and a store that already holds templates is left as it is (another process may have seeded it).
    """
    configured = hub.settings.templates_dir
    directory = Path(configured) if configured else default_templates_dir()
    if directory is None or not directory.is_dir():
        if configured:
            logger.warning("templates.dir %s is not a folder; no templates seeded", configured)
        return {}
    try:
        drafts = read_dir(directory)
    except (TemplateFileError, OSError) as exc:
        logger.error("templates not seeded: %s", exc)
        return {}
    valid = []
    for draft in drafts:
        try:
            await asyncio.to_thread(validate, draft)
        except TemplateError as exc:
            logger.error("template %s not seeded: %s", draft.name, exc)
            continue
        valid.append(draft)
    outcome = await import_templates(hub.store, valid, now=hub.clock(), only_if_empty=True)
    if outcome:
        logger.info("seeded %d message templates", len(outcome))
    return outcome
