"""Row mappers: a database row of identities or messages as the model's object."""

from __future__ import annotations

from typing import Any

from hub.model import (
    Attachment,
    Author,
    Channel,
    DeliveryState,
    Direction,
    Identity,
    Message,
    MessageKind,
    Subscription,
)

__all__ = ["identity_from_row", "message_from_row"]


def identity_from_row(
    row: Any, *, id_column: str = "id", account_column: str = "account_id", channel_column: str = "channel"
) -> Identity:
    """An ``identities`` row as the model's Identity. A row that joins the identity to other tables names the
    three columns that clash with theirs (``id_column="identity_id"``, ...)."""
    return Identity(
        id=int(getattr(row, id_column)),
        account_id=getattr(row, account_column),
        channel=Channel(getattr(row, channel_column)),
        external_id=row.external_id,
        display_name=row.display_name,
        avatar_url=row.avatar_url,
        phone=row.phone,
        first_inbound_at=row.first_inbound_at,
        last_inbound_at=row.last_inbound_at,
        subscription=Subscription(row.subscription) if row.subscription else None,
        subscription_changed_at=row.subscription_changed_at,
        contact_id=row.contact_id,
        welcome_sent=bool(row.welcome_sent),
    )


def message_from_row(row: Any) -> Message:
    return Message(
        id=int(row.id),
        conversation_id=int(row.conversation_id),
        direction=Direction(row.direction),
        author=Author(row.author),
        kind=MessageKind(row.kind),
        created_at=row.created_at,
        text=row.text,
        attachments=tuple(Attachment.from_json(a) for a in row.attachments or ()),
        provider_message_id=row.provider_message_id,
        sent_at=row.sent_at,
        delivery_state=DeliveryState(row.delivery_state),
        error_code=row.error_code,
        error_reason=row.error_reason,
        agent_id=row.agent_id,
        template_name=row.template_name,
        template_version=row.template_version,
    )
