"""``channelhub agents create LOGIN --role agent|supervisor|admin [--queue ID ...]``.

The password is read from standard input: a hidden prompt (asked twice) on a
terminal, the first line otherwise (``printf '%s\\n' "$PW" | channelhub agents
create ...``), so it never appears in the process list or shell history.
This is how the first admin of an empty database is created. ``--queue`` takes
any queue that exists: one from the configuration file or one created through
the admin API (the database).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, datetime
from typing import TextIO

from hub.cli import add_config_argument, settings_from_args
from hub.model import Agent, Role
from hub.settings import Settings
from hub.store import Store
from hub.store.agents import AgentExists, create_agent
from hub.store.catalogue import load_queues

__all__ = ["create", "known_queues", "read_password", "register", "unknown_queue_message"]

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
