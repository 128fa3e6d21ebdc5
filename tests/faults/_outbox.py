"""A full outbox and the emulated provider it drains into, for the outbox fault tests.

``queue_sends`` writes ``conversations`` x ``per_conversation`` accepted sends straight through the store's
queue function (as the API does after the policy allowed them), while no hub runs. ``Provider`` is the
Twilio emulator on a loopback port of the test's own event loop, with every send attempt counted
(``tests.faults._support.SendLog``); it can answer 503 and be stopped (connections refused) and started
again on the same port.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from adapters.emulators.core import EmulatorState, build_emulator_app
from hub.model import Channel, DeliveryState, InboundMessage, MessageKind, Role
from hub.outbox import facts_for, send_plan
from hub.policy import Allowed, Draft, decide
from hub.settings import Settings
from hub.store import Store, store_group
from hub.store.agents import create_agent
from hub.store.outbound import NewOutbound, load_identity, open_conversation_of, queue_outbound_group
from hub.store.tables import identities, messages, outbox
from tests.faults._support import SendLog, counting_middleware, utc_now


def number(conversation: int) -> str:
    return f"+4206{conversation:08d}"


def text(conversation: int, position: int) -> str:
    """Every send's text is unique and says where it belongs: ``c<conversation>-<position>``."""
    return f"c{conversation}-{position:04d}"


async def queue_sends(
    store: Store, settings: Settings, conversations: int, per_conversation: int, *, chunk: int = 100
) -> list[str]:
    """Customers write in on account ``wa`` a minute ago, then the sends are queued in conversation order,
    ``chunk`` to a transaction. Returns the recipients' numbers."""
    now = utc_now()
    agent = await create_agent(store, login="faults", password="faults-password-1", role=Role.AGENT, now=now)
    accounts = {a.id: a for a in settings.accounts}
    numbers = [number(c) for c in range(conversations)]
    inbound = [
        [
            InboundMessage(
                channel=Channel.WHATSAPP,
                account_id="wa",
                sender_id=n,
                provider_message_id=f"in-{n}",
                sent_at=now - timedelta(minutes=1),
                text="hello",
            )
        ]
        for n in numbers
    ]
    for outcome in await store_group(store, inbound, accounts, now):
        assert not isinstance(outcome, BaseException), outcome
    async with store.read() as connection:
        ids = dict(
            (
                await connection.execute(
                    select(identities.c.external_id, identities.c.id).where(identities.c.account_id == "wa")
                )
            ).all()
        )
    plans: list[tuple[int, int, dict[str, Any]]] = []
    for _c, n in enumerate(numbers):
        identity = await load_identity(store, ids[n])
        found = await open_conversation_of(store, ids[n])
        assert identity is not None
        assert found is not None
        decision = decide(facts_for(identity, "twilio"), Draft(text="x"), now)
        assert isinstance(decision, Allowed), decision
        plans.append((ids[n], found[0].id, send_plan(decision)))
    sends = [
        NewOutbound(
            account_id="wa",
            identity_id=identity_id,
            agent_id=agent.id,
            kind=MessageKind.TEXT,
            send_plan=plan,
            conversation_id=conversation_id,
            text=text(c, i),
        )
        for i in range(per_conversation)
        for c, (identity_id, conversation_id, plan) in enumerate(plans)
    ]
    for start in range(0, len(sends), chunk):
        for result in await queue_outbound_group(store, sends[start : start + chunk], utc_now()):
            assert not isinstance(result, BaseException), result
    return numbers


class QuietEmulator(EmulatorState):
    """The emulator without its status callbacks (sent, delivered, read): receipts are not what these tests
    are about, and callbacks to a hub that was just killed would only add noise."""

    def schedule(self, coro: Coroutine[Any, Any, Any], *, delay: float | None = None) -> asyncio.Task[Any]:
        coro.close()
        return asyncio.get_running_loop().create_task(asyncio.sleep(0))


@dataclass
class Provider:
    """The Twilio emulator on ``port``, counting every send attempt into ``log``."""

    settings: Settings
    hub_url: str
    port: int
    log: SendLog = field(default_factory=SendLog)
    state: EmulatorState | None = None
    runner: web.AppRunner | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/twilio"

    async def start(self, numbers: list[str]) -> None:
        if self.state is None:
            self.state = QuietEmulator(self.settings, self.hub_url)
            for n in numbers:
                self.state.record_inbound("wa", n, utc_now() - timedelta(minutes=1))
        app = build_emulator_app(self.state)
        app.on_cleanup.clear()  # the state outlives a stop: the provider comes back with its memory
        app.middlewares.insert(0, counting_middleware(self.log))
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Closed port: the hub's connections are refused."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def close(self) -> None:
        await self.stop()
        if self.state is not None:
            await self.state.close()

    def first_acceptances(self) -> dict[str, list[str]]:
        """Per recipient, the texts in the order the provider first accepted them."""
        seen: set[str] = set()
        order: dict[str, list[str]] = defaultdict(list)
        for attempt in self.log.accepted():
            if attempt.text not in seen:
                seen.add(attempt.text)
                order[attempt.to].append(attempt.text)
        return order

    def duplicates(self) -> int:
        accepted = [a.text for a in self.log.accepted()]
        return len(accepted) - len(set(accepted))


async def delivery_counts(store: Store) -> dict[str, int]:
    """Outbound messages by delivery state, and outbox rows by state (``outbox:<state>``)."""
    async with store.read() as connection:
        by_message = (
            await connection.execute(
                select(messages.c.delivery_state, func.count())
                .where(messages.c.direction == "out")
                .group_by(messages.c.delivery_state)
            )
        ).all()
        by_row = (await connection.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))).all()
    counts = {str(state): int(n) for state, n in by_message}
    counts.update({f"outbox:{state}": int(n) for state, n in by_row})
    return counts


async def sent_count(store: Store) -> int:
    return (await delivery_counts(store)).get(DeliveryState.SENT.value, 0)


async def attempts_per_message(store: Store) -> dict[str, int]:
    """The outbox's own attempt count, by the message's text."""
    async with store.read() as connection:
        rows = (
            await connection.execute(
                select(messages.c.text, outbox.c.attempts).join(outbox, outbox.c.message_id == messages.c.id)
            )
        ).all()
    return {str(t): int(a) for t, a in rows}


def in_order(order: dict[str, list[str]]) -> bool:
    """Each recipient's texts first accepted in ascending position."""
    return all(texts == sorted(texts) for texts in order.values())
