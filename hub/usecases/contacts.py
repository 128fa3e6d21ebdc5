"""Contacts (CRM-lite) and identities: find and read them; create, edit and delete a contact; pair an identity
(a customer on one channel) with a contact, create one for it, or unpair it.

Any agent may do these (contacts are the desk's shared address book) but deleting a contact, which is for
supervisors and admins. Each change is audited by ids and field names only: never a customer's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.audit import field_names, record
from hub.errors import NotFound
from hub.model import Contact, Role
from hub.store.contacts import (
    contact_conversations,
    contact_identities,
    create_contact,
    delete_contact,
    get_contact,
    identities_of_contacts,
    list_contacts,
    update_contact,
)
from hub.store.identities import (
    create_contact_and_pair,
    get_identity,
    list_identities,
    pair_identity,
    unpair_identity,
)
from hub.usecases._parts import HubParts
from hub.usecases._store_refusals import store_refusals
from hub.usecases.permissions import require_role
from hub.usecases.principal import Principal

__all__ = [
    "DELETERS",
    "ContactCard",
    "IdentityQuery",
    "conversations_of",
    "create",
    "delete",
    "find_contacts",
    "find_identities",
    "new_contact_for",
    "pair",
    "show",
    "show_identity",
    "unpair",
    "update",
]

#: who may delete a contact
DELETERS = (Role.SUPERVISOR, Role.ADMIN)


Page = tuple[list[dict[str, Any]], str | None]
"""One page of rows as JSON-ready mappings, and the cursor of the next (None on the last)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactCard:
    """A contact with the channel identities paired with it, as the CRM card shows them."""

    contact: Contact
    identities: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityQuery:
    """What an identity search asks: ``q`` matches display name, phone, external id or the paired contact's
    name; ``contacted`` keeps only identities that wrote to us."""

    q: str | None = None
    channel: str | None = None
    account: str | None = None
    contacted: bool = False


def _no_contact(contact_id: int) -> NotFound:
    return NotFound("not_found", f"no contact {contact_id}")


async def find_contacts(
    hub: HubParts, *, q: str | None, after: str | None, limit: int
) -> tuple[list[ContactCard], str | None]:
    """One page of contacts ordered by name, each with its paired identities (read for the page at once)."""
    with store_refusals():
        found, cursor = await list_contacts(hub.store, q=q, after=after, limit=limit)
    paired = await identities_of_contacts(hub.store, [c.id for c in found])
    return [ContactCard(contact=c, identities=paired[c.id]) for c in found], cursor


async def show(hub: HubParts, contact_id: int) -> ContactCard:
    """One contact with its paired identities."""
    contact = await get_contact(hub.store, contact_id)
    if contact is None:
        raise _no_contact(contact_id)
    return ContactCard(contact=contact, identities=await contact_identities(hub.store, contact_id))


async def conversations_of(hub: HubParts, contact_id: int, *, after: str | None, limit: int) -> Page:
    """One page of the contact's conversations on every paired identity, newest first."""
    if await get_contact(hub.store, contact_id) is None:
        raise _no_contact(contact_id)
    with store_refusals():
        return await contact_conversations(hub.store, contact_id, after=after, limit=limit)


async def create(hub: HubParts, actor: Principal, fields: Mapping[str, Any]) -> Contact:
    """A new contact from validated ``fields``."""
    contact = await create_contact(hub.store, fields, hub.clock())
    await _audit_contact(hub, actor, "contact.created", contact.id, fields)
    return contact


async def update(hub: HubParts, actor: Principal, contact_id: int, fields: Mapping[str, Any]) -> Contact:
    """The fields given replace the stored ones (None clears an optional one); the contact as it is now."""
    contact = await update_contact(hub.store, contact_id, fields, hub.clock())
    if contact is None:
        raise _no_contact(contact_id)
    await _audit_contact(hub, actor, "contact.updated", contact_id, fields)
    return contact


async def delete(hub: HubParts, actor: Principal, contact_id: int) -> None:
    """Delete the contact (supervisors and admins): its identities are unpaired, its tickets keep no contact."""
    require_role(actor, *DELETERS)
    if not await delete_contact(hub.store, contact_id):
        raise _no_contact(contact_id)
    await _audit_contact(hub, actor, "contact.deleted", contact_id, {})


async def _audit_contact(
    hub: HubParts, actor: Principal, action: str, contact_id: int, fields: Mapping[str, Any]
) -> None:
    """The change in the audit log: which contact and which fields, never their values (customers' data)."""
    await record(
        hub.store,
        action,
        actor=actor,
        at=hub.clock(),
        target=f"contact:{contact_id}",
        after=field_names(fields),
    )


def _no_identity(identity_id: int) -> NotFound:
    return NotFound("not_found", f"no identity {identity_id}")


async def find_identities(hub: HubParts, query: IdentityQuery, *, after: str | None, limit: int) -> Page:
    """One page of identities, newest first."""
    with store_refusals():
        return await list_identities(
            hub.store,
            q=query.q,
            channel=query.channel,
            account=query.account,
            contacted=query.contacted,
            after=after,
            limit=limit,
        )


async def show_identity(hub: HubParts, identity_id: int) -> Mapping[str, Any]:
    """One identity, with its contact if paired."""
    found = await get_identity(hub.store, identity_id)
    if found is None:
        raise _no_identity(identity_id)
    return found


async def pair(hub: HubParts, actor: Principal, identity_id: int, contact_id: int) -> Mapping[str, Any]:
    """Pair (or re-pair) the identity with an existing contact; the identity as it is now."""
    with store_refusals():
        identity = await pair_identity(hub.store, identity_id, contact_id)
    if identity is None:
        raise _no_identity(identity_id)
    await _audit(hub, actor, "identity.paired", identity_id, identity)
    return identity


async def _audit(hub: HubParts, actor: Principal, action: str, identity_id: int, identity: Mapping[str, Any]) -> None:
    """Which contact the identity now belongs to (ids only: the audit log keeps no customer's data)."""
    contact = identity.get("contact")
    contact_id = contact.get("id") if isinstance(contact, Mapping) else identity.get("contact_id")
    await record(
        hub.store, action, actor=actor, at=hub.clock(), target=f"identity:{identity_id}", after={"contact": contact_id}
    )


async def new_contact_for(
    hub: HubParts, actor: Principal, identity_id: int, fields: Mapping[str, Any]
) -> Mapping[str, Any]:
    """ "Add new contact": create it from ``fields`` and pair the identity with it, both or neither."""
    identity = await create_contact_and_pair(hub.store, identity_id, fields, hub.clock())
    if identity is None:
        raise _no_identity(identity_id)
    await _audit(hub, actor, "identity.paired", identity_id, identity)
    return identity


async def unpair(hub: HubParts, actor: Principal, identity_id: int) -> Mapping[str, Any]:
    """The identity no longer belongs to a contact; the identity as it is now."""
    identity = await unpair_identity(hub.store, identity_id)
    if identity is None:
        raise _no_identity(identity_id)
    await _audit(hub, actor, "identity.unpaired", identity_id, identity)
    return identity
