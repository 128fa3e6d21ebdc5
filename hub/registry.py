"""Finds channel adapters and webhook routes by name, through entry points.

The hub never imports a provider module: ``pyproject.toml`` maps names
(``messenger``, ``whatsapp.twilio``, ``whatsapp.cloud``, ``viber``) to factories
in the ``channelhub.adapters`` group, and webhook route modules in
``channelhub.webhooks``. See docs/decisions/0002-adapters-by-entry-point.md.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from hub.errors import ConfigError
from hub.model import ChannelAccount
from hub.ports import AdapterFactory, ChannelAdapter

__all__ = ["adapter_factories", "build_adapter", "command_registrars", "emulator_contexts", "webhook_setups"]

ADAPTER_GROUP = "channelhub.adapters"
WEBHOOK_GROUP = "channelhub.webhooks"
EMULATOR_GROUP = "channelhub.emulators"  # (settings) -> async generator: provider emulators (offline demo)
COMMAND_GROUP = "channelhub.commands"  # CLI subcommands contributed by other packages


@cache
def adapter_factories() -> dict[str, AdapterFactory]:
    return {ep.name: ep.load() for ep in entry_points(group=ADAPTER_GROUP)}


@cache
def webhook_setups() -> dict[str, Callable[..., Any]]:
    return {ep.name: ep.load() for ep in entry_points(group=WEBHOOK_GROUP)}


@cache
def emulator_contexts() -> dict[str, Callable[..., Any]]:
    return {ep.name: ep.load() for ep in entry_points(group=EMULATOR_GROUP)}


@cache
def command_registrars() -> dict[str, Callable[..., Any]]:
    return {ep.name: ep.load() for ep in entry_points(group=COMMAND_GROUP)}


def build_adapter(account: ChannelAccount, session: Any) -> ChannelAdapter:
    """One adapter for one account, checked against the port."""
    factories = adapter_factories()
    factory = factories.get(account.adapter_name)
    if factory is None:
        raise ConfigError(
            f"accounts.{account.id}.channel",
            f"no adapter is installed for {account.adapter_name!r} (have: {', '.join(sorted(factories)) or 'none'})",
        )
    adapter = factory(account, session)
    if not isinstance(adapter, ChannelAdapter):
        raise TypeError(f"adapter {account.adapter_name!r} does not satisfy hub.ports.ChannelAdapter")
    return adapter
