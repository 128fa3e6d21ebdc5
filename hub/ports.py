"""The port every channel adapter satisfies (structurally) and the registry's unit.

The hub knows providers only through this protocol; adapters are found by name
through the ``channelhub.adapters`` entry points (see hub/registry.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hub.model import ChannelAccount, InboundEvent, MessageKind, OutboundMessage, SendReceipt

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AdapterFactory", "ChannelAdapter"]


@runtime_checkable
class ChannelAdapter(Protocol):
    """What the hub needs from one provider. One instance per channel account."""

    account: ChannelAccount
    capabilities: frozenset[MessageKind]
    text_limit: int

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        """Return quietly or raise SignatureInvalid. Constant-time compare."""

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Sequence[InboundEvent]:
        """Every event in the delivery, in order. Raise PayloadMalformed."""

    async def send(self, message: OutboundMessage) -> SendReceipt:
        """One provider call, with a timeout. Raise ProviderRejected (permanent)
        or ProviderUnavailable (transient, may carry retry_after)."""

    async def check(self) -> str:
        """Verify the credentials against the provider; return a one-line description."""


class AdapterFactory(Protocol):
    def __call__(self, account: ChannelAccount, session: aiohttp.ClientSession) -> ChannelAdapter: ...
