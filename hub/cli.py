"""The ``channelhub`` command.

``serve`` and ``migrate`` live here; other packages contribute subcommands
(``channels``, ``emulate``, ...) through the ``channelhub.commands`` entry
points, each a ``register(subparsers)`` function that takes ``--config`` and reads the settings once through
``hub.command_args``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hub.command_args import add_config_argument, settings_from_args
from hub.errors import ConfigError
from hub.registry import command_registrars
from hub.settings import Settings

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.host:
        settings = _replace_server(settings, host=args.host)
    if args.port:
        settings = _replace_server(settings, port=args.port)
    from hub.api.server import run_server

    try:
        run_server(settings)
    except ConfigError as exc:
        print(f"channelhub: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


def _replace_server(settings: Settings, **changes: Any) -> Settings:
    from dataclasses import replace

    return replace(settings, server=replace(settings.server, **changes))


def _migrate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from hub.bootstrap import build_store
    from hub.store.migrate import current_revision

    async def run() -> str | None:
        store = build_store(settings)
        try:
            await store.migrate()
            return await current_revision(store.writer)
        finally:
            await store.close()

    revision = asyncio.run(run())
    print(f"database is at revision {revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="channelhub", description="Messenger, WhatsApp and Viber in one desk.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the hub (webhooks, API, console)")
    add_config_argument(serve)
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    add_config_argument(migrate)
    migrate.set_defaults(handler=_migrate)

    for _name, register in sorted(command_registrars().items()):
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
