"""Table tests of the conversation lifecycle: every agent action x state x role, then each rule's change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.api.access import can_act, can_see, can_take
from hub.lifecycle import (
    BACK_TO_WAITING,
    Accept,
    Action,
    Actor,
    Change,
    Close,
    Entry,
    ExpireOffer,
    HandOff,
    Invite,
    Leave,
    MarkImportant,
    Offer,
    Outcome,
    Participant,
    Refusal,
    Reject,
    Release,
    Take,
    ToBot,
    TransferToAgent,
    TransferToQueue,
    Verb,
    WithdrawOffer,
    decide,
    heir,
    may,
    present,
    transition,
)
from hub.model import Agent, Channel, Conversation, ConversationState, EventKind, Presence, Queue, Role

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
DEADLINE = NOW + timedelta(seconds=30)
SUPPORT = Queue(id="support", name="Support", number=100, offer_timeout=30, statuses=("resolved", "spam"))
CATALOGUE = ("resolved", "spam", "callback")

BOT = ConversationState.BOT
WAITING, OFFERED, ACTIVE, CLOSED = (
    ConversationState.WAITING,
    ConversationState.OFFERED,
    ConversationState.ACTIVE,
    ConversationState.CLOSED,
)

# the cast: who each persona is to the conversation of every state below
OWNER, GUEST, OFFEREE, MEMBER, STRANGER, SUPERVISOR, ADMIN, COLLEAGUE = 1, 2, 3, 4, 5, 6, 7, 8
PERSONAS: dict[str, Actor] = {
    "owner": Actor(agent_id=OWNER, queues=frozenset({"support"})),  # owns it when active / closed
    "guest": Actor(agent_id=GUEST, queues=frozenset({"support"})),  # invited when active / closed
    "offeree": Actor(agent_id=OFFEREE, queues=frozenset({"support"})),  # offered it when offered
    "member": Actor(agent_id=MEMBER, queues=frozenset({"support"})),  # a member of its queue, nothing more
    "stranger": Actor(agent_id=STRANGER, queues=frozenset({"sales"})),  # another queue's agent
    "supervisor": Actor(agent_id=SUPERVISOR, role=Role.SUPERVISOR),
    "admin": Actor(agent_id=ADMIN, role=Role.ADMIN),
}
COLUMNS = tuple(PERSONAS)


def conversation(state: ConversationState, **overrides: object) -> Conversation:
    values: dict[str, object] = {
        "id": 42,
        "account_id": "fb",
        "channel": Channel.MESSENGER,
        "identity_id": 7,
        "queue_id": "support",
        "state": state,
        "waiting_since": T0,
        "opened_at": T0,
    }
    if state is OFFERED:
        values |= {"offered_agent_id": OFFEREE, "offered_at": T0, "offer_deadline": DEADLINE}
    if state in (ACTIVE, CLOSED):
        values["owner_agent_id"] = OWNER
    if state is CLOSED:
        values |= {"status_id": "resolved", "closed_at": T0 + timedelta(minutes=5)}
    values.update(overrides)
    return Conversation(**values)  # type: ignore[arg-type]


def cast(state: ConversationState) -> tuple[Participant, ...]:
    if state is ACTIVE:
        return (
            Participant(agent_id=OWNER, role="owner", joined_at=T0),
            Participant(agent_id=GUEST, role="invited", joined_at=T0 + timedelta(minutes=1)),
        )
    if state is CLOSED:
        left = T0 + timedelta(minutes=5)
        return (
            Participant(agent_id=OWNER, role="owner", joined_at=T0, left_at=left),
            Participant(agent_id=GUEST, role="invited", joined_at=T0 + timedelta(minutes=1), left_at=left),
        )
    return ()


ACTIONS: dict[str, Callable[[Actor], Action]] = {
    "accept": lambda a: Accept(agent_id=a.agent_id),
    "reject": lambda a: Reject(agent_id=a.agent_id),
    "take": lambda a: Take(actor=a),
    "leave": lambda a: Leave(agent_id=a.agent_id),
    "transfer to agent": lambda a: TransferToAgent(by=a.agent_id, to=COLLEAGUE, to_active=True),
    "transfer to queue": lambda a: TransferToQueue(by=a.agent_id, queue_id="sales", queue_known=True),
    "invite": lambda a: Invite(by=a.agent_id, guest=COLLEAGUE, guest_active=True),
    "close": lambda a: Close(by=a.agent_id, status="resolved", queue=SUPPORT, catalogue=CATALOGUE),
    "mark important": lambda a: MarkImportant(by=a.agent_id),
    "hand off": lambda a: HandOff(reason="bot_asked", bot_id="faq", by=a.agent_id),
    "to bot": lambda a: ToBot(by=a.agent_id, bot_id="faq", bot_known=True),
}

NOT_OFFERED = "not_offered_to_you"
TAKEN = "already_taken"
CLOSED_ = "conversation_closed"
NO = "forbidden"
NOT_HERE = "not_a_participant"

# action -> state -> the answer for each persona, in COLUMNS order:
#   owner, guest, offeree, member, stranger, supervisor, admin     ("ok": the change applies; else the refusal code)
GRID: dict[str, dict[ConversationState, tuple[str, ...]]] = {
    "accept": {
        BOT: (NOT_OFFERED, NOT_OFFERED, NOT_OFFERED, NOT_OFFERED, NO, NOT_OFFERED, NOT_OFFERED),
        WAITING: (NOT_OFFERED, NOT_OFFERED, NOT_OFFERED, NOT_OFFERED, NO, NOT_OFFERED, NOT_OFFERED),
        OFFERED: (NOT_OFFERED, NOT_OFFERED, "ok", NOT_OFFERED, NO, NOT_OFFERED, NOT_OFFERED),
        ACTIVE: (NOT_OFFERED, NOT_OFFERED, NO, NO, NO, NOT_OFFERED, NOT_OFFERED),
        CLOSED: (NOT_OFFERED, NOT_OFFERED, NO, NO, NO, NOT_OFFERED, NOT_OFFERED),
    },
    "reject": {
        BOT: (NOT_OFFERED, NOT_OFFERED, NOT_OFFERED, NOT_OFFERED, NO, NOT_OFFERED, NOT_OFFERED),
        WAITING: (NOT_OFFERED, NOT_OFFERED, NOT_OFFERED, NOT_OFFERED, NO, NOT_OFFERED, NOT_OFFERED),
        OFFERED: (NOT_OFFERED, NOT_OFFERED, "ok", NOT_OFFERED, NO, NOT_OFFERED, NOT_OFFERED),
        ACTIVE: (NOT_OFFERED, NOT_OFFERED, NO, NO, NO, NOT_OFFERED, NOT_OFFERED),
        CLOSED: (NOT_OFFERED, NOT_OFFERED, NO, NO, NO, NOT_OFFERED, NOT_OFFERED),
    },
    "take": {
        BOT: ("ok", "ok", "ok", "ok", NO, "ok", "ok"),
        WAITING: ("ok", "ok", "ok", "ok", NO, "ok", "ok"),
        OFFERED: ("ok", "ok", "ok", "ok", NO, "ok", "ok"),
        ACTIVE: (TAKEN, TAKEN, TAKEN, TAKEN, NO, TAKEN, TAKEN),
        CLOSED: (TAKEN, TAKEN, TAKEN, TAKEN, NO, TAKEN, TAKEN),
    },
    "leave": {
        BOT: (NO, NO, NO, NO, NO, NOT_HERE, NOT_HERE),
        WAITING: (NO, NO, NO, NO, NO, NOT_HERE, NOT_HERE),
        OFFERED: (NO, NO, NO, NO, NO, NOT_HERE, NOT_HERE),
        ACTIVE: ("ok", "ok", NO, NO, NO, NOT_HERE, NOT_HERE),
        CLOSED: (NO, NO, NO, NO, NO, CLOSED_, CLOSED_),
    },
    "transfer to agent": {
        BOT: (NO, NO, NO, NO, NO, "ok", "ok"),
        WAITING: (NO, NO, NO, NO, NO, "ok", "ok"),
        OFFERED: (NO, NO, NO, NO, NO, "ok", "ok"),
        ACTIVE: ("ok", "ok", NO, NO, NO, "ok", "ok"),
        CLOSED: (NO, NO, NO, NO, NO, CLOSED_, CLOSED_),
    },
    "transfer to queue": {
        BOT: (NO, NO, NO, NO, NO, "ok", "ok"),
        WAITING: (NO, NO, NO, NO, NO, "ok", "ok"),
        OFFERED: (NO, NO, NO, NO, NO, "ok", "ok"),
        ACTIVE: ("ok", "ok", NO, NO, NO, "ok", "ok"),
        CLOSED: (NO, NO, NO, NO, NO, CLOSED_, CLOSED_),
    },
    "invite": {
        BOT: (NO, NO, NO, NO, NO, "not_active", "not_active"),
        WAITING: (NO, NO, NO, NO, NO, "not_active", "not_active"),
        OFFERED: (NO, NO, NO, NO, NO, "not_active", "not_active"),
        ACTIVE: ("ok", "ok", NO, NO, NO, "ok", "ok"),
        CLOSED: (NO, NO, NO, NO, NO, CLOSED_, CLOSED_),
    },
    "close": {
        BOT: (NO, NO, NO, NO, NO, "ok", "ok"),
        WAITING: (NO, NO, NO, NO, NO, "ok", "ok"),
        OFFERED: (NO, NO, NO, NO, NO, "ok", "ok"),
        ACTIVE: ("ok", "ok", NO, NO, NO, "ok", "ok"),
        CLOSED: (NO, NO, NO, NO, NO, CLOSED_, CLOSED_),
    },
    "mark important": {
        BOT: (NO, NO, NO, NO, NO, "ok", "ok"),
        WAITING: (NO, NO, NO, NO, NO, "ok", "ok"),
        OFFERED: (NO, NO, NO, NO, NO, "ok", "ok"),
        ACTIVE: ("ok", "ok", NO, NO, NO, "ok", "ok"),
        CLOSED: (NO, NO, NO, NO, NO, "ok", "ok"),
    },
    "hand off": {
        BOT: (NO, NO, NO, NO, NO, "ok", "ok"),
        WAITING: (NO, NO, NO, NO, NO, "not_with_bot", "not_with_bot"),
        OFFERED: (NO, NO, NO, NO, NO, "not_with_bot", "not_with_bot"),
        ACTIVE: ("not_with_bot", "not_with_bot", NO, NO, NO, "not_with_bot", "not_with_bot"),
        CLOSED: (NO, NO, NO, NO, NO, CLOSED_, CLOSED_),
    },
    "to bot": {
        BOT: (NO, NO, NO, NO, NO, "already_with_bot", "already_with_bot"),
        WAITING: (NO, NO, NO, NO, NO, "ok", "ok"),
        OFFERED: (NO, NO, NO, NO, NO, "ok", "ok"),
        ACTIVE: ("ok", "ok", NO, NO, NO, "ok", "ok"),
        CLOSED: (NO, NO, NO, NO, NO, CLOSED_, CLOSED_),
    },
}

# the HTTP status each refusal kind maps to stays what the API has always answered
KINDS = {
    NOT_OFFERED: "conflict",
    TAKEN: "conflict",
    CLOSED_: "conflict",
    NO: "forbidden",
    NOT_HERE: "conflict",
    "not_active": "conflict",
    "not_with_bot": "conflict",
    "already_with_bot": "conflict",
}

CASES = [
    pytest.param(action, state, persona, expected, id=f"{action}-{state.value}-{persona}")
    for action, rows in GRID.items()
    for state, answers in rows.items()
    for persona, expected in zip(COLUMNS, answers, strict=True)
]


def answer(decision: Change | Refusal) -> str:
    return "ok" if isinstance(decision, Change) else decision.code


@pytest.mark.parametrize(("action", "state", "persona", "expected"), CASES)
def test_every_action_in_every_state_for_every_role(
    action: str, state: ConversationState, persona: str, expected: str
) -> None:
    actor = PERSONAS[persona]
    decision = decide(actor, conversation(state), cast(state), ACTIONS[action](actor), NOW)
    assert answer(decision) == expected
    if isinstance(decision, Refusal):
        assert decision.kind == KINDS[decision.code]
        assert decision.message


def test_the_grid_covers_every_agent_action_state_and_role() -> None:
    assert set(GRID) == set(ACTIONS)
    assert all(set(rows) == set(ConversationState) for rows in GRID.values())
    assert {a.role for a in PERSONAS.values()} == set(Role)


# ------------------------------------------------------------------ the router's and the system's actions


@pytest.mark.parametrize(
    ("state", "expected"), [(WAITING, "ok"), (OFFERED, "conflict"), (ACTIVE, "conflict"), (CLOSED, "conflict")]
)
def test_only_a_waiting_conversation_is_offered(state: ConversationState, expected: str) -> None:
    decision = transition(conversation(state), cast(state), Offer(agent_id=MEMBER, deadline=DEADLINE), NOW)
    assert answer(decision) == expected
    if isinstance(decision, Change):
        assert decision.sets == {
            "state": OFFERED,
            "offered_agent_id": MEMBER,
            "offered_at": NOW,
            "offer_deadline": DEADLINE,
        }
        assert decision.entry == Entry(EventKind.OFFERED, MEMBER)
        assert decision.restarts_idle == MEMBER


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        (OFFERED, DEADLINE - timedelta(seconds=1), "not_overdue"),
        (OFFERED, DEADLINE, "ok"),
        (OFFERED, DEADLINE + timedelta(seconds=1), "ok"),
        (WAITING, DEADLINE, "not_overdue"),
        (ACTIVE, DEADLINE, "not_overdue"),
        (CLOSED, DEADLINE, "not_overdue"),
    ],
)
def test_an_offer_expires_at_its_deadline(state: ConversationState, now: datetime, expected: str) -> None:
    decision = transition(conversation(state), cast(state), ExpireOffer(), now)
    assert answer(decision) == expected
    if isinstance(decision, Change):
        assert decision.sets == BACK_TO_WAITING
        assert decision.after.waiting_since == T0  # time in queue keeps running
        assert decision.entry == Entry(EventKind.TIMED_OUT, OFFEREE)


def test_an_expired_offer_to_an_agent_who_no_longer_exists_writes_no_timeline_event() -> None:
    decision = transition(conversation(OFFERED, offered_agent_id=None), (), ExpireOffer(), DEADLINE)
    assert isinstance(decision, Change)
    assert decision.entry is None


@pytest.mark.parametrize(
    ("state", "agent", "expected"),
    [
        (OFFERED, OFFEREE, "ok"),
        (OFFERED, MEMBER, NOT_OFFERED),
        (WAITING, OFFEREE, NOT_OFFERED),
        (ACTIVE, OWNER, NOT_OFFERED),
    ],
)
def test_pausing_withdraws_only_ones_own_offer(state: ConversationState, agent: int, expected: str) -> None:
    decision = transition(conversation(state), cast(state), WithdrawOffer(agent_id=agent), NOW)
    assert answer(decision) == expected
    if isinstance(decision, Change):
        assert decision.sets == BACK_TO_WAITING
        assert decision.entry == Entry(EventKind.OFFER_WITHDRAWN, agent, {"reason": "presence"})


# ------------------------------------------------------------------ what each change is


def test_accepting_makes_the_offeree_the_owner() -> None:
    decision = transition(conversation(OFFERED), (), Accept(agent_id=OFFEREE), NOW)
    assert isinstance(decision, Change)
    assert decision.outcome is Outcome.ACCEPTED
    after = decision.after
    assert (after.state, after.owner_agent_id, after.offered_agent_id, after.offer_deadline) == (
        ACTIVE,
        OFFEREE,
        None,
        None,
    )
    assert decision.joins == ((OFFEREE, "owner"),)
    assert decision.entry == Entry(EventKind.ACCEPTED, OFFEREE)
    assert decision.restarts_idle is None


def test_rejecting_puts_it_back_to_waiting_in_the_same_waiting_period() -> None:
    decision = transition(conversation(OFFERED), (), Reject(agent_id=OFFEREE), NOW)
    assert isinstance(decision, Change)
    assert decision.sets == BACK_TO_WAITING
    assert decision.after.waiting_since == T0
    assert decision.entry == Entry(EventKind.REJECTED, OFFEREE)
    assert not decision.joins
    assert not decision.leaves


def test_taking_an_offered_conversation_ends_the_offer_and_restarts_the_takers_idle_time() -> None:
    actor = PERSONAS["member"]
    decision = transition(conversation(OFFERED), (), Take(actor=actor), NOW)
    assert isinstance(decision, Change)
    assert decision.after.state is ACTIVE
    assert decision.after.owner_agent_id == MEMBER
    assert decision.after.offered_agent_id is None
    assert decision.joins == ((MEMBER, "owner"),)
    assert decision.restarts_idle == MEMBER
    assert decision.entry == Entry(EventKind.TAKEN, MEMBER)
    assert decision.lost.code == TAKEN  # the loser of a race hears "taken", not a generic conflict


def test_an_agent_takes_only_from_their_own_queues_and_only_while_active() -> None:
    outsider = Actor(agent_id=STRANGER, queues=frozenset({"sales"}))
    refused = transition(conversation(WAITING), (), Take(actor=outsider), NOW)
    assert refused == Refusal("forbidden", "not_a_member", "you are not a member of queue support")
    inactive = replace(PERSONAS["member"], active=False)
    refused = transition(conversation(WAITING), (), Take(actor=inactive), NOW)
    assert refused == Refusal("forbidden", "agent_inactive", "your account has been deactivated")
    # a taken conversation is "already taken" before anything else is looked at
    assert answer(transition(conversation(ACTIVE), cast(ACTIVE), Take(actor=outsider), NOW)) == TAKEN


def test_the_owner_leaving_hands_over_to_the_longest_present_participant() -> None:
    people = (
        Participant(agent_id=OWNER, role="owner", joined_at=T0),
        Participant(agent_id=9, role="invited", joined_at=T0 + timedelta(minutes=2)),
        Participant(agent_id=GUEST, role="invited", joined_at=T0 + timedelta(minutes=1)),
        Participant(agent_id=3, role="invited", joined_at=T0, left_at=T0 + timedelta(minutes=3)),  # gone
    )
    decision = transition(conversation(ACTIVE), people, Leave(agent_id=OWNER), NOW)
    assert isinstance(decision, Change)
    assert decision.outcome is Outcome.HANDED_OVER
    assert decision.sets == {"owner_agent_id": GUEST}
    assert decision.promotes == GUEST
    assert decision.leaves == {OWNER}
    assert decision.entry == Entry(EventKind.LEFT, OWNER)


def test_a_guest_leaving_changes_nothing_else() -> None:
    decision = transition(conversation(ACTIVE), cast(ACTIVE), Leave(agent_id=GUEST), NOW)
    assert isinstance(decision, Change)
    assert decision.outcome is Outcome.LEFT
    assert decision.sets == {}
    assert decision.promotes is None
    assert decision.leaves == {GUEST}


def test_the_last_participant_cannot_leave() -> None:
    alone = cast(ACTIVE)[:1]
    refused = transition(conversation(ACTIVE), alone, Leave(agent_id=OWNER), NOW)
    assert refused == Refusal("conflict", "last_participant", "you are the last agent here: close or transfer it")


def test_an_owner_cannot_hand_over_a_conversation_that_is_not_active() -> None:
    people = cast(ACTIVE)
    refused = transition(conversation(WAITING, owner_agent_id=OWNER), people, Leave(agent_id=OWNER), NOW)
    assert refused == Refusal("conflict", "conflict", "the conversation changed meanwhile; reload it")


def test_the_heir_is_the_longest_present_with_the_lower_id_first() -> None:
    people = [
        Participant(agent_id=5, role="invited", joined_at=T0),
        Participant(agent_id=4, role="invited", joined_at=T0),
        Participant(agent_id=1, role="owner", joined_at=T0 - timedelta(minutes=1)),
        Participant(agent_id=3, role="invited", joined_at=T0 - timedelta(minutes=5), active=False),
    ]
    assert heir(people, 1) == 3
    assert heir(people, 1, active_only=True) == 4
    assert heir(people[:1], 5) is None


def test_transferring_to_an_agent_ends_the_transferrers_and_the_owners_part_only() -> None:
    people = (*cast(ACTIVE), Participant(agent_id=9, role="invited", joined_at=T0))
    decision = transition(conversation(ACTIVE), people, TransferToAgent(by=GUEST, to=COLLEAGUE, to_active=True), NOW)
    assert isinstance(decision, Change)
    assert decision.leaves == {OWNER, GUEST}
    assert decision.joins == ((COLLEAGUE, "owner"),)
    assert decision.after.owner_agent_id == COLLEAGUE
    assert decision.entry == Entry(EventKind.TRANSFERRED, GUEST, {"to_agent": COLLEAGUE})


def test_transferring_to_a_guest_makes_them_the_owner_and_keeps_them() -> None:
    decision = transition(conversation(ACTIVE), cast(ACTIVE), TransferToAgent(by=OWNER, to=GUEST, to_active=True), NOW)
    assert isinstance(decision, Change)
    assert decision.leaves == {OWNER}
    assert decision.joins == ((GUEST, "owner"),)


def test_a_waiting_conversation_transferred_to_an_agent_is_theirs_at_once() -> None:
    decision = transition(conversation(OFFERED), (), TransferToAgent(by=SUPERVISOR, to=COLLEAGUE, to_active=True), NOW)
    assert isinstance(decision, Change)
    assert decision.after.state is ACTIVE
    assert decision.after.offered_agent_id is None
    assert decision.leaves == frozenset()


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            TransferToAgent(by=OWNER, to=COLLEAGUE, to_active=False),
            Refusal("invalid", "unknown_agent", f"no active agent {COLLEAGUE}"),
        ),
        (
            TransferToAgent(by=OWNER, to=OWNER, to_active=True),
            Refusal("invalid", "transfer_to_self", "you cannot transfer a conversation to yourself"),
        ),
        (
            TransferToQueue(by=OWNER, queue_id="nope", queue_known=False),
            Refusal("invalid", "unknown_queue", "no queue 'nope'"),
        ),
        (
            Invite(by=OWNER, guest=None, guest_active=False, queue_id="nope", queue_known=False),
            Refusal("invalid", "unknown_queue", "no queue 'nope'"),
        ),
        (
            Invite(by=OWNER, guest=None, guest_active=False, queue_id="sales"),
            Refusal("conflict", "nobody_available", "no ready member of 'sales' is free"),
        ),
        (
            Invite(by=OWNER, guest=COLLEAGUE, guest_active=False),
            Refusal("invalid", "unknown_agent", f"no active agent {COLLEAGUE}"),
        ),
        (
            Invite(by=OWNER, guest=GUEST, guest_active=True),
            Refusal("conflict", "already_participant", "that agent is already in the conversation"),
        ),
        (
            Close(by=OWNER, status=None, queue=SUPPORT, catalogue=CATALOGUE),
            Refusal("invalid", "status_required", "choose a status to close; allowed: resolved, spam"),
        ),
        (
            Close(by=OWNER, status="callback", queue=SUPPORT, catalogue=CATALOGUE),
            Refusal(
                "invalid", "status_not_allowed", "'callback' is not allowed in queue support; allowed: resolved, spam"
            ),
        ),
    ],
)
def test_wrong_requests_are_refused_with_the_apis_codes(action: Action, expected: Refusal) -> None:
    assert transition(conversation(ACTIVE), cast(ACTIVE), action, NOW) == expected


def test_transferring_to_a_queue_starts_a_new_waiting_period_there() -> None:
    decision = transition(
        conversation(ACTIVE), cast(ACTIVE), TransferToQueue(by=OWNER, queue_id="sales", queue_known=True), NOW
    )
    assert isinstance(decision, Change)
    after = decision.after
    assert (after.state, after.queue_id, after.waiting_since, after.owner_agent_id) == (WAITING, "sales", NOW, None)
    assert decision.everyone_leaves
    assert decision.entry == Entry(EventKind.TRANSFERRED, OWNER, {"to_queue": "sales", "from_queue": "support"})


def test_inviting_adds_a_silent_guest() -> None:
    decision = transition(conversation(ACTIVE), cast(ACTIVE), Invite(by=OWNER, guest=COLLEAGUE, guest_active=True), NOW)
    assert isinstance(decision, Change)
    assert decision.sets == {}
    assert decision.joins == ((COLLEAGUE, "invited"),)
    assert decision.entry == Entry(EventKind.INVITED, OWNER, {"agent_id": COLLEAGUE})


def test_closing_ends_every_part_and_any_offer() -> None:
    decision = transition(
        conversation(OFFERED), (), Close(by=SUPERVISOR, status="spam", queue=SUPPORT, catalogue=CATALOGUE), NOW
    )
    assert isinstance(decision, Change)
    after = decision.after
    assert (after.state, after.status_id, after.closed_at, after.offered_agent_id) == (CLOSED, "spam", NOW, None)
    assert after.waiting_since == T0
    assert decision.everyone_leaves
    assert decision.entry == Entry(EventKind.CLOSED, SUPERVISOR, {"status": "spam"})


def test_a_queue_without_its_own_statuses_closes_with_the_catalogue() -> None:
    anything = Queue(id="support", name="Support", number=100, offer_timeout=30)
    close = Close(by=OWNER, status="callback", queue=anything, catalogue=CATALOGUE)
    assert isinstance(transition(conversation(ACTIVE), cast(ACTIVE), close, NOW), Change)


def test_a_close_whose_status_was_checked_before_closes_without_the_catalogue() -> None:
    """Send and close: the status was checked before the message was queued."""
    decision = transition(conversation(ACTIVE), cast(ACTIVE)[:1], Close(by=OWNER, status="resolved"), NOW)
    assert isinstance(decision, Change)
    assert decision.after.status_id == "resolved"
    assert answer(transition(conversation(CLOSED), (), Close(by=OWNER, status="resolved"), NOW)) == CLOSED_


@pytest.mark.parametrize(
    ("current", "asked", "expected"), [(False, None, True), (True, None, False), (True, True, True)]
)
def test_marking_important_sets_or_toggles(current: bool, asked: bool | None, expected: bool) -> None:
    decision = transition(conversation(CLOSED, important=current), (), MarkImportant(by=ADMIN, important=asked), NOW)
    assert isinstance(decision, Change)
    assert decision.sets == {"important": expected}
    assert decision.entry == Entry(EventKind.IMPORTANT, ADMIN, {"important": expected})


# ------------------------------------------------------------------ deactivation


def test_a_deactivated_agents_offer_goes_back_with_time_in_queue_running() -> None:
    decision = transition(conversation(OFFERED), (), Release(agent_id=OFFEREE, by=ADMIN), NOW)
    assert isinstance(decision, Change)
    assert decision.outcome is Outcome.WITHDRAWN
    assert decision.sets == BACK_TO_WAITING
    assert decision.entry == Entry(EventKind.OFFER_WITHDRAWN, OFFEREE, {"reason": "deactivated", "by": ADMIN})


def test_a_deactivated_owner_hands_over_to_an_active_participant() -> None:
    people = (*cast(ACTIVE), Participant(agent_id=9, role="invited", joined_at=T0 - timedelta(hours=1), active=False))
    decision = transition(conversation(ACTIVE), people, Release(agent_id=OWNER), NOW)
    assert isinstance(decision, Change)
    assert decision.outcome is Outcome.HANDED_OVER
    assert decision.promotes == GUEST  # 9 was there longer, but cannot answer
    assert decision.entry == Entry(EventKind.LEFT, OWNER, {"reason": "deactivated", "owner": GUEST})


def test_a_deactivated_owner_alone_requeues_it_as_a_new_waiting_period() -> None:
    decision = transition(conversation(ACTIVE), cast(ACTIVE)[:1], Release(agent_id=OWNER, by=ADMIN), NOW)
    assert isinstance(decision, Change)
    assert decision.outcome is Outcome.REQUEUED
    after = decision.after
    assert (after.state, after.queue_id, after.waiting_since, after.owner_agent_id) == (WAITING, "support", NOW, None)
    assert decision.everyone_leaves
    data = {"to_queue": "support", "from_queue": "support", "reason": "deactivated", "by": ADMIN}
    assert decision.entry == Entry(EventKind.TRANSFERRED, OWNER, data)


def test_a_deactivated_guest_leaves_and_a_stranger_holds_nothing() -> None:
    decision = transition(conversation(ACTIVE), cast(ACTIVE), Release(agent_id=GUEST), NOW)
    assert isinstance(decision, Change)
    assert decision.outcome is Outcome.LEFT
    assert decision.leaves == {GUEST}
    assert decision.sets == {}
    assert answer(transition(conversation(ACTIVE), cast(ACTIVE), Release(agent_id=STRANGER), NOW)) == "nothing_held"


# ------------------------------------------------------------------ the gate is the API's


def as_agent(actor: Actor) -> Agent:
    return Agent(
        id=actor.agent_id,
        login=f"a{actor.agent_id}",
        display_name="A",
        role=actor.role,
        capacity=2,
        presence=Presence.READY,
        queues=tuple(sorted(actor.queues)),
    )


agent_ids = st.integers(min_value=1, max_value=4)


@st.composite
def situations(draw: st.DrawFn) -> tuple[Actor, Conversation, tuple[Participant, ...]]:
    state = draw(st.sampled_from(list(ConversationState)))
    owner = draw(st.none() | agent_ids)
    offered = draw(agent_ids) if state is OFFERED else draw(st.none() | agent_ids)
    c = conversation(state, owner_agent_id=owner, offered_agent_id=offered, queue_id=draw(st.sampled_from(["q", "r"])))
    people = tuple(
        Participant(
            agent_id=a,
            role=draw(st.sampled_from(["owner", "invited"])),
            joined_at=T0,
            left_at=draw(st.none() | st.just(NOW)),
        )
        for a in draw(st.sets(agent_ids, max_size=3))
    )
    actor = Actor(
        agent_id=draw(agent_ids),
        role=draw(st.sampled_from(list(Role))),
        queues=frozenset(draw(st.sets(st.sampled_from(["q", "r"])))),
    )
    return actor, c, people


@given(situations())
def test_the_gate_is_the_one_the_api_asks(situation: tuple[Actor, Conversation, tuple[Participant, ...]]) -> None:
    actor, c, people = situation
    agent = as_agent(actor)
    current = present(people)
    former = {p.agent_id for p in people if not p.present} - set(current)
    assert may(actor, Verb.SEE, c, people) == can_see(agent, c, current, former)
    assert may(actor, Verb.TAKE, c, people) == can_take(agent, c, current, former)
    assert may(actor, Verb.ACT, c, people) == can_act(agent, c, current)


# ------------------------------------------------------------------ invariants over any run of actions


def applied(change: Change, people: tuple[Participant, ...], now: datetime) -> tuple[Participant, ...]:
    """The participants after ``change``, as the store writes them."""
    out = []
    for p in people:
        if p.present and (change.everyone_leaves or p.agent_id in change.leaves):
            p = replace(p, left_at=now)
        if p.agent_id == change.promotes:
            p = replace(p, role="owner")
        out.append(p)
    for agent_id, role in change.joins:
        out = [p for p in out if p.agent_id != agent_id]
        out.append(Participant(agent_id=agent_id, role=role, joined_at=now))
    return tuple(out)


agents_ = st.integers(min_value=1, max_value=5)
actions = st.one_of(
    st.builds(Offer, agent_id=agents_, deadline=st.just(DEADLINE)),
    st.builds(Accept, agent_id=agents_),
    st.builds(Reject, agent_id=agents_),
    st.just(ExpireOffer()),
    st.builds(WithdrawOffer, agent_id=agents_),
    st.builds(
        Take,
        actor=st.builds(
            Actor, agent_id=agents_, role=st.sampled_from(list(Role)), queues=st.just(frozenset({"support"}))
        ),
    ),
    st.builds(Leave, agent_id=agents_),
    st.builds(TransferToAgent, by=agents_, to=agents_, to_active=st.booleans()),
    st.builds(TransferToQueue, by=agents_, queue_id=st.sampled_from(["support", "sales"]), queue_known=st.booleans()),
    st.builds(Invite, by=agents_, guest=st.none() | agents_, guest_active=st.booleans()),
    st.builds(
        Close,
        by=agents_,
        status=st.sampled_from([None, "resolved", "callback"]),
        queue=st.just(SUPPORT),
        catalogue=st.just(CATALOGUE),
    ),
    st.builds(MarkImportant, by=agents_, important=st.none() | st.booleans()),
    st.builds(Release, agent_id=agents_),
)


def check(c: Conversation, people: tuple[Participant, ...]) -> None:
    here = present(people)
    owners = [a for a, role in here.items() if role == "owner"]
    if c.state is ACTIVE:
        assert c.owner_agent_id is not None  # an active conversation always has an owner ...
        assert owners == [c.owner_agent_id]  # ... who is here, the only owner
    else:
        assert c.state is CLOSED or not here  # waiting or offered: nobody is in it yet
    if c.state is CLOSED:
        assert not here
        assert c.status_id in SUPPORT.statuses
    if c.state is OFFERED:
        assert c.offered_agent_id is not None
        assert c.offer_deadline is not None
    else:
        assert (c.offered_agent_id, c.offered_at, c.offer_deadline) == (None, None, None)
    if c.state is WAITING:
        assert c.owner_agent_id is None


@settings(max_examples=300)
@given(st.lists(actions, max_size=25))
def test_any_run_of_actions_keeps_the_conversation_consistent(run: list[Action]) -> None:
    c = conversation(WAITING)
    people: tuple[Participant, ...] = ()
    now = NOW
    for action in run:
        now += timedelta(minutes=1)
        decision = transition(c, people, action, now)
        if isinstance(decision, Refusal):
            assert decision.kind in ("not_found", "forbidden", "conflict", "invalid")
            continue
        assert decision.before is c
        c, people = decision.after, applied(decision, people, now)
        check(c, people)


# ------------------------------------------------------------------ closing with colleagues (ADR 0030)

THIRD = 9


def trio() -> tuple[Participant, ...]:
    """The owner and two invited colleagues, all present."""
    return (
        *cast(ACTIVE),
        Participant(agent_id=THIRD, role="invited", joined_at=T0 + timedelta(minutes=2)),
    )


def closing(by: int, status: str | None = "resolved") -> Close:
    return Close(by=by, status=status, queue=SUPPORT, catalogue=CATALOGUE)


# who closes, who is present -> outcome, the conversation's owner after, who leaves, part status recorded
CLOSE_CASES = [
    pytest.param(GUEST, cast(ACTIVE), Outcome.CLOSED_PART, OWNER, {GUEST}, id="guest-of-two"),
    pytest.param(OWNER, cast(ACTIVE), Outcome.CLOSED_PART, GUEST, {OWNER}, id="owner-of-two-hands-over"),
    pytest.param(THIRD, trio(), Outcome.CLOSED_PART, OWNER, {THIRD}, id="guest-of-three"),
    pytest.param(OWNER, trio(), Outcome.CLOSED_PART, GUEST, {OWNER}, id="owner-of-three-to-longest-present"),
    pytest.param(OWNER, cast(ACTIVE)[:1], Outcome.CLOSED, OWNER, set(), id="last-participant-closes-it"),
    pytest.param(SUPERVISOR, trio(), Outcome.CLOSED, OWNER, set(), id="supervisor-not-taking-part-closes-it"),
]


@pytest.mark.parametrize(("by", "people", "outcome", "owner", "leaves"), CLOSE_CASES)
def test_a_close_ends_only_the_closers_part_while_colleagues_remain(
    by: int, people: tuple[Participant, ...], outcome: Outcome, owner: int, leaves: set[int]
) -> None:
    decision = transition(conversation(ACTIVE), people, closing(by), NOW)
    assert isinstance(decision, Change)
    assert decision.outcome is outcome
    after = decision.after
    assert after.owner_agent_id == owner
    if outcome is Outcome.CLOSED_PART:
        assert (after.state, after.status_id, after.closed_at) == (ACTIVE, None, None)
        assert decision.leaves == leaves
        assert not decision.everyone_leaves
        assert decision.part_status == (by, "resolved")
        assert decision.entry is not None
        assert decision.entry.kind is EventKind.LEFT
        assert decision.entry.data["status"] == "resolved"
        assert decision.entry.data["closed"] is True
        assert decision.promotes == (owner if by == OWNER else None)
    else:
        assert (after.state, after.status_id, after.closed_at) == (CLOSED, "resolved", NOW)
        assert decision.everyone_leaves
        assert decision.entry == Entry(EventKind.CLOSED, by, {"status": "resolved"})
        assert decision.part_status == ((by, "resolved") if by in present(people) else None)


def test_a_participants_close_still_needs_an_allowed_status() -> None:
    refused = transition(conversation(ACTIVE), trio(), closing(GUEST, status=None), NOW)
    assert isinstance(refused, Refusal)
    assert refused.code == "status_required"
    refused = transition(conversation(ACTIVE), trio(), closing(GUEST, status="callback"), NOW)
    assert isinstance(refused, Refusal)
    assert refused.code == "status_not_allowed"


def test_closing_one_by_one_closes_it_with_the_last_ones_status() -> None:
    c, people, now = conversation(ACTIVE), trio(), NOW
    for by, status in ((OWNER, "spam"), (THIRD, "resolved")):
        now += timedelta(minutes=1)
        decision = transition(c, people, closing(by, status), now)
        assert isinstance(decision, Change)
        assert decision.outcome is Outcome.CLOSED_PART
        c, people = decision.after, applied(decision, people, now)
        check(c, people)
    assert present(people) == {GUEST: "owner"}
    decision = transition(c, people, closing(GUEST, "resolved"), now)
    assert isinstance(decision, Change)
    assert decision.outcome is Outcome.CLOSED
    assert decision.after.status_id == "resolved"
