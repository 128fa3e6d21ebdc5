"""``channelhub templates import DIR`` / ``export DIR``: message templates in version control.

Import reads every ``*.j2`` file, validates all of them, and only then saves, in
one transaction: a folder with one bad file changes nothing. A template whose
content equals its current version gets no new version, so import is idempotent.
Export writes the current version of each template as ``<name>.j2``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from hub.bootstrap import build_store, command_parts
from hub.command_args import add_config_argument, settings_from_args
from hub.settings import Settings
from hub.store.templates import list_templates
from hub.template_files import TemplateFileError, read_dir, write_dir
from hub.usecases import Principal
from hub.usecases.templates import TemplateRefused, import_drafts

__all__ = ["export_dir", "import_dir", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    templates = subparsers.add_parser("templates", help="import or export message templates")
    actions = templates.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    do_import = actions.add_parser("import", help="save the *.j2 files of DIR (new versions only where changed)")
    do_import.add_argument("directory", metavar="DIR", type=Path)
    add_config_argument(do_import)
    do_import.set_defaults(handler=_import)
    do_export = actions.add_parser("export", help="write the current version of every template to DIR")
    do_export.add_argument("directory", metavar="DIR", type=Path)
    add_config_argument(do_export)
    do_export.set_defaults(handler=_export)


async def import_dir(settings: Settings, directory: Path) -> dict[str, str]:
    """Validate every file, then save all in one transaction (``hub.usecases.templates.import_drafts``, as the
    operator). Raises TemplateFileError naming the file that failed."""
    drafts = read_dir(directory)
    try:
        async with command_parts(settings) as hub:
            return await import_drafts(hub, Principal.operator(), drafts)
    except TemplateRefused as exc:
        raise TemplateFileError(f"{exc.name}.j2", str(exc.error), exc.error.line) from None


async def export_dir(settings: Settings, directory: Path) -> list[Path]:
    store = build_store(settings)
    try:
        await store.migrate()
        templates = await list_templates(store)
    finally:
        await store.close()
    return write_dir(directory, templates)


def _import(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if not args.directory.is_dir():
        print(f"channelhub: {args.directory} is not a folder", file=sys.stderr)
        return 2
    try:
        outcome = asyncio.run(import_dir(settings, args.directory))
    except TemplateFileError as exc:
        print(f"channelhub: nothing imported: {exc}", file=sys.stderr)
        return 1
    for name, what in sorted(outcome.items()):
        print(f"{what:9} {name}")
    if not outcome:
        print(f"no templates in {args.directory}")
    return 0


def _export(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    written = asyncio.run(export_dir(settings, args.directory))
    for path in written:
        print(f"wrote {path}")
    return 0
