"""Typed events keep the wire format: each kind's ``kind`` string and ``data`` are what bus_log and the
WebSocket carried when events were dicts, and the router wakes on what can free an agent or fill a queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hub.events import (
    AgentDeactivated,
    AgentPresence,
    AttachmentChanged,
    ConversationClosed,
    ConversationLeftQueue,
    ConversationOpened,
    ConversationTicket,
    ConversationUpdated,
    ConversationWaiting,
    HubEvent,
    IdentitySubscription,
    LoggedEvent,
    MessageCreated,
    MessageDelivery,
    Offer,
    OfferWithdrawn,
    QueueChanged,
    QueueWaiting,
    Recorded,
    Topic,
    topic_of,
    unwrapped,
)
from hub.router import wakes_the_router

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

WIRE: list[tuple[HubEvent | QueueWaiting, str, tuple[int | None, int | None, str | None], dict[str, Any]]] = [
    (
        Offer(conversation_id=1, agent_id=2, queue_id="support", deadline=AT),
        "offer",
        (1, 2, "support"),
        {"deadline": "2026-03-02T09:00:00+00:00"},
    ),
    (
        OfferWithdrawn(conversation_id=1, agent_id=2, reason="timeout"),
        "offer.withdrawn",
        (1, 2, None),
        {"reason": "timeout"},
    ),
    (ConversationWaiting(conversation_id=1, queue_id="support"), "conversation.waiting", (1, None, "support"), {}),
    (ConversationLeftQueue(conversation_id=1, queue_id="support"), "conversation.left_queue", (1, None, "support"), {}),
    (
        ConversationUpdated(
            conversation_id=1, action="left", by=2, audience=(3, 2, 3), details={"owner": 3, "reason": "deactivated"}
        ),
        "conversation.updated",
        (1, None, None),
        {"action": "left", "audience": [2, 3], "agent_id": 2, "owner": 3, "reason": "deactivated"},
    ),
    (
        ConversationOpened(conversation_id=1, agent_id=2, identity_id=7),
        "conversation.opened",
        (1, 2, None),
        {"identity_id": 7, "outbound": True},
    ),
    (
        ConversationClosed(conversation_id=1, agent_id=2, status="resolved"),
        "conversation.closed",
        (1, 2, None),
        {"status": "resolved"},
    ),
    (
        ConversationTicket(conversation_id=1, ticket="T-1", title="Refund", by=2),
        "conversation.ticket",
        (1, None, None),
        {"ticket": "T-1", "title": "Refund", "by": 2},
    ),
    (
        MessageCreated(conversation_id=1, queue_id="support", message_id=5, direction="in", identity_id=7),
        "message.created",
        (1, None, "support"),
        {"message_id": 5, "direction": "in", "identity_id": 7},
    ),
    (
        MessageCreated(conversation_id=1, agent_id=2, message_id=5, direction="out", identity_id=7, state="queued"),
        "message.created",
        (1, 2, None),
        {"message_id": 5, "direction": "out", "identity_id": 7, "state": "queued"},
    ),
    (
        MessageDelivery(conversation_id=1, message_id=5, state="read", error_code="x", error_reason="y"),
        "message.delivery",
        (1, None, None),
        {"message_id": 5, "state": "read"},
    ),
    (
        MessageDelivery(conversation_id=1, message_id=5, state="failed", error_code=None, error_reason=None),
        "message.delivery",
        (1, None, None),
        {"message_id": 5, "state": "failed", "error_code": None, "error_reason": None},
    ),
    (
        AttachmentChanged(conversation_id=1, message_id=5, attachment={"id": 3, "state": "stored"}),
        "message.attachment",
        (1, None, None),
        {"message_id": 5, "attachment": {"id": 3, "state": "stored"}},
    ),
    (
        IdentitySubscription(identity_id=7, state="subscribed"),
        "identity.subscription",
        (None, None, None),
        {"identity_id": 7, "state": "subscribed"},
    ),
    (AgentPresence(agent_id=2), "agent.presence", (None, 2, None), {"agent_id": 2}),
    (AgentPresence(agent_id=2, agent={"id": 2}), "agent.presence", (None, 2, None), {"agent": {"id": 2}}),
    (AgentDeactivated(agent_id=2), "agent.deactivated", (None, 2, None), {"agent_id": 2}),
    (
        QueueChanged(queue_id="support", action="members"),
        "queue.changed",
        (None, None, "support"),
        {"queue": "support", "action": "members"},
    ),
    (
        QueueWaiting(queue_id="support", waiting=2, oldest_waiting_since=AT, changed=(0, 4, 9)),
        "queue.waiting",
        (None, None, "support"),
        {"queue_id": "support", "waiting": 2, "oldest_waiting_since": "2026-03-02T09:00:00+00:00", "changed": [4, 9]},
    ),
]


@pytest.mark.parametrize(("event", "kind", "envelope", "data"), WIRE, ids=[type(w[0]).__name__ for w in WIRE])
def test_each_event_keeps_its_wire_kind_envelope_and_data(
    event: HubEvent | QueueWaiting, kind: str, envelope: tuple[int | None, int | None, str | None], data: dict[str, Any]
) -> None:
    assert event.kind == kind
    assert (event.conversation_id, event.agent_id, event.queue_id) == envelope
    assert event.data == data
    assert list(event.data) == list(data)  # the same key order: the same JSON text
    assert topic_of(kind) is type(event).topic


def test_a_recorded_event_answers_as_its_log_entry_and_unwraps_to_the_event() -> None:
    event = ConversationWaiting(conversation_id=1, queue_id="support")
    entry = LoggedEvent(
        seq=9,
        kind=event.kind,
        conversation_id=1,
        agent_id=None,
        queue_id="support",
        data={"audience": []},
        created_at=AT,
    )
    recorded = Recorded(event=event, entry=entry)
    assert (recorded.kind, recorded.conversation_id, recorded.queue_id, recorded.data) == (
        "conversation.waiting",
        1,
        "support",
        {"audience": []},
    )
    assert unwrapped(recorded) is event
    assert unwrapped(event) is event


def test_unknown_kinds_have_no_topic() -> None:
    assert topic_of("agents.changed") is None
    assert topic_of("hello") is None
    assert topic_of("conversation.updated") is Topic.CONVERSATION


WAKES = [
    ConversationWaiting(conversation_id=1, queue_id="support"),
    ConversationUpdated(conversation_id=1, action="left", by=2, audience=(2,)),
    ConversationClosed(conversation_id=1, agent_id=2, status="resolved"),  # "send and close" frees capacity
    OfferWithdrawn(conversation_id=1, agent_id=2, reason="timeout"),
    AgentPresence(agent_id=2),
    QueueChanged(queue_id="support", action="members"),  # a new member may take what waits
]
SLEEPS = [
    Offer(conversation_id=1, agent_id=2, queue_id="support", deadline=AT),
    ConversationLeftQueue(conversation_id=1, queue_id="support"),
    ConversationOpened(conversation_id=1, agent_id=2, identity_id=7),
    MessageCreated(conversation_id=1, message_id=5, direction="in", identity_id=7),
    MessageDelivery(conversation_id=1, message_id=5, state="sent"),
    IdentitySubscription(identity_id=7, state="subscribed"),
    AgentDeactivated(agent_id=2),  # what it releases is published as events of its own
]


@pytest.mark.parametrize("event", WAKES, ids=[type(e).__name__ for e in WAKES])
def test_the_router_wakes_on_what_may_let_a_waiting_conversation_find_an_agent(event: HubEvent) -> None:
    assert wakes_the_router(event)
    entry = LoggedEvent(
        seq=1, kind=event.kind, conversation_id=None, agent_id=None, queue_id=None, data={}, created_at=AT
    )
    assert wakes_the_router(Recorded(event=event, entry=entry))  # recorded by the journal, as sweeps are


@pytest.mark.parametrize("event", SLEEPS, ids=[type(e).__name__ for e in SLEEPS])
def test_the_router_sleeps_through_the_rest(event: HubEvent) -> None:
    assert not wakes_the_router(event)
