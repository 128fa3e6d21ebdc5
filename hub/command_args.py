"""What every ``channelhub`` subcommand shares: the ``--config`` argument and reading the settings once.

The commands that other packages contribute (``adapters.commands``, ``hub.agent_commands``, ...) import
these from here, not from ``hub.cli``: the ``channelhub`` command itself also starts the HTTP server, and a
subcommand has no business reaching it.
"""

from __future__ import annotations

import argparse
import os
import sys

from hub.errors import ConfigError
from hub.logs import configure_logging
from hub.settings import Narrowing, Settings, load_settings

__all__ = ["add_config_argument", "settings_from_args"]


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (default: $CHANNELHUB_CONFIG)")


def settings_from_args(args: argparse.Namespace, *, narrow: Narrowing | None = None) -> Settings:
    """Read and validate the configuration (only the part ``narrow`` keeps, when given: see
    ``load_settings``); exit with one line naming the key when it is wrong."""
    try:
        settings = load_settings(getattr(args, "config", None), os.environ, narrow=narrow)
    except ConfigError as exc:
        print(f"channelhub: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    return settings
