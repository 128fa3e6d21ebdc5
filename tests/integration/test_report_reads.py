"""The two ways reports read the timeline agree: counted by the database (queue and channel reports) and read
row by row (agent reports), on timelines written straight into the tables, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from hub.reports import Bucket, contacts_of, figures_by
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


async def test_the_database_counts_what_the_rows_say(store: Store) -> None:
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
