"""Send and close goes through the lifecycle's close: the same rule and guarded update as the close action."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from hub.model import ConversationState, MessageKind
from hub.store.outbound import ConversationTaken, NewOutbound, queue_outbound
from hub.store.routing import close_conversation
from hub.store.tables import conversations, messages, timeline_events
from tests.api.conftest import Api


def closing(conversation_id: int, identity_id: int, agent_id: int) -> NewOutbound:
    return NewOutbound(
        account_id="wa-test",
        identity_id=identity_id,
        agent_id=agent_id,
        kind=MessageKind.TEXT,
        send_plan={},
        conversation_id=conversation_id,
        text="bye",
        close_status="resolved",
    )


async def facts(api: Api, conversation_id: int) -> tuple[int, int]:
    async with api.store.read() as connection:
        identity_id, version = (
            await connection.execute(
                select(conversations.c.identity_id, conversations.c.version).where(
                    conversations.c.id == conversation_id
                )
            )
        ).one()
    return int(identity_id), int(version)


async def test_send_and_close_clears_the_offer_and_bumps_the_version(api: Api) -> None:
    ana = await api.agent("ana", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    identity_id, version = await facts(api, conversation_id)
    queued = await queue_outbound(api.store, closing(conversation_id, identity_id, ana.id), api.clock())
    assert queued.conversation is not None
    closed = queued.conversation
    assert (closed.state, closed.status_id, closed.closed_at) == (ConversationState.CLOSED, "resolved", api.clock())
    assert (closed.offered_agent_id, closed.offered_at, closed.offer_deadline) == (None, None, None)
    assert (await facts(api, conversation_id))[1] == version + 1


async def test_send_and_close_on_a_conversation_closed_meanwhile_is_refused_and_stores_nothing(api: Api) -> None:
    ana = await api.agent("ana", role="supervisor")
    conversation_id = await api.customer_writes()
    await close_conversation(api.store, conversation_id, ana.id, "resolved", now=api.clock())
    identity_id, version = await facts(api, conversation_id)
    api.clock.advance(60)
    with pytest.raises(ConversationTaken) as refused:
        await queue_outbound(api.store, closing(conversation_id, identity_id, ana.id), api.clock())
    assert refused.value.conversation_id == conversation_id
    async with api.store.read() as connection:
        sent = (
            await connection.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.conversation_id == conversation_id, messages.c.direction == "out")
            )
        ).scalar_one()
        closes = (
            await connection.execute(
                select(func.count())
                .select_from(timeline_events)
                .where(timeline_events.c.conversation_id == conversation_id, timeline_events.c.kind == "closed")
            )
        ).scalar_one()
    assert (sent, closes) == (0, 1)
    assert (await facts(api, conversation_id))[1] == version
