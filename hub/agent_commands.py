"""``channelhub agents create|list|deactivate|reactivate|password``: agent accounts, for when
nobody can log in to the console.

``create LOGIN --role agent|supervisor|admin [--queue ID ...]`` is how the first
admin of an empty database is created. ``--queue`` takes any queue that exists:
one from the configuration file or one created through the admin API (the
database). It is the admin API's use case (``hub.usecases.agents.create_agent``), acting
as the operator, so the account and its ``agent.created`` audit entry are the same either way.
``list [--inactive]`` prints one aligned line per agent, by login.

``deactivate LOGIN`` and ``reactivate LOGIN`` are the admin API's
``PUT {"active": false|true}``, through the same use case
(``hub.usecases.agents.change_agent``, acting as the operator): one transaction makes the agent
inactive and offline, revokes their sessions and tokens and gives back their work, and the
same events are published. Repeating either changes nothing. A hub that is running routes the
given-back conversations on its next sweep and closes the agent's open consoles (the
``agent.deactivated`` event is logged for it). Other consoles, supervisors'
included, see the hand-offs and the agent's presence when they next load them:
the events the API publishes in its own process are not sent from here. The
timeline events name no admin (no ``by``).

``password LOGIN`` is the API's password reset (``PUT {"password": ...}``, the same use case):
the new hash and the revocation of every session and token commit together.

Passwords are read from standard input: a hidden prompt (asked twice) on a
terminal, the first line otherwise (``printf '%s\\n' "$PW" | channelhub agents
create ...``), so they never appear in the process list or shell history.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from dataclasses import dataclass, field
from typing import TextIO

from hub.bootstrap import build_store, command_parts
from hub.bus import BusEvent, EventBus
from hub.command_args import add_config_argument, settings_from_args
from hub.errors import Conflict
from hub.events import AgentDeactivated
from hub.model import Agent, Presence, Role
from hub.settings import Settings
from hub.store.admin import AgentUpdate, list_agents
from hub.store.agents import AgentExists
from hub.store.catalogue import load_queues
from hub.store.events import log_events
from hub.store.routing import Released
from hub.usecases import Principal
from hub.usecases.agents import (
    AgentChange,
    NewAgent,
    change_agent,
    create_agent,
    deactivate_agent,
    reactivate_agent,
)

__all__ = [
    "Deactivation",
    "UnknownAgent",
    "agent_lines",
    "change_password",
    "create",
    "deactivate",
    "deactivation_lines",
    "find",
    "known_queues",
    "listing",
    "reactivate",
    "read_password",
    "register",
    "unknown_queue_message",
]

MIN_PASSWORD = 8


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agents = subparsers.add_parser("agents", help="manage agent accounts")
    actions = agents.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    do_create = actions.add_parser("create", help="create an agent; the password is read from standard input")
    do_create.add_argument("login")
    do_create.add_argument("--role", required=True, choices=[r.value for r in Role])
    do_create.add_argument("--queue", action="append", default=[], metavar="ID", help="a queue membership (repeat)")
    do_create.add_argument("--name", help="display name (default: the login)")
    do_create.add_argument("--capacity", type=int, default=2, help="concurrent conversations (default 2)")
    add_config_argument(do_create)
    do_create.set_defaults(handler=_create)
    do_list = actions.add_parser("list", help="one line per agent: login, role, state, queues, presence")
    do_list.add_argument("--inactive", action="store_true", help="include deactivated agents")
    add_config_argument(do_list)
    do_list.set_defaults(handler=_list)
    for action, handler, help_ in (
        ("deactivate", _deactivate, "no more logins; sessions and tokens revoked; their conversations given back"),
        ("reactivate", _reactivate, "let a deactivated agent log in again (they start offline)"),
        ("password", _password, "set a new password, read from standard input; ends the agent's sessions and tokens"),
    ):
        on_one = actions.add_parser(action, help=help_)
        on_one.add_argument("login")
        add_config_argument(on_one)
        on_one.set_defaults(handler=handler)


class PasswordError(Exception):
    pass


class UnknownAgent(Exception):
    """No agent, active or not, has the login."""

    def __init__(self, login: str) -> None:
        super().__init__(f"no agent with login {login!r}")
        self.login = login


@dataclass(frozen=True, slots=True)
class Deactivation:
    """What the deactivation did, every agent's login by id to name who took a conversation over,
    and the events it published (as the admin API publishes them)."""

    update: AgentUpdate
    logins: dict[int, str]
    events: list[BusEvent] = field(default_factory=list)


def read_password(stdin: TextIO = sys.stdin) -> str:
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise PasswordError("the passwords differ")
        password = first
    else:
        line = stdin.readline()
        if not line:  # nothing piped in (< /dev/null, a script's closed stdin): say how to give one
            raise PasswordError(
                "no password on standard input: run the command at a terminal to be asked for it, "
                "or pipe it in (printf '%s\\n' \"$PASSWORD\" | channelhub agents ...)"
            )
        password = line.rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"the password needs at least {MIN_PASSWORD} characters")
    return password


async def known_queues(settings: Settings) -> set[str]:
    """Queue ids an agent may join: the configuration file's and the database's.

    The file's queues reach the database only when the hub starts, and the API's
    exist only there, so neither alone is the whole list."""
    store = build_store(settings)
    try:
        await store.migrate()
        async with store.read() as connection:
            stored = await load_queues(connection)
    finally:
        await store.close()
    return {q.id for q in settings.queues} | set(stored)


def unknown_queue_message(wanted: list[str], known: set[str]) -> str | None:
    """One line naming the unknown queues and listing the known ones, or None when all exist."""
    unknown = list(dict.fromkeys(q for q in wanted if q not in known))
    if not unknown:
        return None
    noun = "queue" if len(unknown) == 1 else "queues"
    return f"unknown {noun} {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})"


async def create(
    settings: Settings,
    *,
    login: str,
    password: str,
    role: Role,
    queues: list[str],
    name: str | None = None,
    capacity: int = 2,
) -> Agent:
    """Create the agent through the admin API's use case, acting as the operator; ``queues`` may name the
    configuration file's queues too. Raises AgentExists (the login is taken)."""
    new = NewAgent(
        login=login, password=password, role=role, display_name=name, capacity=capacity, queues=tuple(queues)
    )
    async with command_parts(settings) as hub:
        try:
            return await create_agent(hub, Principal.operator(), new, also_known=[q.id for q in settings.queues])
        except Conflict:
            raise AgentExists(login) from None


def _create(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.capacity < 1:
        print("channelhub: --capacity must be at least 1", file=sys.stderr)
        return 2
    if args.queue:
        problem = unknown_queue_message(args.queue, asyncio.run(known_queues(settings)))
        if problem is not None:
            print(f"channelhub: {problem}", file=sys.stderr)
            return 2
    try:
        password = read_password()
    except PasswordError as exc:
        print(f"channelhub: {exc}", file=sys.stderr)
        return 2
    try:
        agent = asyncio.run(
            create(
                settings,
                login=args.login,
                password=password,
                role=Role(args.role),
                queues=args.queue,
                name=args.name,
                capacity=args.capacity,
            )
        )
    except AgentExists as exc:
        print(f"channelhub: {exc}", file=sys.stderr)
        return 1
    queues = ", ".join(agent.queues) or "no queues"
    print(f"created {agent.role.value} {agent.login} (id {agent.id}; {queues}; capacity {agent.capacity})")
    return 0


async def listing(settings: Settings, *, inactive: bool = False) -> list[tuple[Agent, bool]]:
    """(agent, active) by login; deactivated agents only with ``inactive``."""
    store = build_store(settings)
    try:
        await store.migrate()
        found = await list_agents(store, include_inactive=inactive)
    finally:
        await store.close()
    # by code point: a database's collation has its own order (PostgreSQL's may ignore case)
    return sorted(found, key=lambda pair: pair[0].login)


def agent_lines(found: list[tuple[Agent, bool]]) -> list[str]:
    """``login  role  active|inactive  queues  presence``, the columns aligned."""
    rows = [
        (agent.login, agent.role.value, "active" if active else "inactive", ",".join(agent.queues) or "-")
        for agent, active in found
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + "  " + _presence(agent)
        for row, (agent, _) in zip(rows, found, strict=True)
    ]


def _presence(agent: Agent) -> str:
    if agent.presence is Presence.PAUSED and agent.pause_reason:
        return f"{agent.presence.value} ({agent.pause_reason})"
    return agent.presence.value


def _list(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    found = asyncio.run(listing(settings, inactive=args.inactive))
    for line in agent_lines(found):
        print(line)
    if not found:  # on standard error, so a script reading the lines finds none
        print("no agents" if args.inactive else "no active agents", file=sys.stderr)
    return 0


def _find(found: list[tuple[Agent, bool]], login: str) -> tuple[Agent, bool]:
    for agent, active in found:
        if agent.login == login:
            return agent, active
    raise UnknownAgent(login)


async def deactivate(settings: Settings, login: str, *, bus: EventBus | None = None) -> Deactivation:
    """Deactivate as ``DELETE /api/v1/agents/{id}`` does, publishing its events on ``bus``. Raises UnknownAgent,
    or hub.errors.Conflict when hand-offs on the agent's conversations kept getting there first (nothing
    changed)."""
    async with command_parts(settings, bus) as hub:
        everyone = await list_agents(hub.store, include_inactive=True)
        agent, _ = _find(everyone, login)
        changed = await deactivate_agent(hub, Principal.operator(), agent.id)
        # a running hub learns only from its log: the event that closes the agent's consoles goes there
        closing = [e for e in changed.events if isinstance(e, AgentDeactivated)]
        if closing:
            rows = [{"kind": e.kind, "agent_id": e.agent_id, "data": e.data} for e in closing]
            await log_events(hub.store, rows, now=hub.clock())
    return Deactivation(update=changed.update, logins={a.id: a.login for a, _ in everyone}, events=changed.events)


def deactivation_lines(done: Deactivation) -> list[str]:
    """One line for the agent, one for their conversations when anything was given back (or it is news)."""
    agent = done.update.agent
    released = done.update.released or Released()
    given = _given_back(released, done.logins)
    if not done.update.deactivated:
        first = f"{agent.role.value} {agent.login} was already inactive"
        return [first, given] if given else [first + "; nothing changed"]
    revoked = done.update.tokens_revoked
    first = f"deactivated {agent.role.value} {agent.login} (id {agent.id}; sessions and tokens revoked: {revoked})"
    return [first, given or "no conversations to give back"]


def _given_back(released: Released, logins: dict[int, str]) -> str | None:
    parts = []
    if released.offers_withdrawn:
        parts.append(f"offers withdrawn {_ids(released.offers_withdrawn)}")
    if released.requeued:
        parts.append(f"back to waiting {_ids(released.requeued)}")
    if released.handed_over:
        parts.append("handed over " + ", ".join(f"{c} to {logins.get(a, a)}" for c, a in released.handed_over))
    if released.left:
        parts.append(f"left {_ids(released.left)}")
    return "conversations given back: " + "; ".join(parts) if parts else None


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)


async def reactivate(settings: Settings, login: str) -> tuple[Agent, bool]:
    """The agent and whether this changed anything, as ``PUT {"active": true}``. Raises UnknownAgent."""
    async with command_parts(settings) as hub:
        agent, active = _find(await list_agents(hub.store, include_inactive=True), login)
        if active:
            return agent, False
        changed = await reactivate_agent(hub, Principal.operator(), agent.id)
        return changed.update.agent, True


def _deactivate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        done = asyncio.run(deactivate(settings, args.login))
    except UnknownAgent as exc:
        print(f"channelhub: {exc}", file=sys.stderr)
        return 2
    except Conflict:
        print("channelhub: the agent's conversations changed meanwhile; nothing changed, try again", file=sys.stderr)
        return 1
    for line in deactivation_lines(done):
        print(line)
    return 0


def _reactivate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        agent, changed = asyncio.run(reactivate(settings, args.login))
    except UnknownAgent as exc:
        print(f"channelhub: {exc}", file=sys.stderr)
        return 2
    if changed:
        print(f"reactivated {agent.role.value} {agent.login} (id {agent.id}); they log in again and start offline")
    else:
        print(f"{agent.role.value} {agent.login} is already active; nothing changed")
    return 0


async def find(settings: Settings, login: str) -> tuple[Agent, bool]:
    """(agent, active) for the login. Raises UnknownAgent."""
    store = build_store(settings)
    try:
        await store.migrate()
        return _find(await list_agents(store, include_inactive=True), login)
    finally:
        await store.close()


async def change_password(settings: Settings, login: str, password: str) -> AgentUpdate:
    """A new password, hashed as ``create`` hashes it; every live token is revoked in the same
    transaction (the API's reset, through the same use case). Raises UnknownAgent."""
    async with command_parts(settings) as hub:
        agent, _ = _find(await list_agents(hub.store, include_inactive=True), login)
        changed = await change_agent(hub, Principal.operator(), agent.id, AgentChange(password=password))
    return changed.update


def _password(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        asyncio.run(find(settings, args.login))  # before asking: a typo in the login costs no typing
        password = read_password()
        updated = asyncio.run(change_password(settings, args.login, password))
    except (UnknownAgent, PasswordError) as exc:
        print(f"channelhub: {exc}", file=sys.stderr)
        return 2
    agent = updated.agent
    note = "" if updated.active else "; still inactive: reactivate to let them log in"
    print(
        f"changed the password of {agent.role.value} {agent.login} (id {agent.id}; "
        f"sessions and tokens revoked: {updated.tokens_revoked}){note}"
    )
    return 0
