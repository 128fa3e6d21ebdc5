"""Every route x role x ownership -> expected status, generated from one table.

Roles: agent, supervisor, admin, and an unauthenticated caller. Ownership
(routes on one conversation): the caller's own conversation, someone else's,
one waiting in a queue the caller belongs to, one waiting in another queue,
and one offered to the caller. Expectations:

* ``401`` for the unauthenticated caller (except public routes);
* ``403`` outside one's rights, and then the database is exactly as before;
* ``ALLOWED``: authorisation passed; the answer is whatever the route's own
  rules say (2xx, or 400/404/409/422 for a state or input it refuses), never
  401, 403 or 5xx.

Each cell gets fresh targets (a new conversation, contact, queue, ...), so an
allowed change in one cell cannot decide another. A test also checks that the
table covers every route under /api/v1, so a new route must be added here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update

from hub.api.openapi import routes_under_api
from hub.articles import ArticleDraft, render_markdown
from hub.model import Queue, Role, Status
from hub.store._db import Store
from hub.store.admin import create_queue, create_status
from hub.store.agents import create_agent
from hub.store.articles import create_article
from hub.store.calendar import create_event
from hub.store.contacts import create_contact
from hub.store.tables import attachments, conversations, messages, metadata, participants
from hub.store.tickets import create_ticket
from hub.store.webhooks_out import create_subscription, list_deliveries
from hub.webhooks_out_config import WebhookOut
from tests.api.conftest import AgentHandle, Api

ALLOWED = "allowed"
ROLES = ("agent", "supervisor", "admin", "anonymous")
OWNERSHIPS = ("own", "others", "waiting_mine", "waiting_other", "offered_me")
PASSWORD = "correct horse battery"
_SECRET = "whsec_" + "a" * 44

Expected = int | str
Rule = Callable[[str, str], Expected]


# ------------------------------------------------------------------- rules


def public(role: str, ownership: str) -> Expected:
    return ALLOWED


def anyone(role: str, ownership: str) -> Expected:
    return 401 if role == "anonymous" else ALLOWED


def supervision(role: str, ownership: str) -> Expected:
    if role == "anonymous":
        return 401
    return 403 if role == "agent" else ALLOWED


def admin_only(role: str, ownership: str) -> Expected:
    if role == "anonymous":
        return 401
    return ALLOWED if role == "admin" else 403


def sees(role: str, ownership: str) -> Expected:
    """Offered to, owned by or shared with me, or waiting in my queue (supervisors: everything)."""
    if role == "anonymous":
        return 401
    if role != "agent":
        return ALLOWED
    return ALLOWED if ownership in ("own", "waiting_mine", "offered_me") else 403


def takes(role: str, ownership: str) -> Expected:
    """Members of the conversation's queue may try, whatever its state: the write answers 409 if it is taken."""
    if role == "anonymous":
        return 401
    if role != "agent":
        return ALLOWED
    return 403 if ownership == "waiting_other" else ALLOWED


def acts(role: str, ownership: str) -> Expected:
    """Only a participant acts on a conversation (supervisors: everything)."""
    if role == "anonymous":
        return 401
    if role != "agent":
        return ALLOWED
    return ALLOWED if ownership == "own" else 403


# ------------------------------------------------------------------- table


@dataclass(frozen=True)
class Route:
    method: str
    # placeholders: {conv} {contact} {identity} {ticket} {queue} {status} {agent} {template} {event} {article}
    #   {webhook} {delivery}
    path: str
    rule: Rule
    body: Callable[[World], Any] | dict[str, Any] | None = None
    area: str = ""
    fresh_session: bool = False  # the request ends the caller's session (logout)
    uses: tuple[str, ...] = ()  # targets the body names besides the path's
    websocket: bool = False  # answered by a WebSocket handshake (101) instead of a plain response
    ok: int | None = None  # the exact answer when allowed, where it does not depend on the state

    @property
    def per_conversation(self) -> bool:
        return "{conv}" in self.path


def _unique(world: World, prefix: str) -> str:
    return f"{prefix}{next(world.counter)}"


TABLE: list[Route] = [
    # meta and auth
    Route("GET", "/api/v1/openapi.json", public, area="auth", ok=200),
    Route("POST", "/api/v1/auth/login", public, {"login": "me", "password": PASSWORD}, area="auth", ok=200),
    Route("POST", "/api/v1/auth/logout", anyone, area="auth", fresh_session=True, ok=204),
    Route("GET", "/api/v1/me", anyone, area="auth", ok=200),
    Route("PUT", "/api/v1/me/presence", anyone, {"state": "offline"}, area="auth", ok=200),
    Route("GET", "/api/v1/me/layout", anyone, area="auth", ok=200),
    Route("PUT", "/api/v1/me/layout", anyone, {"widgets": ["contact"]}, area="auth", ok=200),
    Route("GET", "/api/v1/ws", anyone, area="auth", websocket=True, ok=101),
    # conversations
    Route("GET", "/api/v1/conversations", anyone, area="conversations", ok=200),
    Route("GET", "/api/v1/conversations/{conv}", sees, area="conversations", ok=200),
    Route("GET", "/api/v1/conversations/{conv}/messages", sees, area="conversations", ok=200),
    Route("POST", "/api/v1/conversations/{conv}/accept", sees, area="conversations"),
    Route("POST", "/api/v1/conversations/{conv}/reject", sees, area="conversations"),
    Route("POST", "/api/v1/conversations/{conv}/take", takes, area="conversations"),
    Route("POST", "/api/v1/conversations/{conv}/leave", acts, area="conversations"),
    Route("POST", "/api/v1/conversations/{conv}/important", acts, {"important": True}, area="conversations"),
    Route("POST", "/api/v1/conversations/{conv}/transfer", acts, {"queue": "sales"}, area="conversations"),
    Route("POST", "/api/v1/conversations/{conv}/invite", acts, lambda w: {"agent": w.other.id}, area="conversations"),
    Route("POST", "/api/v1/conversations/{conv}/close", acts, {"status": "resolved"}, area="conversations"),
    Route(
        "POST",
        "/api/v1/conversations/{conv}/ticket",
        acts,
        lambda w: {"ticket": w.ids["ticket"]},
        area="tickets",
        uses=("ticket",),
        ok=200,
    ),
    Route("GET", "/api/v1/conversations/{conv}/iframe", sees, area="conversations"),
    Route("GET", "/api/v1/iframe/queues", anyone, area="conversations", ok=200),
    Route("POST", "/api/v1/conversations/{conv}/messages", acts, {"text": "hello"}, area="outbound"),
    # bots (an agent never hands off for a bot; a bot's own token is tested in tests/api/test_bots.py)
    Route("POST", "/api/v1/conversations/{conv}/handoff", supervision, {"reason": "bot_asked"}, area="bots"),
    Route("POST", "/api/v1/conversations/{conv}/bot", acts, {"bot": "faq"}, area="bots"),
    Route("POST", "/api/v1/conversations/{conv}/templates/{template}/render", acts, {}, area="templates"),
    # contacts and identities
    Route("GET", "/api/v1/contacts", anyone, area="contacts", ok=200),
    Route("POST", "/api/v1/contacts", anyone, {"name": "New Person"}, area="contacts", ok=201),
    Route("GET", "/api/v1/contacts/{contact}", anyone, area="contacts", ok=200),
    Route("PUT", "/api/v1/contacts/{contact}", anyone, {"company": "Initech"}, area="contacts", ok=200),
    Route("DELETE", "/api/v1/contacts/{contact}", supervision, area="contacts", ok=204),
    Route("GET", "/api/v1/contacts/{contact}/conversations", anyone, area="contacts", ok=200),
    Route("GET", "/api/v1/identities", anyone, area="contacts", ok=200),
    Route("GET", "/api/v1/identities/{identity}", anyone, area="contacts", ok=200),
    Route(
        "PUT",
        "/api/v1/identities/{identity}/contact",
        anyone,
        lambda w: {"contact": w.ids["contact"]},
        area="contacts",
        uses=("contact",),
        ok=200,
    ),
    Route("POST", "/api/v1/identities/{identity}/contact", anyone, {"name": "Paired Person"}, area="contacts", ok=201),
    Route("DELETE", "/api/v1/identities/{identity}/contact", anyone, area="contacts", ok=200),
    Route("GET", "/api/v1/identities/{identity}/eligibility", anyone, area="outbound", ok=200),
    # tickets
    Route("GET", "/api/v1/tickets", anyone, area="tickets", ok=200),
    Route("POST", "/api/v1/tickets", anyone, {"title": "New ticket"}, area="tickets", ok=201),
    Route("GET", "/api/v1/tickets/{ticket}", anyone, area="tickets", ok=200),
    Route("PUT", "/api/v1/tickets/{ticket}", anyone, {"state": "closed"}, area="tickets", ok=200),
    Route("GET", "/api/v1/tickets/{ticket}/conversations", anyone, area="tickets", ok=200),
    Route("PUT", "/api/v1/tickets/{ticket}/favourite", anyone, area="tickets", ok=200),
    Route("DELETE", "/api/v1/tickets/{ticket}/favourite", anyone, area="tickets", ok=200),
    # admin
    Route("GET", "/api/v1/queues", anyone, area="admin", ok=200),
    Route(
        "POST",
        "/api/v1/queues",
        admin_only,
        lambda w: {"id": _unique(w, "q"), "name": "Q", "number": 900},
        area="admin",
        ok=201,
    ),
    Route("GET", "/api/v1/queues/{queue}", anyone, area="admin", ok=200),
    Route("PUT", "/api/v1/queues/{queue}", admin_only, {"name": "Renamed"}, area="admin", ok=200),
    Route("DELETE", "/api/v1/queues/{queue}", admin_only, area="admin", ok=204),
    Route(
        "PUT", "/api/v1/queues/{queue}/members", supervision, lambda w: {"agents": [w.other.id]}, area="admin", ok=200
    ),
    Route("GET", "/api/v1/statuses", anyone, area="admin", ok=200),
    Route("POST", "/api/v1/statuses", admin_only, lambda w: {"id": _unique(w, "s"), "name": "S"}, area="admin", ok=201),
    Route("PUT", "/api/v1/statuses/{status}", admin_only, {"name": "Renamed"}, area="admin", ok=200),
    Route("DELETE", "/api/v1/statuses/{status}", admin_only, area="admin", ok=204),
    Route("GET", "/api/v1/agents", supervision, area="admin", ok=200),
    Route("GET", "/api/v1/agents/{agent}", supervision, area="admin", ok=200),
    Route(
        "POST",
        "/api/v1/agents",
        admin_only,
        lambda w: {"login": _unique(w, "new"), "password": "long-enough-1"},
        area="admin",
        ok=201,
    ),
    Route(
        "PUT",
        "/api/v1/agents/{agent}",
        admin_only,
        {"display_name": "Renamed", "role": "supervisor"},
        area="admin",
        ok=200,
    ),
    Route("DELETE", "/api/v1/agents/{agent}", admin_only, area="admin", ok=204),
    Route("GET", "/api/v1/accounts", supervision, area="admin", ok=200),
    Route("GET", "/api/v1/webhooks/rejected", admin_only, area="admin", ok=200),
    # the audit log (ADR 0033)
    Route("GET", "/api/v1/audit", admin_only, area="admin", ok=200),
    Route("GET", "/api/v1/audit.csv", admin_only, area="admin", ok=200),
    Route("GET", "/api/v1/audit.jsonl", admin_only, area="admin", ok=200),
    # templates
    Route("GET", "/api/v1/templates", anyone, area="templates", ok=200),
    Route(
        "POST",
        "/api/v1/templates",
        admin_only,
        lambda w: {"name": _unique(w, "t"), "body": "Hello"},
        area="templates",
        ok=201,
    ),
    Route("GET", "/api/v1/templates/{template}", anyone, area="templates", ok=200),
    Route("PUT", "/api/v1/templates/{template}", admin_only, {"body": "Hello again"}, area="templates", ok=200),
    Route("POST", "/api/v1/templates/{template}/preview", admin_only, {}, area="templates", ok=200),
    Route("GET", "/api/v1/templates/{template}/diff", admin_only, area="templates"),
    Route("POST", "/api/v1/templates/{template}/restore", admin_only, {"version": 1}, area="templates"),
    Route("DELETE", "/api/v1/templates/{template}", admin_only, area="templates"),
    # knowledge articles (agents read those for everyone and of their queues; admins write)
    Route("GET", "/api/v1/articles", anyone, area="articles", ok=200),
    Route("POST", "/api/v1/articles", admin_only, {"title": "New", "body": "Text"}, area="articles", ok=201),
    Route("POST", "/api/v1/articles/preview", admin_only, {"body": "*Text*"}, area="articles", ok=200),
    Route("GET", "/api/v1/articles/{article}", anyone, area="articles", ok=200),
    Route("PUT", "/api/v1/articles/{article}", admin_only, {"title": "Renamed"}, area="articles", ok=200),
    Route("DELETE", "/api/v1/articles/{article}", admin_only, area="articles", ok=204),
    Route("GET", "/api/v1/articles/{article}/versions", anyone, area="articles", ok=200),
    # outgoing webhooks (integrations)
    Route("GET", "/api/v1/webhooks-out", admin_only, area="webhooks-out", ok=200),
    Route(
        "POST",
        "/api/v1/webhooks-out",
        admin_only,
        lambda w: {"id": _unique(w, "hook"), "url": "http://127.0.0.1:9/hook", "events": ["message.created"]},
        area="webhooks-out",
        ok=201,
    ),
    Route("GET", "/api/v1/webhooks-out/{webhook}", admin_only, area="webhooks-out", ok=200),
    Route(
        "PUT",
        "/api/v1/webhooks-out/{webhook}",
        admin_only,
        {"events": ["message.created", "conversation.closed"]},
        area="webhooks-out",
        ok=200,
    ),
    Route("DELETE", "/api/v1/webhooks-out/{webhook}", admin_only, area="webhooks-out", ok=204),
    Route("POST", "/api/v1/webhooks-out/{webhook}/resume", admin_only, {}, area="webhooks-out", ok=200),
    Route("GET", "/api/v1/webhooks-out/{webhook}/deliveries", admin_only, area="webhooks-out", ok=200),
    Route(
        "POST",
        "/api/v1/webhooks-out/{webhook}/deliveries/{delivery}/replay",
        admin_only,
        {},
        area="webhooks-out",
        ok=202,
    ),
    # outbound
    Route(
        "POST",
        "/api/v1/outbound",
        anyone,
        lambda w: {"identity": w.ids["identity"], "text": "hi"},
        area="outbound",
        uses=("identity",),
    ),
    # calendar and co-browsing rooms (issue 20): events are their owner's alone ({event} is another agent's: 404)
    Route("GET", "/api/v1/events", anyone, area="calendar", ok=200),
    Route(
        "POST",
        "/api/v1/events",
        anyone,
        {"title": "Call back", "starts_at": "2026-03-03T10:00:00Z"},
        area="calendar",
        ok=201,
    ),
    Route("PUT", "/api/v1/events/{event}", anyone, {"title": "Mine now?"}, area="calendar", ok=404),
    Route("DELETE", "/api/v1/events/{event}", anyone, area="calendar", ok=404),
    Route("GET", "/api/v1/me/calendar-feed", anyone, area="calendar", ok=200),
    Route("POST", "/api/v1/me/calendar-feed/rotate", anyone, area="calendar", ok=200),
    Route("POST", "/api/v1/conversations/{conv}/rooms", acts, area="rooms", ok=201),
    # media: an attachment of someone else's conversation (agents may not see it)
    Route("POST", "/api/v1/uploads", anyone, {"file": "not multipart"}, area="media", ok=415),
    Route("GET", "/api/v1/media/{attachment}", sees, area="media"),
    Route("POST", "/api/v1/media/{attachment}/retry", admin_only, area="media", ok=409),
    Route("DELETE", "/api/v1/contacts/{contact}/data", admin_only, area="media", ok=200),
    # reports
    *(
        Route("GET", f"/api/v1/reports/{key}{suffix}", supervision, area="reports", ok=200)
        for key in ("queues", "agents", "channels")
        for suffix in ("", ".csv")
    ),
    Route("GET", "/api/v1/reports/sla", anyone, area="reports", ok=200),
]

AREAS = sorted({r.area for r in TABLE})
_PLACEHOLDER = re.compile(r"{[^}]+}")


# ------------------------------------------------------------------- world


@dataclass
class World:
    api: Api
    handles: dict[str, AgentHandle]
    other: AgentHandle
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    ids: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.api.store

    async def conversation(self, ownership: str, caller_id: int | None) -> int:
        """A fresh conversation in the given relation to the caller."""
        sender = f"+4207{next(self.counter):08d}"
        conversation_id = await self.api.customer_writes(sender=sender)
        now = self.api.clock()
        owner = caller_id if ownership == "own" else self.other.id
        async with self.store.write() as connection:
            where = conversations.c.id == conversation_id
            if ownership in ("own", "others"):
                await connection.execute(
                    update(conversations).where(where).values(state="active", owner_agent_id=owner, waiting_since=None)
                )
                await connection.execute(
                    participants.insert().values(
                        conversation_id=conversation_id, agent_id=owner, role="owner", joined_at=now
                    )
                )
            elif ownership == "waiting_other":
                await connection.execute(update(conversations).where(where).values(queue_id="sales"))
            elif ownership == "offered_me":
                await connection.execute(
                    update(conversations)
                    .where(where)
                    .values(
                        state="offered",
                        offered_agent_id=caller_id,
                        offered_at=now,
                        offer_deadline=now + timedelta(seconds=300),
                    )
                )
        return conversation_id

    async def attachment(self, conversation_id: int) -> int:
        """A stored attachment on the conversation's first message (its bytes are not in the blob store)."""
        now = self.api.clock()
        async with self.store.write() as connection:
            message_id = (
                await connection.execute(
                    select(messages.c.id).where(messages.c.conversation_id == conversation_id).limit(1)
                )
            ).scalar_one()
            inserted = await connection.execute(
                attachments.insert()
                .values(
                    message_id=message_id,
                    position=0,
                    kind="image",
                    state="stored",
                    mime="image/png",
                    size=1,
                    sha256="0" * 64,
                    blob_key="0" * 64,
                    attempts=0,
                    created_at=now,
                    stored_at=now,
                )
                .returning(attachments.c.id)
            )
            return int(inserted.scalar_one())

    async def identity_of(self, conversation_id: int) -> int:
        async with self.store.read() as connection:
            return int(
                (
                    await connection.execute(
                        select(conversations.c.identity_id).where(conversations.c.id == conversation_id)
                    )
                ).scalar_one()
            )

    async def targets(self, route: Route, ownership: str, caller_id: int | None) -> dict[str, Any]:
        """Fresh objects for every placeholder the route (or its body) needs."""
        now = self.api.clock()
        ids: dict[str, Any] = {}
        needs = set(_PLACEHOLDER.findall(route.path)) | {f"{{{name}}}" for name in route.uses}
        if "{conv}" in needs:
            ids["conv"] = await self.conversation(ownership, caller_id)
        if "{identity}" in needs:
            conv = ids.get("conv") or await self.conversation("waiting_mine", caller_id)
            ids["identity"] = await self.identity_of(conv)
        if "{contact}" in needs:
            ids["contact"] = (await create_contact(self.store, {"name": _unique(self, "Contact ")}, now)).id
        if "{ticket}" in needs:
            ids["ticket"] = (await create_ticket(self.store, {"title": "T"}, self.other.id, now))["id"]
        if "{event}" in needs:
            event = await create_event(self.store, self.other.id, {"title": "E", "starts_at": now}, now)
            ids["event"] = event["id"]
        if "{queue}" in route.path:
            queue_id = _unique(self, "queue")
            await create_queue(self.store, Queue(id=queue_id, name="Q", number=500, offer_timeout=30))
            ids["queue"] = queue_id
        if "{status}" in route.path:
            ids["status"] = (await create_status(self.store, Status(id=_unique(self, "status"), name="S"))).id
        if "{agent}" in route.path:
            target = await create_agent(
                self.store, login=_unique(self, "target"), password=PASSWORD, role=Role.AGENT, now=now
            )
            ids["agent"] = target.id
        if "{article}" in route.path:
            draft = ArticleDraft(title=_unique(self, "Article "), body="Text")
            ids["article"] = (await create_article(self.store, draft, render_markdown(draft.body), now=now)).id
        if "{attachment}" in route.path:
            ids["attachment"] = await self.attachment(await self.conversation("others", caller_id))
        if "{template}" in route.path:
            name = _unique(self, "tpl")
            root = self.handles["admin"]
            await root.json("POST", "/api/v1/templates", {"name": name, "body": "Hello {{ contact.name }}"}, status=201)
            await root.json("PUT", f"/api/v1/templates/{name}", {"body": "Hello again"})
            ids["template"] = name
        if "{webhook}" in route.path:
            hook = WebhookOut(
                id=_unique(self, "hook"), url="http://127.0.0.1:9/hook", secret=_SECRET, events=("message.created",)
            )
            await create_subscription(self.store, hook, now=now)
            ids["webhook"] = hook.id
        if "{delivery}" in route.path:
            await self.api.customer_writes(sender=f"+4208{next(self.counter):08d}")
            (delivery, *_), _ = await list_deliveries(self.store, ids["webhook"], before=None, limit=1)
            ids["delivery"] = delivery.id
        return ids

    async def caller(self, role: str, route: Route) -> AgentHandle | None:
        if role == "anonymous":
            return None
        handle = self.handles[role]
        if not route.fresh_session:
            return handle
        response = await self.api.client.post("/api/v1/auth/login", json={"login": handle.login, "password": PASSWORD})
        body = await response.json()
        return AgentHandle(
            id=handle.id, login=handle.login, token=body["token"], csrf_token=body["csrf_token"], client=self.api.client
        )

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table a request could change; background bookkeeping is left out
        (the bus log, provider health, and the delivery progress of earlier cells' messages)."""
        tables: dict[str, list[tuple[Any, ...]]] = {}
        async with self.store.read() as connection:
            for table in metadata.sorted_tables:
                if table.name in _BACKGROUND_TABLES:
                    continue
                columns = [c for c in table.c if c.name not in _BACKGROUND_COLUMNS.get(table.name, ())]
                rows = (await connection.execute(select(*columns))).all()
                tables[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return tables


_BACKGROUND_TABLES = {"bus_log", "account_health", "outbox", "webhook_deliveries", "webhook_attempts"}
_BACKGROUND_COLUMNS = {
    "webhook_subscriptions": ("consecutive_failures", "paused_at", "paused_reason"),
    "messages": (
        "delivery_state",
        "delivery_changed_at",
        "error_code",
        "error_reason",
        "sent_at",
        "provider_message_id",
    ),
}


async def _world(api: Api) -> World:
    handles = {
        "agent": await api.agent("me", queues=("support",)),
        "supervisor": await api.agent("boss", role="supervisor", queues=("support",)),
        "admin": await api.agent("root", role="admin", queues=("support",)),
    }
    other = await api.agent("other", queues=("support", "sales"))
    return World(api=api, handles=handles, other=other)


async def _handshake(world: World, path: str, caller: AgentHandle | None) -> tuple[int, str]:
    """101 when the stream opens (and says hello), else the handshake's refusal status."""
    url = f"{path}?token={caller.token}" if caller else path
    try:
        ws = await world.api.client.ws_connect(url)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status, exc.message
    hello = await ws.receive_json(timeout=10)
    await ws.close()
    return 101, str(hello.get("kind"))


def _matches(expected: Expected, status: int) -> bool:
    if expected == ALLOWED:
        return status < 500 and status not in (401, 403)
    return status == expected


async def _check(world: World, route: Route, role: str, ownership: str) -> str | None:
    caller = await world.caller(role, route)
    caller_id = caller.id if caller else None
    ids = await world.targets(route, ownership, caller_id)
    world.ids = ids
    path = route.path.format(**ids)
    body = route.body(world) if callable(route.body) else route.body
    expected = route.rule(role, ownership)
    if expected == ALLOWED and route.ok is not None:
        expected = route.ok
    refused = expected in (401, 403)
    before = await world.snapshot() if refused else None
    if caller is None:
        world.api.client.session.cookie_jar.clear()  # no session cookie left by an earlier login
    if route.websocket:
        status, text = await _handshake(world, path, caller)
    elif caller is None:
        response = await world.api.client.request(route.method, path, json=body)
        status, text = response.status, await response.text()
    else:
        response = await caller.request(route.method, path, json=body)
        status, text = response.status, await response.text()
    cell = f"{route.method} {route.path} as {role}" + (f" on {ownership}" if route.per_conversation else "")
    if not _matches(expected, status):
        return f"{cell}: expected {expected}, got {status} {text[:160]}"
    if before is not None:
        after = await world.snapshot()
        changed = sorted(name for name in before if before[name] != after[name])
        if changed:
            return f"{cell}: refused with {status} but changed {', '.join(changed)}"
    return None


# ------------------------------------------------------------------- tests


def test_the_table_covers_every_api_route(make_settings: Callable[..., Any], sqlite_url: str) -> None:
    from hub.api.server import create_app

    app = create_app(make_settings(database_url=sqlite_url))
    existing = {(m, _PLACEHOLDER.sub("{}", p)) for m, p, _ in routes_under_api(app)}
    tabled = {(r.method, _PLACEHOLDER.sub("{}", r.path)) for r in TABLE}
    assert sorted(existing - tabled) == [], "routes missing from the authorisation table"
    assert sorted(tabled - existing) == [], "table rows naming routes that do not exist"


@pytest.mark.parametrize("area", AREAS)
async def test_authorization_matrix(area: str, make_api: Callable[..., Awaitable[Api]]) -> None:
    api = await make_api()
    world = await _world(api)
    failures: list[str] = []
    cells = 0
    for route in (r for r in TABLE if r.area == area):
        for role in ROLES:
            ownerships = OWNERSHIPS if route.per_conversation and role != "anonymous" else ("others",)
            for ownership in ownerships:
                cells += 1
                failure = await _check(world, route, role, ownership)
                if failure:
                    failures.append(failure)
    assert cells > 0
    assert not failures, "\n".join(failures)


def test_the_rules_refuse_what_the_issue_says() -> None:
    # a spot check of the table itself, so a rule edited by mistake shows here
    assert sees("agent", "waiting_other") == 403
    assert sees("agent", "waiting_mine") == ALLOWED
    assert acts("agent", "waiting_mine") == 403
    assert acts("supervisor", "others") == ALLOWED
    assert admin_only("supervisor", "-") == 403
    assert supervision("agent", "-") == 403
    assert anyone("anonymous", "-") == 401
