"""``channelhub agents create|list``: agent accounts, for when nobody can log in to the console.

``create LOGIN --role agent|supervisor|admin [--queue ID ...]`` is how the first
admin of an empty database is created. ``--queue`` takes any queue that exists:
one from the configuration file or one created through the admin API (the
database). ``list [--inactive]`` prints one aligned line per agent, by login.

Passwords are read from standard input: a hidden prompt (asked twice) on a
terminal, the first line otherwise (``printf '%s\\n' "$PW" | channelhub agents
create ...``), so they never appear in the process list or shell history.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, datetime
from typing import TextIO

from hub.cli import add_config_argument, settings_from_args
from hub.model import Agent, Presence, Role
from hub.settings import Settings
from hub.store import Store
from hub.store.admin import list_agents
from hub.store.agents import AgentExists, create_agent
from hub.store.catalogue import load_queues

__all__ = ["agent_lines", "create", "known_queues", "listing", "read_password", "register", "unknown_queue_message"]

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


class PasswordError(Exception):
    pass


def read_password(stdin: TextIO = sys.stdin) -> str:
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise PasswordError("the passwords differ")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"the password needs at least {MIN_PASSWORD} characters")
    return password


async def known_queues(settings: Settings) -> set[str]:
    """Queue ids an agent may join: the configuration file's and the database's.

    The file's queues reach the database only when the hub starts, and the API's
    exist only there, so neither alone is the whole list."""
    store = Store(settings.database_url)
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
    store = Store(settings.database_url)
    try:
        await store.migrate()
        return await create_agent(
            store,
            login=login,
            password=password,
            role=role,
            now=datetime.now(UTC),
            display_name=name,
            capacity=capacity,
            queues=queues,
        )
    finally:
        await store.close()


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
    store = Store(settings.database_url)
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
