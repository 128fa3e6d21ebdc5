"""What the serving tests share: a Messenger account, and a customer's video recorded as stored under a blob key
with a media link, as the fetcher would leave it."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select, update

from hub.app import Hub
from hub.model import Attachment, InboundMessage, MessageKind
from hub.settings import Settings
from hub.store.ingest import store_group
from hub.store.tables import attachments, messages

ACCOUNT = """
[[accounts]]
id = "fb"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9/graph"
page_id = "1047"
app_secret = "s"
verify_token = "v"
page_access_token = "t"
"""


async def stored_video(hub: Hub, settings: Settings, *, key: str, size: int) -> str:
    """A customer's video message whose attachment is stored as ``key``; returns its media link's token."""
    now = hub.clock()
    event = InboundMessage(
        channel=settings.account("fb").channel,
        account_id="fb",
        sender_id="psid-1",
        provider_message_id=f"m-{key[:12]}",
        sent_at=now,
        kind=MessageKind.VIDEO,
        attachments=(Attachment(kind=MessageKind.VIDEO, url="https://cdn.test/v.mp4"),),
    )
    await store_group(hub.store, [[event]], {a.id: a for a in settings.accounts}, now)
    token = secrets.token_urlsafe(32)
    async with hub.store.write() as connection:
        message_id = (await connection.execute(select(messages.c.id))).scalar_one()
        await connection.execute(
            update(attachments)
            .where(attachments.c.message_id == message_id)
            .values(
                state="stored",
                blob_key=key,
                sha256=key,
                size=size,
                mime="video/mp4",
                link_token=token,
                link_expires_at=now + timedelta(days=1),
                stored_at=now,
                locked_until=None,
                next_attempt_at=None,
            )
        )
    return token
