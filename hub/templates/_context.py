"""The render context: the conversation's contact, identity, agent, conversation and queue as plain
fields a template reads, and the example context that validation and preview render with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from hub.model import Channel

__all__ = [
    "CONTEXT_NAMES",
    "EXAMPLE_CONTEXT",
    "Record",
    "contact_from_identity",
    "context_record",
    "preview_context",
    "render_context",
]

#: names the hub puts in every render context; variables may not reuse them
CONTEXT_NAMES: tuple[str, ...] = ("contact", "identity", "agent", "conversation", "queue")


class Record(dict[str, Any]):
    """A context object (contact, agent, ...) as a read-only mapping that knows its name,
    so a missing field is reported as ``contact.company`` rather than ``company``."""

    __slots__ = ("path",)

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.path = path


def context_record(obj: Any, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A dataclass (Contact, Identity, Agent, Conversation, Queue) as plain fields for a template.

    ``None`` fields are left out: with StrictUndefined ``{{ contact.company }}`` then fails
    clearly, and ``{{ contact.company | default('') }}`` is how a template says "optional"."""
    if obj is None:
        return {}
    names = getattr(obj, "__dataclass_fields__", None)
    raw: Mapping[str, Any] = {n: getattr(obj, n) for n in names} if names else dict(obj)
    skip = set(exclude) | {"credentials"}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in skip or value is None:
            continue
        if isinstance(value, (str, int, float, bool, datetime, date)):
            out[key] = value.value if hasattr(value, "value") and isinstance(value, str) else value
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
    return out


def render_context(
    *, contact: Any = None, identity: Any = None, agent: Any = None, conversation: Any = None, queue: Any = None
) -> dict[str, dict[str, Any]]:
    """The render context of a conversation, the same for every caller (API render, outbound send).

    Each argument is a model dataclass or a mapping (None leaves the object out). An identity
    not paired with a contact still gives ``contact.name`` / ``contact.phone`` from what the
    channel told us, so greeting templates work before anyone fills in the CRM."""
    identity_fields = context_record(identity)
    contact_fields = context_record(contact) if contact is not None else contact_from_identity(identity_fields)
    context = {
        "contact": contact_fields,
        "identity": identity_fields,
        "agent": context_record(agent, exclude=("pause_reason", "pause_paid", "presence_since")),
        "conversation": context_record(conversation),
        "queue": context_record(queue),
    }
    given = {"identity": identity, "agent": agent, "conversation": conversation, "queue": queue}
    return {key: value for key, value in context.items() if key == "contact" or given[key] is not None}


def contact_from_identity(identity: Mapping[str, Any]) -> dict[str, Any]:
    pairs = (("name", "display_name"), ("phone", "phone"))
    return {key: identity[source] for key, source in pairs if identity.get(source)}


_EXAMPLE_TIME = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)

#: what validation and preview render with when no conversation is at hand
EXAMPLE_CONTEXT: Mapping[str, Mapping[str, Any]] = {
    "contact": {
        "id": 1,
        "name": "Ann Example",
        "company": "Example Ltd",
        "phone": "+14155550123",
        "email": "ann@example.com",
        "time_zone": "Europe/Berlin",
    },
    "identity": {
        "id": 1,
        "account_id": "main",
        "channel": "whatsapp",
        "external_id": "+14155550123",
        "display_name": "Ann",
        "phone": "+14155550123",
    },
    "agent": {"id": 1, "login": "sam", "display_name": "Sam", "role": "agent"},
    "conversation": {
        "id": 1,
        "account_id": "main",
        "channel": "whatsapp",
        "queue_id": "support",
        "state": "active",
        "opened_at": _EXAMPLE_TIME,
        "important": False,
    },
    "queue": {"id": "support", "name": "Support", "number": 100},
}


def preview_context(channel: Channel) -> dict[str, dict[str, Any]]:
    """The example context, adjusted to the channel being previewed."""
    ctx = {key: dict(value) for key, value in EXAMPLE_CONTEXT.items()}
    ctx["identity"]["channel"] = channel.value
    ctx["conversation"]["channel"] = channel.value
    return ctx
