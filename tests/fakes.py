"""Test doubles that satisfy the hub's ports: no network, everything recorded."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hub.errors import ProviderRejected, ProviderUnavailable
from hub.model import Channel, ChannelAccount, InboundEvent, MessageKind, OutboundMessage, SendReceipt
from hub.ports import ProviderFacts

__all__ = ["RecordingAdapter", "RelayAdapter", "recording_factory"]

_ids = itertools.count(1)


class RecordingAdapter:
    """Satisfies hub.ports.ChannelAdapter. Records every send; fails on demand.

    ``adapter.fail_next(exc)`` makes the next send raise ``exc`` (e.g.
    ``ProviderUnavailable("down", retry_after=1)`` or ``ProviderRejected("131047", "window closed")``), or the
    next send of a message ``when`` accepts (sends of several conversations run concurrently, in no set order);
    ``adapter.fail_always = exc`` makes every send raise it until reset to None.
    """

    def __init__(self, account: ChannelAccount, session: Any = None) -> None:
        self.account = account
        self.capabilities: frozenset[MessageKind] = frozenset(MessageKind)
        self.text_limit = 4096
        self.sent: list[OutboundMessage] = []
        self.attempts: list[OutboundMessage] = []
        self._failures: list[tuple[Exception, Callable[[OutboundMessage], bool] | None]] = []
        self.fail_always: Exception | None = None

    def fail_next(
        self,
        exc: ProviderRejected | ProviderUnavailable | Exception,
        *,
        when: Callable[[OutboundMessage], bool] | None = None,
    ) -> None:
        self._failures.append((exc, when))

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Sequence[InboundEvent]:
        return ()

    async def send(self, message: OutboundMessage) -> SendReceipt:
        self.attempts.append(message)
        if self.fail_always is not None:
            raise self.fail_always
        for i, (exc, when) in enumerate(self._failures):
            if when is None or when(message):
                del self._failures[i]
                raise exc
        self.sent.append(message)
        return SendReceipt(provider_message_id=f"fake-{next(_ids)}", accepted_at=datetime.now(UTC))

    async def check(self) -> str:
        return f"fake adapter for {self.account.id}"


def recording_factory(account: ChannelAccount, session: Any) -> RecordingAdapter:
    return RecordingAdapter(account, session)


class RelayAdapter(RecordingAdapter):
    """A fifth adapter that nothing in hub/ names: a third WhatsApp provider, installed by hand with
    ``hub.registry.adapters_installed(RelayAdapter)``. It declares every fact and behaviour flag, so a
    test sees the settings, the admin API, the ingest and the outbox follow the declaration alone.
    ``accept_as`` names the provider id its next send is accepted under (default: a fresh one)."""

    facts = ProviderFacts(
        channel=Channel.WHATSAPP,
        provider="relay",
        credentials=("relay_key", "relay_secret", "line"),
        api_base="https://relay.example/v2",
        public=frozenset({"relay_key", "line"}),
        address="line",
        subscribes_on_message=True,
        echoes_own_sends=True,
    )

    accept_as: str | None = None

    async def send(self, message: OutboundMessage) -> SendReceipt:
        receipt = await super().send(message)
        if self.accept_as is None:
            return receipt
        return SendReceipt(provider_message_id=self.accept_as, accepted_at=receipt.accepted_at)
