"""The audit log: who changed what, when and from where — appended by the actions, never edited (ADR 0033).

``record(store, action, actor=..., at=...)`` appends one entry. Given the change's own ``connection`` it is
written in the change's transaction (both or neither); without one it is written in a transaction of its own
right after the change committed, and a failure to write it is logged (with the whole entry) instead of
failing an action that already happened. ``AuditKeeper`` deletes entries older than ``[audit] keep_days``.

Actions are dotted (``auth.login``, ``presence.changed``, ``conversation.closed``, ``template.updated``...);
docs/operations.md lists them. ``actor_kind`` is ``agent``, ``bot``, ``cli`` (the command line) or ``system``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub._tasks import cancel_and_wait
from hub.logs import correlated
from hub.settings import AuditSettings
from hub.store import Store
from hub.store.audit import append_entry, delete_entries_before
from hub.usecases.principal import ActorKind, Principal

__all__ = ["ACTOR_KINDS", "AuditKeeper", "actor_kind_of", "entry_values", "field_names", "record"]

logger = logging.getLogger(__name__)

ACTOR_KINDS = ("agent", "bot", "cli", "system")
_KINDS = {ActorKind.AGENT: "agent", ActorKind.BOT: "bot", ActorKind.OPERATOR: "cli", ActorKind.SYSTEM: "system"}
_MAX_ADDRESS = 64
_MAX_ACTOR = 100
_MAX_TARGET = 200


def field_names(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """What an entry keeps of a change to customers' data (a contact, a ticket): the names of the fields
    set, never their values; None when none was."""
    return {"fields": sorted(fields)} if fields else None


def actor_kind_of(actor: Principal | None) -> str:
    """The entry's ``actor_kind``: agent, bot, cli, or system when nobody acted."""
    return "system" if actor is None else _KINDS[actor.kind]


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it (dates as ISO text, anything else as its text)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))


def entry_values(
    action: str,
    *,
    actor: Principal | None,
    at: datetime,
    target: str | None = None,
    conversation_id: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    login: str | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """The row for one entry. ``login`` names an actor the principal does not (an attempted login);
    ``address`` one it does not carry."""
    name = login if login is not None else (actor.login if actor is not None else None)
    where = address if address is not None else (actor.address if actor is not None else None)
    return {
        "at": at,
        "actor": name[:_MAX_ACTOR] if name else None,
        "actor_kind": actor_kind_of(actor) if actor is not None or login is None else "agent",
        "action": action,
        "address": where[:_MAX_ADDRESS] if where else None,
        "target": target[:_MAX_TARGET] if target else None,
        "conversation_id": conversation_id,
        "before": _plain(before),
        "after": _plain(after),
    }


async def record(
    store: Store,
    action: str,
    *,
    actor: Principal | None,
    at: datetime,
    target: str | None = None,
    conversation_id: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    login: str | None = None,
    address: str | None = None,
    connection: AsyncConnection | None = None,
) -> None:
    """Append one entry (see the module docstring for ``connection``). Other areas call this for their own
    actions (``article.updated``, ``data.deleted``...): name the action dotted, the target ``kind:id``."""
    values = entry_values(
        action,
        actor=actor,
        at=at,
        target=target,
        conversation_id=conversation_id,
        before=before,
        after=after,
        login=login,
        address=address,
    )
    if connection is not None:
        await append_entry(store, values, connection=connection)
        return
    try:
        await append_entry(store, values)
    except Exception:
        logger.exception("audit entry not recorded: %s", json.dumps({**values, "at": at.isoformat()}))


class AuditKeeper:
    """Deletes audit entries older than ``keep_days``, once at start and then every ``sweep_seconds``."""

    def __init__(self, store: Store, settings: AuditSettings, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self.swept = 0

    async def sweep(self, now: datetime | None = None) -> int:
        """One pass now; returns how many entries it deleted."""
        cutoff = (now or self._clock()) - timedelta(days=self._settings.keep_days)
        deleted = await delete_entries_before(self._store, cutoff)
        self.swept += deleted
        if deleted:
            logger.info("audit entries past their keeping deleted", extra={"deleted": deleted})
        return deleted

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._loop(), name="audit-retention")]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def _loop(self) -> None:
        while True:
            try:
                with correlated(prefix="audit-sweep"):
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next pass tries again
                logger.exception("audit retention sweep failed")
            await asyncio.sleep(self._settings.sweep_seconds)
