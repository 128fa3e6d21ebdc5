"""Conversation list and history pages at scale, as ratios against a primary-key lookup in the same run.

    python bench/api.py [--conversations 100000] [--messages 1000000] [--samples 300] [--engines sqlite,postgres]

For each engine: bulk-load ``conversations`` conversations over half as many identities (each identity has an
older closed conversation, so history paging crosses into it), ``messages`` messages spread evenly, a few timeline
events per conversation, and 200 agents; then time, page by page, through the store functions the API uses:

* baseline: one conversation fetched by primary key (the cheapest useful query);
* the supervisor's conversation list (everything, newest first), first page and a random deep page (keyset);
* an agent's list (participants' conversations and their queues' waiting list), and ``?state=waiting&queue=``;
* one conversation's history, newest page first, and the page before it ("load older messages").

Loading uses executemany (SQLite) and COPY (PostgreSQL). Target: p99 under 50 ms per page. Figures are
machine-dependent; compare the ratios. A quick run: ``--conversations 10000 --messages 100000``.

Knowledge articles (``--articles 10000``, first): made-up text with a long-tailed word frequency, a third
of the articles for everyone and the rest split between two queues; an agent of one queue searches (one
word, two words, a prefix, a mistyped word) and reads one, against an article fetched by primary key.
Only the articles: ``python bench/api.py --no-conversations``. Target: p99 under 50 ms per search.
Reports (``--reports``, instead of the pages): ``messages`` messages, ten per conversation, over ``--report-days``
days (default a year) in two queues, each conversation with a realistic timeline (opened, offered, some rejected
offers, accepted, closed; some abandoned, some transferred, some reopened); then a month's report for one queue
(``/api/v1/reports/queues?queue=...&bucket=day`` through its use case) against the same baseline.
Target: p99 under 500 ms at 1 M messages.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Table, func, select, text

from hub.model import Agent, ConversationState, Presence, Queue, Role
from hub.store import Store
from hub.store.conversations import list_conversations, load_conversation
from hub.store.history import history_page
from hub.store.tables import agent_queues, agents, conversations, identities, messages, participants, timeline_events

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 20_000
AGENTS = 200
QUEUES = ("support", "sales")


# ------------------------------------------------------------------ databases


@asynccontextmanager
async def database(engine: str, keep: str | None = None) -> AsyncIterator[Store]:
    if engine == "sqlite" and keep:
        store = Store(f"sqlite:///{keep}")
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()
        return
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{folder}/bench.db")
            await store.migrate()
            try:
                yield store
            finally:
                await store.close()
        return
    import asyncpg

    name = f"bench_api_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_ADMIN.rpartition("/")
    store = Store(f"{base}/{name}")
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# ---------------------------------------------------------------------- data


def _state(n: int) -> str:
    """The newer conversation of each identity: mostly closed, some active, some waiting."""
    roll = n % 20
    if roll == 0:
        return ConversationState.WAITING.value
    if roll in (1, 2):
        return ConversationState.ACTIVE.value
    return ConversationState.CLOSED.value


def rows_agents(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": a,
            "login": f"agent{a}",
            "display_name": f"Agent {a}",
            "password_hash": "x",
            "role": "agent",
            "capacity": 5,
            "presence": "offline",
            "presence_since": now,
            "idle_since": now,
            "active": True,
            "created_at": now,
        }
        for a in range(1, AGENTS + 1)
    ]


def rows_identities(count: int) -> Iterator[dict[str, Any]]:
    for i in range(1, count + 1):
        yield {
            "id": i,
            "account_id": "wa",
            "channel": "whatsapp",
            "external_id": f"+4206{i:08d}",
            "display_name": f"Customer {i}",
            "phone": f"+4206{i:08d}",
            "first_inbound_at": T0,
            "last_inbound_at": T0,
            "welcome_sent": False,
            "created_at": T0,
        }


def plan_conversations(count: int) -> list[dict[str, Any]]:
    """Conversation n belongs to identity (n+1)//2; odd n is the older (closed) one."""
    found = []
    for n in range(1, count + 1):
        identity = (n + 1) // 2
        older = n % 2 == 1
        state = ConversationState.CLOSED.value if older else _state(n)
        opened = T0 + timedelta(seconds=n * 10)
        owner = (n % AGENTS) + 1 if state != ConversationState.WAITING.value else None
        found.append(
            {
                "id": n,
                "account_id": "wa",
                "channel": "whatsapp",
                "identity_id": identity,
                "queue_id": QUEUES[n % 2 if not older else 0],
                "state": state,
                "owner_agent_id": owner,
                "waiting_since": opened if state == ConversationState.WAITING.value else None,
                "opened_at": opened,
                "closed_at": opened + timedelta(minutes=5) if state == ConversationState.CLOSED.value else None,
                "last_message_at": opened,
                "important": False,
                "status_id": "resolved" if state == ConversationState.CLOSED.value else None,
                "version": 0,
            }
        )
    return found


def rows_messages(plan: list[dict[str, Any]], total: int) -> Iterator[dict[str, Any]]:
    per, extra = divmod(total, len(plan))
    message_id = 0
    for index, conversation in enumerate(plan):
        count = per + (1 if index < extra else 0)
        for k in range(count):
            message_id += 1
            text = f"message {k} of conversation {conversation['id']}"
            yield message_row(conversation, message_id, k, text, conversation["opened_at"] + timedelta(seconds=k))


def message_row(conversation: dict[str, Any], message_id: int, k: int, text: str, at: datetime) -> dict[str, Any]:
    """The ``k``-th message of ``conversation``: the customer's when ``k`` is even, the owner's answer otherwise."""
    inbound = k % 2 == 0
    return {
        "id": message_id,
        "conversation_id": conversation["id"],
        "identity_id": conversation["identity_id"],
        "account_id": "wa",
        "direction": "in" if inbound else "out",
        "author": "customer" if inbound else "agent",
        "agent_id": None if inbound else conversation["owner_agent_id"],
        "kind": "text",
        "text": text,
        "provider_message_id": f"wamid.{message_id}",
        "sent_at": at,
        "created_at": at,
        "delivery_state": "received" if inbound else "delivered",
    }


def rows_events(plan: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    event_id = 0
    for conversation in plan:
        kinds = ["opened"]
        if conversation["owner_agent_id"] is not None:
            kinds += ["offered", "accepted"]
        if conversation["state"] == ConversationState.CLOSED.value:
            kinds.append("closed")
        for k, kind in enumerate(kinds):
            event_id += 1
            yield {
                "id": event_id,
                "conversation_id": conversation["id"],
                "kind": kind,
                "agent_id": conversation["owner_agent_id"],
                "data": {},
                "created_at": conversation["opened_at"] + timedelta(milliseconds=k),
            }


def rows_participants(plan: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for conversation in plan:
        if conversation["owner_agent_id"] is None:
            continue
        closed = conversation["state"] == ConversationState.CLOSED.value
        yield {
            "conversation_id": conversation["id"],
            "agent_id": conversation["owner_agent_id"],
            "role": "owner",
            "joined_at": conversation["opened_at"],
            "left_at": conversation["closed_at"] if closed else None,
        }


def batches(rows: Iterator[dict[str, Any]] | list[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _copy(store: Store, table: Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY (binary) through asyncpg; SQLite: one executemany per batch."""
    if store.dialect != "postgresql":
        async with store.write() as connection:
            await connection.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    records = [tuple(_pg_value(row[c]) for c in columns) for row in rows]
    async with store.write() as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(table.name, records=records, columns=columns)  # type: ignore[union-attr]


def _pg_value(value: Any) -> Any:
    if isinstance(value, dict):
        import json

        return json.dumps(value)
    return value


async def load(store: Store, conversation_count: int, message_count: int) -> dict[str, float]:
    started = time.perf_counter()
    now = T0 + timedelta(days=30)
    await _copy(store, agents, rows_agents(now))
    membership = [{"agent_id": a, "queue_id": QUEUES[a % 2]} for a in range(1, AGENTS + 1)]
    await _copy(store, agent_queues, membership)
    for batch in batches(rows_identities((conversation_count + 1) // 2)):
        await _copy(store, identities, batch)
    plan = plan_conversations(conversation_count)
    for batch in batches(plan):
        await _copy(store, conversations, batch)
    for batch in batches(rows_participants(plan)):
        await _copy(store, participants, batch)
    for batch in batches(rows_events(plan)):
        await _copy(store, timeline_events, batch)
    loaded_messages = 0
    for batch in batches(rows_messages(plan, message_count)):
        await _copy(store, messages, batch)
        loaded_messages += len(batch)
    if store.dialect == "postgresql":
        async with store.write() as connection:
            for table in (agents, identities, conversations, timeline_events, messages):
                # COPY with explicit ids leaves the sequences behind; later inserts must not collide
                highest = (await connection.execute(select(func.max(table.c.id)))).scalar_one()
                await connection.execute(select(func.setval(func.pg_get_serial_sequence(table.name, "id"), highest)))
            await connection.execute(text("ANALYZE"))
    else:
        async with store.write() as connection:
            await connection.execute(text("ANALYZE"))
    return {"seconds": time.perf_counter() - started, "messages": loaded_messages}


# ------------------------------------------------------------------- timing


async def timed(samples: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    durations = []
    for i in range(samples):
        started = time.perf_counter()
        await call(i)
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(store: Store, conversation_count: int, samples: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    ids = [rng.randint(1, conversation_count) for _ in range(samples)]
    supervisor = Agent(
        id=AGENTS + 1, login="boss", display_name="Boss", role=Role.SUPERVISOR, capacity=5, presence=Presence.READY
    )

    async def pk(i: int) -> None:
        async with store.read() as connection:
            await load_conversation(connection, ids[i])

    async def list_first(i: int) -> None:
        await list_conversations(store, viewer=supervisor, everything=True, limit=50)

    async def list_deep(i: int) -> None:
        await list_conversations(store, viewer=supervisor, everything=True, before_id=ids[i], limit=50)

    async def list_agent(i: int) -> None:
        agent_id = ids[i] % AGENTS + 1
        viewer = Agent(
            id=agent_id,
            login=f"agent{agent_id}",
            display_name="A",
            role=Role.AGENT,
            capacity=5,
            presence=Presence.READY,
            queues=(QUEUES[agent_id % 2],),
        )
        await list_conversations(store, viewer=viewer, everything=False, limit=50)

    async def list_waiting(i: int) -> None:
        await list_conversations(
            store, viewer=supervisor, everything=True, state=ConversationState.WAITING, queue=QUEUES[i % 2], limit=50
        )

    # the newer conversation of an identity, so paging can cross into the older one
    newer = [i + (i % 2) if i + (i % 2) <= conversation_count else i for i in ids]
    loaded: dict[int, Any] = {}
    async with store.read() as connection:
        for conversation_id in set(newer):
            loaded[conversation_id] = await load_conversation(connection, conversation_id)

    async def history_first(i: int) -> None:
        await history_page(store, loaded[newer[i]], limit=50)

    cursors: dict[int, Any] = {}
    for i in range(samples):
        _, cursor = await history_page(store, loaded[newer[i]], limit=5)
        cursors[i] = cursor

    async def history_older(i: int) -> None:
        await history_page(store, loaded[newer[i]], before=cursors[i], limit=50)

    results: dict[str, list[float]] = {}
    for name, call in [
        ("baseline: conversation by primary key", pk),
        ("list, supervisor, first page", list_first),
        ("list, supervisor, deep page (keyset)", list_deep),
        ("list, agent (own + queue waiting)", list_agent),
        ("list, ?state=waiting&queue=", list_waiting),
        ("history, newest page", history_first),
        ("history, older page (crosses conversations)", history_older),
    ]:
        await call(0)  # warm the plan cache
        results[name] = await timed(samples, call)
    return results


# ----------------------------------------------------------------- articles

ARTICLE_TAGS = [f"topic{t}" for t in range(50)]


def article_vocabulary(seed: int) -> list[str]:
    """Made-up words (2,000), so that word frequencies follow a long tail as in real text."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < 2000:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 10))))
    return sorted(words)


def article_drafts(count: int, vocabulary: list[str], seed: int) -> Iterator[Any]:
    """Titles of 4-8 words, bodies of 120-300 words in a few paragraphs; a third for everyone, the rest per queue."""
    from hub.articles import ArticleDraft

    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf-like: a few words are everywhere
    for n in range(count):
        title = " ".join(rng.choices(vocabulary, weights, k=rng.randint(4, 8))).capitalize()
        words = rng.choices(vocabulary, weights, k=rng.randint(120, 300))
        paragraphs = [" ".join(words[i : i + 60]) for i in range(0, len(words), 60)]
        body = "\n\n".join(f"**{p.split()[0]}** {p}" for p in paragraphs)
        queues = () if n % 3 == 0 else (QUEUES[n % 2],)
        yield ArticleDraft(title=title, body=body, tags=tuple(rng.sample(ARTICLE_TAGS, 2)), queues=queues)


async def load_articles(store: Store, count: int, seed: int) -> tuple[float, list[str]]:
    from hub.articles import render_markdown
    from hub.store.articles import import_articles

    started = time.perf_counter()
    vocabulary = article_vocabulary(seed)
    batch: list[Any] = []
    for draft in article_drafts(count, vocabulary, seed):
        batch.append((draft, render_markdown(draft.body)))
        if len(batch) == 1000:
            await import_articles(store, batch, now=T0)
            batch = []
    if batch:
        await import_articles(store, batch, now=T0)
    async with store.write() as connection:
        await connection.execute(text("ANALYZE"))
    return time.perf_counter() - started, vocabulary


async def measure_articles(
    store: Store, count: int, vocabulary: list[str], samples: int, seed: int
) -> dict[str, list[float]]:
    """What an agent's article widget asks: a search of one or two words, a prefix, a typo; and one article."""
    from hub.store.articles import get_article, list_articles

    rng = random.Random(seed)
    mine = ("support",)
    visible = [i for i in range(1, count + 1) if (i - 1) % 3 == 0 or (i - 1) % 2 == 0]  # see article_drafts
    ids = [rng.choice(visible) for _ in range(samples)]
    # words across the frequency range (the vocabulary is sorted, the weights go by that order)
    singles = [rng.choice(vocabulary[:400]) for _ in range(samples)]
    pairs = [f"{rng.choice(vocabulary[:100])} {rng.choice(vocabulary[:400])}" for _ in range(samples)]
    prefixes = [rng.choice(vocabulary)[:4] for _ in range(samples)]

    def typo(word: str) -> str:
        at = rng.randint(1, len(word) - 2)
        return word[:at] + word[at + 1 :]  # one letter dropped

    typos = [typo(rng.choice([w for w in vocabulary[:400] if len(w) >= 6])) for _ in range(samples)]

    async def by_id(i: int) -> None:
        await get_article(store, ids[i], mine)

    def search(queries: list[str]) -> Callable[[int], Awaitable[Any]]:
        async def call(i: int) -> None:
            await list_articles(store, q=queries[i], reader_queues=mine, limit=10)

        return call

    async def newest(i: int) -> None:
        await list_articles(store, reader_queues=mine, limit=10)

    results: dict[str, list[float]] = {}
    for name, call in [
        ("baseline: article by primary key", by_id),
        ("articles, newest first (no q)", newest),
        ("search, one word", search(singles)),
        ("search, two words", search(pairs)),
        ("search, a prefix of four letters", search(prefixes)),
        ("search, a mistyped word (corrected)", search(typos)),
    ]:
        await call(0)
        results[name] = await timed(samples, call)
    return results


def print_table(results: dict[str, list[float]], samples: int) -> None:
    base = next(iter(results.values()))
    base50, base99 = pct(base, 0.5), pct(base, 0.99)
    print(f"\n| query ({samples} samples) | p50 ms | p99 ms | p50 / base | p99 / base | p99 < 50 ms |")
    print("|---|---|---|---|---|---|")
    for name, durations in results.items():
        p50, p99 = pct(durations, 0.5), pct(durations, 0.99)
        print(
            f"| {name} | {p50:.2f} | {p99:.2f} | {p50 / base50:.1f}x | {p99 / base99:.1f}x | "
            f"{'yes' if p99 < 50 else 'NO'} |"
        )


async def run_articles(args: argparse.Namespace) -> None:
    for engine in args.engines.split(","):
        async with database(engine) as store:
            seconds, vocabulary = await load_articles(store, args.articles, args.seed)
            print(f"\n## {engine}: {args.articles:,} knowledge articles (loaded in {seconds:.0f} s)")
            print_table(await measure_articles(store, args.articles, vocabulary, args.samples, args.seed), args.samples)


async def run(args: argparse.Namespace) -> None:
    if args.articles:
        await run_articles(args)
    if args.no_conversations:
        return
    for engine in args.engines.split(","):
        keep = args.keep_sqlite if engine == "sqlite" else None
        reuse = bool(keep) and args.reuse
        async with database(engine, keep) as store:
            if reuse:
                loaded = {"seconds": 0.0, "messages": float(args.messages)}  # loaded by an earlier run
            else:
                loaded = await load(store, args.conversations, args.messages)
            print(
                f"\n## {engine}: {args.conversations:,} conversations, {int(loaded['messages']):,} messages "
                f"(loaded in {loaded['seconds']:.0f} s)"
            )
            results = await measure(store, args.conversations, args.samples, args.seed)
            base = results["baseline: conversation by primary key"]
            base50, base99 = pct(base, 0.5), pct(base, 0.99)
            print(f"\n| query ({args.samples} samples) | p50 ms | p99 ms | p50 / base | p99 / base | p99 < 50 ms |")
            print("|---|---|---|---|---|---|")
            for name, durations in results.items():
                p50, p99 = pct(durations, 0.5), pct(durations, 0.99)
                print(
                    f"| {name} | {p50:.2f} | {p99:.2f} | {p50 / base50:.1f}x | {p99 / base99:.1f}x | "
                    f"{'yes' if p99 < 50 else 'NO'} |"
                )
            pages = [d for name, values in results.items() if not name.startswith("baseline") for d in values]
            print(f"\nmean of all list/history pages: {statistics.mean(pages):.2f} ms")


# -------------------------------------------------------------------- reports


def plan_report(conversation_count: int, days: int) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Conversations spread evenly over ``days``, each with its timeline; every 7th abandoned, every 11th
    transferred to the other queue, every 13th reopened, every 5th with a rejected offer first."""
    step = days * 86400 / conversation_count
    for n in range(1, conversation_count + 1):
        opened = T0 + timedelta(seconds=n * step)
        queue = QUEUES[n % 2]
        agent = (n % AGENTS) + 1
        events: list[tuple[str, float, int | None, dict[str, Any]]] = [("opened", 0, None, {})]
        abandoned = n % 7 == 0
        if abandoned:
            events.append(("closed", 300 + n % 120, agent, {"status": "spam"}))
        else:
            offer = 2 + n % 20
            if n % 5 == 0:
                events += [("offered", offer, agent % AGENTS + 1, {}), ("rejected", offer + 5, agent % AGENTS + 1, {})]
                offer += 5
            events += [("offered", offer, agent, {}), ("accepted", offer + 3 + n % 40, agent, {})]
            if n % 11 == 0:
                other = QUEUES[(n + 1) % 2]
                events.append(("transferred", 200, agent, {"from_queue": queue, "to_queue": other}))
                queue = other
            events.append(("closed", 600 + n % 900, agent, {"status": "resolved"}))
            if n % 13 == 0:
                events += [("reopened", 2000, None, {}), ("taken", 2030, agent, {}), ("closed", 2400, agent, {})]
        state = ConversationState.CLOSED.value
        conversation = {
            "id": n,
            "account_id": "wa",
            "channel": "whatsapp",
            "identity_id": n,
            "queue_id": queue,
            "state": state,
            "owner_agent_id": None if abandoned else agent,
            "opened_at": opened,
            "closed_at": opened + timedelta(seconds=events[-1][1]),
            "last_message_at": opened,
            "important": False,
            "status_id": events[-1][3].get("status"),
            "version": 0,
        }
        timeline = [
            {
                "conversation_id": n,
                "kind": kind,
                "agent_id": who,
                "data": data,
                "created_at": opened + timedelta(seconds=at),
            }
            for kind, at, who, data in events
        ]
        yield conversation, timeline


def rows_report_messages(conversation: dict[str, Any], first_id: int, per: int) -> list[dict[str, Any]]:
    """``per`` messages, alternating customer and agent, the first answer 30-90 s after opening."""
    rows = []
    for k in range(per):
        at = conversation["opened_at"] + timedelta(seconds=0 if k == 0 else 30 + conversation["id"] % 60 + k * 20)
        rows.append(message_row(conversation, first_id + k, k, f"message {k}", at))
    return rows


async def load_report(store: Store, message_count: int, days: int) -> dict[str, float]:
    started = time.perf_counter()
    per = 10
    count = max(1, message_count // per)
    now = T0 + timedelta(days=days)
    await _copy(store, agents, rows_agents(now))
    for batch in batches(rows_identities(count)):
        await _copy(store, identities, batch)
    pending: dict[str, list[dict[str, Any]]] = {"conversations": [], "events": [], "messages": []}
    event_id = 0
    tables = {"conversations": conversations, "events": timeline_events, "messages": messages}

    async def flush(force: bool = False) -> None:
        for name in ("conversations", "events", "messages"):  # parents first
            if pending[name] and (force or len(pending["messages"]) >= BATCH):
                await _copy(store, tables[name], pending[name])
                pending[name] = []

    for conversation, timeline in plan_report(count, days):
        pending["conversations"].append(conversation)
        for event in timeline:
            event_id += 1
            pending["events"].append({"id": event_id, **event})
        pending["messages"] += rows_report_messages(conversation, (conversation["id"] - 1) * per + 1, per)
        if len(pending["messages"]) >= BATCH:
            await flush(force=True)
    await flush(force=True)
    if store.dialect == "postgresql":
        async with store.write() as connection:
            for table in (agents, identities, conversations, timeline_events, messages):
                highest = (await connection.execute(select(func.max(table.c.id)))).scalar_one()
                await connection.execute(select(func.setval(func.pg_get_serial_sequence(table.name, "id"), highest)))
            await connection.execute(text("ANALYZE"))
    else:
        async with store.write() as connection:
            await connection.execute(text("ANALYZE"))
    return {"seconds": time.perf_counter() - started, "messages": count * per, "conversations": count}


async def measure_report(store: Store, days: int, samples: int, seed: int) -> dict[str, Any]:
    from hub.bus import EventBus
    from hub.reports import Bucket
    from hub.settings import Settings
    from hub.usecases import reports as report_usecases
    from hub.usecases._parts import Parts
    from hub.usecases.principal import ActorKind, Principal

    rng = random.Random(seed)
    months = max(1, days // 30)
    targets = {"sla_accept_seconds": 60, "sla_accept_share": 0.8, "sla_first_response_seconds": 300}
    queues = tuple(Queue(id=q, name=q, number=i, offer_timeout=30, **targets) for i, q in enumerate(QUEUES))
    settings = Settings(database_url="sqlite://", queues=queues)
    parts = Parts(settings=settings, store=store, bus=EventBus(), clock=lambda: T0 + timedelta(days=days))
    boss = Principal(id=AGENTS + 1, kind=ActorKind.AGENT, role=Role.SUPERVISOR)
    starts = [T0 + timedelta(days=30 * rng.randrange(months)) for _ in range(samples)]
    sizes: list[int] = []

    async def pk(i: int) -> None:
        async with store.read() as connection:
            await load_conversation(connection, rng.randint(1, 1000))

    async def month(i: int) -> None:
        query = report_usecases.ReportQuery(
            kind=report_usecases.ReportKind.QUEUES,
            start=starts[i],
            end=starts[i] + timedelta(days=30),
            bucket=Bucket.DAY,
            queue=QUEUES[i % 2],
        )
        items = await report_usecases.report(parts, boss, query)
        sizes.append(sum(item["received"] for item in items))

    results: dict[str, Any] = {}
    for name, call in [("baseline: conversation by primary key", pk), ("a month's report for a queue, by day", month)]:
        await call(0)
        results[name] = await timed(samples, call)
    results["contacts per report"] = statistics.mean(sizes) if sizes else 0
    return results


async def run_reports(args: argparse.Namespace) -> None:
    for engine in args.engines.split(","):
        async with database(engine) as store:
            loaded = await load_report(store, args.messages, args.report_days)
            print(
                f"\n## {engine}: reports over {int(loaded['conversations']):,} conversations, "
                f"{int(loaded['messages']):,} messages in {args.report_days} days (loaded in {loaded['seconds']:.0f} s)"
            )
            results = await measure_report(store, args.report_days, args.samples, args.seed)
            contacts = results.pop("contacts per report")
            base = results["baseline: conversation by primary key"]
            print(f"\n| query ({args.samples} samples) | p50 ms | p99 ms | p50 / base | p99 < 500 ms |")
            print("|---|---|---|---|---|")
            for name, durations in results.items():
                p50, p99 = pct(durations, 0.5), pct(durations, 0.99)
                print(
                    f"| {name} | {p50:.2f} | {p99:.2f} | {p50 / pct(base, 0.5):.0f}x | {'yes' if p99 < 500 else 'NO'} |"
                )
            print(f"\ncontacts per report (mean): {contacts:,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reports", action="store_true", help="measure the reports instead of the pages")
    parser.add_argument("--report-days", type=int, default=365, help="days the reports' data is spread over")
    parser.add_argument(
        "--keep-sqlite", metavar="FILE", help="load into FILE and keep it; a later run with the same FILE only measures"
    )
    parser.add_argument("--articles", type=int, default=10_000, help="knowledge articles to search (0: none)")
    parser.add_argument("--no-conversations", action="store_true", help="only the article search")
    args = parser.parse_args()
    args.reuse = bool(args.keep_sqlite) and Path(args.keep_sqlite).exists()
    if args.reports:
        asyncio.run(run_reports(args))
        return
    if args.conversations < 2 or args.messages < args.conversations:
        parser.error("need at least 2 conversations and one message per conversation")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
