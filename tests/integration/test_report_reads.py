"""The two ways reports read the timeline agree: counted by the database (queue and channel reports) and read
row by row (agent reports), on timelines written straight into the tables, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from hub.reports import Bucket, SlaTargets, contacts_of, figures_by
from hub.store import Store
from hub.store.reports import report_contacts, report_timelines
from hub.store.tables import agents, conversations, identities, messages, timeline_events

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def _conversation(
    store: Store, n: int, queue: str, events: list[tuple[str, float, int | None, dict[str, Any]]], answers: list[float]
) -> None:
    async with store.write() as connection:
        await connection.execute(
            insert(identities).values(
                id=n, account_id="wa", channel="whatsapp", external_id=f"+4206{n:08d}", created_at=T0
            )
        )
        await connection.execute(
            insert(conversations).values(
                id=n, account_id="wa", channel="whatsapp", identity_id=n, queue_id=queue, state="closed", opened_at=T0
            )
        )
        for kind, seconds, agent, data in events:
            await connection.execute(
                insert(timeline_events).values(
                    conversation_id=n, kind=kind, agent_id=agent, data=data, created_at=at(seconds)
                )
            )
        for k, seconds in enumerate(answers):
            await connection.execute(
                insert(messages).values(
                    conversation_id=n,
                    identity_id=n,
                    account_id="wa",
                    direction="out",
                    author="agent",
                    kind="text",
                    text="hi",
                    provider_message_id=f"p{n}-{k}",
                    created_at=at(seconds),
                    delivery_state="sent",
                )
            )


async def _agents(store: Store) -> None:
    async with store.write() as connection:
        for agent in (7, 9):
            await connection.execute(
                insert(agents).values(
                    id=agent,
                    login=f"a{agent}",
                    display_name=f"A{agent}",
                    password_hash="x",
                    role="agent",
                    capacity=5,
                    presence="offline",
                    presence_since=T0,
                    idle_since=T0,
                    created_at=T0,
                )
            )


async def test_the_database_counts_what_the_rows_say(store: Store) -> None:
    await _agents(store)
    # counted by the database: one period, all of it inside the report
    await _conversation(
        store,
        1,
        "sales",
        [
            ("opened", 100, None, {}),
            ("offered", 110, 9, {}),
            ("rejected", 115, 9, {}),
            ("offered", 120, 7, {}),
            ("accepted", 130, 7, {}),
            ("transferred", 140, None, {"from_queue": "support", "to_queue": "sales"}),
            ("closed", 400, None, {"status": "resolved"}),
        ],
        answers=[150, 160],
    )
    # abandoned: closed without anyone accepting it
    await _conversation(store, 2, "support", [("opened", 200, None, {}), ("closed", 260, None, {"status": "spam"})], [])
    # began before the report (its close inside it is not this report's), reopened inside it
    await _conversation(
        store,
        3,
        "support",
        [
            ("opened", 10, None, {}),
            ("closed", 60, None, {"status": "spam"}),
            ("reopened", 300, None, {}),
            ("taken", 320, 9, {}),
            ("closed", 900, None, {}),
        ],
        answers=[40, 330],
    )
    # opened by an agent to write first: no contact
    await _conversation(store, 4, "support", [("opened", 500, 9, {"outbound": True})], [500])
    start, end = at(50), at(3600)
    counted, timelines = await report_contacts(store, start, end)
    assert sorted(c.conversation_id for c in counted) == [1, 2]
    assert [t.conversation_id for t in timelines] == [3]
    fast = counted + [c for t in timelines for c in contacts_of(t, start, end)]
    slow = [c for t in await report_timelines(store, start, end) for c in contacts_of(t, start, end)]

    def table(contacts: list[Any]) -> dict[Any, Any]:
        figures = figures_by(contacts, lambda c: ((c.queue_id, c.channel),), Bucket.HOUR, lambda q: None, at(3600))
        return {key: f.as_json() for key, f in figures.items()}

    assert table(fast) == table(slow)
    figures = table(fast)
    support = figures[(("support", "whatsapp"), T0)]
    assert (support["received"], support["handled"], support["abandoned"], support["missed_offers"]) == (3, 2, 1, 1)
    assert support["transfers"] == 1
    assert support["by_status"] == {"none": 1, "resolved": 1, "spam": 1}
    assert sorted([support["wait_p50_s"], support["wait_p90_s"]]) == [20, 30]
    assert support["first_response_p50_s"] == 30


async def test_a_queue_report_reads_the_conversations_that_started_in_it(store: Store) -> None:
    # in sales now, transferred out of support inside the report: support's
    await _conversation(
        store,
        1,
        "sales",
        [
            ("opened", 100, None, {}),
            ("transferred", 140, None, {"from_queue": "support", "to_queue": "sales"}),
            ("closed", 400, None, {"status": "resolved"}),
        ],
        answers=[150],
    )
    # in support all along
    await _conversation(store, 2, "support", [("opened", 200, None, {}), ("closed", 260, None, {"status": "spam"})], [])
    # in sales all along: not read for support
    await _conversation(store, 3, "sales", [("opened", 300, None, {}), ("closed", 330, None, {})], [310])
    # support's, reopened inside the report: read row by row
    await _conversation(
        store,
        4,
        "support",
        [("opened", 400, None, {}), ("closed", 450, None, {}), ("reopened", 500, None, {}), ("closed", 600, None, {})],
        answers=[420, 510],
    )
    start, end = at(50), at(3600)
    counted, timelines = await report_contacts(store, start, end, queue="support")
    assert sorted((c.conversation_id, c.queue_id) for c in counted) == [(1, "support"), (2, "support")]
    assert [c.first_response_at for c in counted if c.conversation_id == 1] == [at(150)]
    assert [t.conversation_id for t in timelines] == [4]
    assert [t.first_responses for t in timelines] == [{at(400): at(420), at(500): at(510)}]
    slow = await report_timelines(store, start, end, queue="support")
    assert sorted(t.conversation_id for t in slow) == [1, 2, 4]


BOT = {"bot": "faq"}


def _handoff(reason: str, to_queue: str = "care") -> dict[str, Any]:
    return {"reason": reason, "from_queue": "care", "to_queue": to_queue, "bot": "faq"}


async def test_bot_contacts_count_the_same_on_both_paths(store: Store) -> None:
    """A known timeline in the bot's queue "care" (seconds after 09:00; target: accepted within 60 s):

    1. the bot answers at 0 and closes it at 120: bot-resolved, not abandoned, never judged.
    2. the bot hands it to billing at 400 (bot_asked); offered at 410, accepted at 430, answered at 450,
       closed at 900: counts for care, where it started; first offer 10 s, wait 30 s, first response 50 s.
    3. the customer asks for a person at 260, it goes back to the bot at 300 and is handed off again at 500
       (bot_silent); taken at 560, answered at 570: its wait runs from the first hand-off, 300 s, and the
       first hand-off's reason counts (read row by row: two hand-offs).
    4. the customer asks for a person at 330; nobody takes it, closed as spam at 700: abandoned.
    5. an ordinary contact at 50 (no bot): offered at 55, accepted at 70, answered at 80: wait 20 s.
    6. with the bot since 1000 and still with it: received, not judged.
    """
    await _agents(store)
    await _conversation(
        store, 1, "care", [("opened", 0, None, BOT), ("closed", 120, None, {"status": "resolved", **BOT})], []
    )
    await _conversation(
        store,
        2,
        "billing",
        [
            ("opened", 100, None, BOT),
            ("handed_off", 400, None, _handoff("bot_asked", to_queue="billing")),
            ("offered", 410, 7, {}),
            ("accepted", 430, 7, {}),
            ("closed", 900, 7, {"status": "resolved"}),
        ],
        answers=[450],
    )
    await _conversation(
        store,
        3,
        "care",
        [
            ("opened", 200, None, BOT),
            ("handed_off", 260, None, _handoff("customer_asked")),
            ("bot_took_over", 300, None, BOT),
            ("handed_off", 500, None, _handoff("bot_silent")),
            ("taken", 560, 9, {}),
            ("closed", 1000, 9, {}),
        ],
        answers=[570],
    )
    await _conversation(
        store,
        4,
        "care",
        [
            ("opened", 300, None, BOT),
            ("handed_off", 330, None, _handoff("customer_asked")),
            ("closed", 700, None, {"status": "spam"}),
        ],
        [],
    )
    await _conversation(
        store,
        5,
        "care",
        [
            ("opened", 50, None, {}),
            ("offered", 55, 7, {}),
            ("accepted", 70, 7, {}),
            ("closed", 300, 7, {"status": "resolved"}),
        ],
        answers=[80],
    )
    await _conversation(store, 6, "care", [("opened", 1000, None, BOT)], [])
    async with store.write() as connection:
        await connection.execute(conversations.update().where(conversations.c.id == 6).values(state="bot"))

    start, end, now = at(-10), at(3600), at(3600)
    counted, timelines = await report_contacts(store, start, end)
    assert sorted(c.conversation_id for c in counted) == [1, 2, 4, 5, 6]
    assert [t.conversation_id for t in timelines] == [3]
    fast = counted + [c for t in timelines for c in contacts_of(t, start, end)]
    slow = [c for t in await report_timelines(store, start, end) for c in contacts_of(t, start, end)]
    sla = SlaTargets(accept_seconds=60, accept_share=0.8)

    def table(contacts: list[Any]) -> dict[Any, Any]:
        figures = figures_by(contacts, lambda c: (c.queue_id,), Bucket.HOUR, lambda q: sla, now)
        return {key: f.as_json() for key, f in figures.items()}

    assert table(fast) == table(slow)
    care = table(fast)[("care", T0)]
    assert {k: care[k] for k in ("received", "handled", "abandoned", "bot_resolved", "handed_off")} == {
        "received": 6,
        "handled": 3,
        "abandoned": 1,
        "bot_resolved": 1,
        "handed_off": 3,
    }
    assert care["handed_off_by_reason"] == {"bot_asked": 1, "customer_asked": 2}
    assert (care["first_offer_p50_s"], care["first_offer_p90_s"]) == (5, 10)
    assert (care["wait_p50_s"], care["wait_p90_s"]) == (30, 300)
    assert (care["first_response_p50_s"], care["first_response_p90_s"]) == (50, 310)
    assert care["by_status"] == {"none": 1, "resolved": 3, "spam": 1}
    # judged: 2 (30 s, met), 3 (300 s), 4 (closed unanswered), 5 (20 s, met); 1 and 6 never reached people
    assert care["sla_met_share"] == 0.5
    # a queue's report reads the conversation handed off to billing as care's
    only_care, several = await report_contacts(store, start, end, queue="care")
    assert 2 in {c.conversation_id for c in only_care} | {t.conversation_id for t in several}
