"""The pure routing decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hub.model import Queue
from hub.routing import (
    BatchChooser,
    Candidate,
    choose_agent,
    close_refusal,
    offer_deadline,
    open_url,
    transfer_excluded,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
QUEUE = Queue(id="support", name="Support", number=100, offer_timeout=30, statuses=("resolved",))


def candidate(agent_id: int, idle_minutes: int, load: int = 0, capacity: int = 2, refused: bool = False) -> Candidate:
    return Candidate(
        agent_id=agent_id,
        idle_since=T0 - timedelta(minutes=idle_minutes),
        load=load,
        capacity=capacity,
        refused=refused,
    )


def test_the_longest_idle_free_agent_gets_the_offer() -> None:
    chosen = choose_agent([candidate(1, 5), candidate(2, 10), candidate(3, 20, load=2)])
    assert chosen is not None
    assert chosen.agent_id == 2


def test_between_equally_idle_agents_the_less_loaded_gets_the_offer() -> None:
    chosen = choose_agent([candidate(1, 5, load=1), candidate(2, 5, load=0)])
    assert chosen is not None
    assert chosen.agent_id == 2


def test_nobody_free_means_no_offer() -> None:
    assert choose_agent([candidate(1, 5, load=2), candidate(2, 10, load=1, capacity=1)]) is None
    assert choose_agent([]) is None


def test_an_agent_who_refused_is_passed_over_while_someone_else_is_ready() -> None:
    chosen = choose_agent([candidate(1, 50, refused=True), candidate(2, 1)])
    assert chosen is not None
    assert chosen.agent_id == 2


def test_a_refuser_waits_behind_a_busy_colleague_who_has_not_refused() -> None:
    assert choose_agent([candidate(1, 50, refused=True), candidate(2, 1, load=2)]) is None


def test_a_refuser_gets_it_again_when_everyone_ready_has_refused() -> None:
    chosen = choose_agent([candidate(1, 50, refused=True)])
    assert chosen is not None
    assert chosen.agent_id == 1


def test_the_deadline_is_the_queues_offer_timeout_after_the_offer() -> None:
    assert offer_deadline(T0, QUEUE) == T0 + timedelta(seconds=30)


def test_closing_needs_a_status_from_the_queues_allowed_set() -> None:
    assert (close_refusal(None, QUEUE, ["resolved", "spam"]) or ("",))[0] == "status_required"
    assert (close_refusal("spam", QUEUE, ["resolved", "spam"]) or ("",))[0] == "status_not_allowed"
    assert close_refusal("resolved", QUEUE, ["resolved", "spam"]) is None


def test_a_queue_without_an_allowed_set_accepts_the_whole_catalogue() -> None:
    open_queue = Queue(id="sales", name="Sales", number=200, offer_timeout=20)
    assert close_refusal("spam", open_queue, ["resolved", "spam"]) is None
    assert close_refusal("other", open_queue, ["resolved", "spam"]) is not None


def test_open_url_fills_and_quotes_placeholders() -> None:
    queue = Queue(id="q", name="Q", number=1, offer_timeout=5, url_template="https://crm/x?p={external_id}&n={nope}")
    assert open_url(queue, {"external_id": "+420 600"}) == "https://crm/x?p=%2B420%20600&n="
    assert open_url(QUEUE, {}) is None


# ------------------------------------------------------------ a batch of offers


def _reference(
    members: dict[str, list[int]],
    agents: dict[int, tuple[datetime, int, int]],
    waiting: list[tuple[str, frozenset[int]]],
    now: datetime,
) -> list[int | None]:
    """choose_agent, one conversation after another, each offer counted before the next."""
    state = {a: list(v) for a, v in agents.items()}
    chosen: list[int | None] = []
    for queue_id, refused in waiting:
        candidates = [
            Candidate(agent_id=a, idle_since=state[a][0], capacity=state[a][1], load=state[a][2], refused=a in refused)
            for a in members.get(queue_id, [])
            if a in state
        ]
        choice = choose_agent(candidates)
        chosen.append(None if choice is None else choice.agent_id)
        if choice is not None:
            state[choice.agent_id][0] = now
            state[choice.agent_id][2] += 1
    return chosen


@st.composite
def batches(draw: st.DrawFn) -> tuple[Any, ...]:
    agent_ids = draw(st.lists(st.integers(1, 12), min_size=1, max_size=8, unique=True))
    base = datetime(2026, 11, 1, tzinfo=UTC)
    agents = {
        a: (base + timedelta(seconds=draw(st.integers(0, 5))), draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        for a in agent_ids
    }
    queues = ["support", "sales"]
    members = {q: draw(st.lists(st.sampled_from([*agent_ids, 99]), unique=True, max_size=8)) for q in queues}
    waiting = draw(
        st.lists(
            st.tuples(st.sampled_from(queues), st.frozensets(st.sampled_from([*agent_ids, 99]), max_size=3)),
            max_size=12,
        )
    )
    return members, agents, waiting


@given(batches())
def test_a_batch_chooses_what_choose_agent_would_one_by_one(batch: tuple[Any, ...]) -> None:
    members, agents, waiting = batch
    now = datetime(2026, 11, 1, 0, 1, tzinfo=UTC)
    chooser = BatchChooser(members, agents)
    chosen: list[int | None] = []
    for queue_id, refused in waiting:
        agent_id = chooser.choose(queue_id, refused)
        chosen.append(agent_id)
        if agent_id is not None:
            chooser.offered(agent_id, now)
    assert chosen == _reference(members, agents, waiting, now)


def test_a_batch_spreads_offers_longest_idle_first_within_capacity() -> None:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    chooser = BatchChooser(
        {"support": [1, 2, 3]}, {1: (base, 2, 1), 2: (base - timedelta(minutes=1), 1, 0), 3: (base, 1, 1)}
    )
    now = base + timedelta(minutes=5)
    picks = []
    for _ in range(3):
        agent_id = chooser.choose("support")
        picks.append(agent_id)
        if agent_id is not None:
            chooser.offered(agent_id, now)
    assert picks == [2, 1, None]  # the longest idle, then the other with room; agent 3 is full


# ------------------------------------------------------------------ a transfer never comes straight back


def test_the_agent_who_transferred_it_is_never_offered_it_back() -> None:
    chosen = choose_agent([candidate(1, 50), candidate(2, 1)], excluded={1})
    assert chosen is not None
    assert chosen.agent_id == 2


def test_with_only_the_transferrer_ready_it_waits() -> None:
    assert choose_agent([candidate(1, 50)], excluded={1}) is None
    assert choose_agent([candidate(1, 50), candidate(2, 1, load=2)], excluded={1}) is None  # waits for 2


def test_the_batch_chooser_skips_the_transferrer_too() -> None:
    chooser = BatchChooser({"support": [1, 2]}, {1: (T0 - timedelta(hours=1), 2, 0), 2: (T0, 2, 0)})
    assert chooser.choose("support", excluded={1}) == 2
    assert BatchChooser({"support": [1]}, {1: (T0, 2, 0)}).choose("support", excluded={1}) is None


def test_transfer_exclusion_follows_the_queues_transfer_back_setting() -> None:
    strict = QUEUE
    allowing = Queue(id="support", name="Support", number=100, offer_timeout=30, transfer_back=True)
    assert transfer_excluded({1}, strict, {1}) == {1}  # the only member, not allowed: it waits
    assert transfer_excluded({1}, allowing, {1}) == set()  # the only member, allowed: back to them
    assert transfer_excluded({1}, allowing, {1, 2}) == {1}  # others are members: never back
    assert transfer_excluded({1}, strict, {1, 2}) == {1}
