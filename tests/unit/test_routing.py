"""The pure routing decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.model import Queue
from hub.routing import Candidate, choose_agent, close_refusal, offer_deadline, open_url

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
