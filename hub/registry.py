"""Finds channel adapters and webhook routes by name, through entry points.

The hub never imports a provider module: ``pyproject.toml`` maps names
(``messenger``, ``whatsapp.twilio``, ``whatsapp.cloud``, ``viber``) to factories
in the ``channelhub.adapters`` group, and webhook route modules in
``channelhub.webhooks``. Each adapter class declares its provider's facts
(``hub.ports.ProviderFacts``), which ``provider_facts`` serves to the settings and
the admin API before any adapter is built. See docs/decisions/0002-adapters-by-entry-point.md
and docs/decisions/0021-providers-declare-their-facts.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from hub.errors import ConfigError
from hub.model import ChannelAccount
from hub.ports import AdapterClass, AdapterFactory, ChannelAdapter, ProviderFacts

__all__ = [
    "adapter_classes",
    "adapter_factories",
    "adapters_installed",
    "build_adapter",
    "command_registrars",
    "emulator_contexts",
    "provider_facts",
    "webhook_setups",
]

ADAPTER_GROUP = "channelhub.adapters"
WEBHOOK_GROUP = "channelhub.webhooks"
EMULATOR_GROUP = "channelhub.emulators"  # (settings) -> async generator: provider emulators (offline demo)
COMMAND_GROUP = "channelhub.commands"  # CLI subcommands contributed by other packages


@cache
def adapter_classes() -> dict[str, AdapterClass]:
    """Every installed adapter class by registry name, each checked to declare facts under that name."""
    return {ep.name: _checked(ep.name, ep.load()) for ep in entry_points(group=ADAPTER_GROUP)}


@cache
def adapter_factories() -> dict[str, AdapterFactory]:
    """What builds each registry name's adapters (the adapter classes; tests put doubles in this dict)."""
    return dict(adapter_classes())


@cache
def provider_facts() -> dict[str, ProviderFacts]:
    """Every installed provider's facts by registry name, read from the adapter classes (none is built)."""
    return {name: cls.facts for name, cls in adapter_classes().items()}


@contextmanager
def adapters_installed(*classes: AdapterClass) -> Iterator[None]:
    """Register adapter classes as their entry points would, until the block ends: a channel that is
    not installed as a package (tests, a plugin loaded by hand) is validated, configured and built
    like the others."""
    added: dict[str, AdapterClass] = {}
    for cls in classes:
        facts = getattr(cls, "facts", None)
        name = facts.name if isinstance(facts, ProviderFacts) else getattr(cls, "__name__", repr(cls))
        added[name] = _checked(name, cls)
    taken = sorted(set(added) & set(adapter_classes()))
    if taken:
        raise ValueError(f"adapters already installed: {', '.join(taken)}")
    adapter_classes().update(added)
    adapter_factories().update(added)
    provider_facts().update({name: cls.facts for name, cls in added.items()})
    try:
        yield
    finally:
        for name in added:
            for table in (adapter_classes(), adapter_factories(), provider_facts()):
                table.pop(name, None)


def _checked(name: str, cls: Any) -> AdapterClass:
    facts = getattr(cls, "facts", None)
    if not isinstance(facts, ProviderFacts):
        raise TypeError(f"adapter {name!r} ({cls!r}) declares no hub.ports.ProviderFacts as `facts`")
    if facts.name != name:
        raise TypeError(f"adapter {name!r} declares the facts of {facts.name!r}")
    return cls  # type: ignore[no-any-return]


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
