"""The channel accounts as supervisors see them: each configured account, the address customers know it by,
and its health (the last webhook and the last send). Accounts come from the configuration and are read-only
here; of their credentials only the one that is the account's address leaves this module."""

from __future__ import annotations

from dataclasses import dataclass

from hub.model import ChannelAccount
from hub.registry import provider_facts
from hub.store.admin import AccountHealth, list_account_health
from hub.usecases._parts import HubParts

__all__ = ["AccountHealth", "AccountSeen", "accounts_with_health"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSeen:
    """One configured account; ``address`` is its page id, sender number or bot name when its provider names
    the credential that holds it, and ``health`` is None before anything was received or sent."""

    account: ChannelAccount
    address: str | None
    health: AccountHealth | None


async def accounts_with_health(hub: HubParts) -> list[AccountSeen]:
    """Every configured account, in the configuration's order."""
    health = await list_account_health(hub.store)
    seen = []
    for account in hub.settings.accounts:
        facts = provider_facts().get(account.adapter_name)  # names the credential that is the account's address
        address = (account.credentials.get(facts.address) or None) if facts and facts.address else None
        seen.append(AccountSeen(account=account, address=address, health=health.get(account.id)))
    return seen
