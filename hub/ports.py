"""The port every channel adapter satisfies (structurally), and the facts each adapter class declares.

The hub knows providers only through this module: adapters are found by name
through the ``channelhub.adapters`` entry points (see hub/registry.py), and what
the core must know about a provider before any adapter is built (its credential
keys, default API base, the address shown to admins, how it behaves) is read
from the adapter class's ``facts``, never written in hub/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from hub.model import (
    Attachment,
    Channel,
    ChannelAccount,
    InboundEvent,
    MessageKind,
    OutboundMessage,
    SendReceipt,
    registry_name,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "KB",
    "MB",
    "AdapterClass",
    "AdapterFactory",
    "ButtonLimits",
    "ChannelAdapter",
    "FileOpener",
    "FileUploader",
    "MediaLocation",
    "MediaReference",
    "MediaRules",
    "MediaSource",
    "ProviderFacts",
    "StoredFile",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ButtonLimits:
    """How many quick replies / buttons one message of the provider shows, and how long a title may be
    (hub/policy.py ``button_refusal`` enforces them; docs/channels.md gives the sources)."""

    most: int
    title_length: int
    payload_length: int = 256
    # titles must differ within a message of at most this many buttons (WhatsApp Cloud's reply buttons: 3)
    unique_titles_up_to: int = 0


#: how many bytes a provider's "MB" and "KB" are: decimal. Providers' pages write "MB" with no byte count, and
#: 10^6 is the smaller of the two readings, so a file the hub lets through fits whichever the provider means
#: (docs/decisions/0049-media-rules-are-provider-facts.md)
MB = 1_000_000
KB = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaRules:
    """All a provider's media rules (hub/policy.py ``media_refusal`` enforces them before anything is queued and
    again before the provider call; docs/channels.md "Media limits" gives the sources): the kinds it takes, each
    with its largest size in bytes (write the provider's figures with ``MB`` and ``KB``); the file types it takes
    per kind (a kind not listed, or None: any type); the kinds it sends without a caption (the text must go in a
    message of its own); and how many attachments one message carries."""

    sizes: Mapping[MessageKind, int]
    types: Mapping[MessageKind, frozenset[str] | None] = field(default_factory=dict)
    uncaptioned: frozenset[MessageKind] = frozenset()
    per_message: int = 1

    def __post_init__(self) -> None:
        strangers = set(self.types) - set(self.sizes)
        if strangers:
            raise ValueError(f"file types for kinds not taken: {sorted(k.value for k in strangers)}")
        if self.per_message < 1:
            raise ValueError(f"per_message must be at least 1, not {self.per_message}")

    def tightened(
        self,
        *,
        sizes: Mapping[MessageKind, int] | None = None,
        types: Mapping[MessageKind, frozenset[str] | None] | None = None,
        uncaptioned: frozenset[MessageKind] = frozenset(),
    ) -> MediaRules:
        """These rules with a provider's own on top, for a provider that adds to its channel's (WhatsApp through
        Twilio): ``sizes`` only lower a kind's limit (never add a kind), ``types`` replace a kind's list,
        ``uncaptioned`` kinds are added."""
        lowered = {kind: min(most, (sizes or {}).get(kind, most)) for kind, most in self.sizes.items()}
        return MediaRules(
            sizes=lowered,
            types={**self.types, **(types or {})},
            uncaptioned=self.uncaptioned | uncaptioned,
            per_message=self.per_message,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderFacts:
    """What the core needs to know about one provider, declared by its adapter class.

    Settings validate an account's keys with it, the admin API shows the account's
    address with it, and the store and the outbox follow its behaviour flags (copied
    onto each ``ChannelAccount`` when the settings are read, so no hot path looks
    them up). A new channel or provider declares its own; hub/ does not change.
    """

    channel: Channel
    provider: str  # ``provider`` in the configuration; the channel's own name when the channel has one provider
    credentials: tuple[str, ...]  # the account keys this provider needs: all required, in documented order
    api_base: str  # the provider's base URL, unless the account sets ``api_base``
    public: frozenset[str] = frozenset()  # the credentials that are no secret (ids, numbers, names)
    address: str | None = None  # the public credential that names the account to admins (page, number, bot)
    # a customer who writes is thereby subscribed to the account (Viber: writing to a bot subscribes)
    subscribes_on_message: bool = False
    # the provider echoes our own sends back as webhooks, possibly before the send's acceptance is stored
    echoes_own_sends: bool = False
    # quick replies / buttons the provider shows natively; None: they are sent as numbered text
    buttons: ButtonLimits | None = None
    # the attachments the provider takes, all its rules (None: it takes none, and every attachment is refused)
    media: MediaRules | None = None

    def __post_init__(self) -> None:
        strangers = self.public - set(self.credentials)
        if strangers:
            raise ValueError(f"{self.name}: the public keys {sorted(strangers)} are not credentials")
        if self.address is not None and self.address not in self.public:
            raise ValueError(f"{self.name}: the address {self.address!r} must be a public credential")

    @property
    def name(self) -> str:
        """The registry name (the entry point's, and ``ChannelAccount.adapter_name``): the channel, or
        ``channel.provider`` when the channel has several providers (``whatsapp.twilio``)."""
        return registry_name(self.channel, self.provider)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaReference:
    """What a provider's webhook said of one attachment's bytes: its media id and/or a URL."""

    media_id: str | None = None
    url: str | None = None
    mime: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaLocation:
    """Where the bytes of an attachment can be fetched now: a URL and the headers that fetch must send
    (a bearer token, basic auth). ``mime`` when the provider's lookup said it."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    mime: str | None = None


@runtime_checkable
class MediaSource(Protocol):
    """An adapter that knows how to reach its provider's inbound media (hub/media_fetch.py uses it)."""

    async def locate_media(self, media: MediaReference) -> MediaLocation:
        """The URL to GET now, with its headers (one provider call at most, as WhatsApp Cloud's media lookup).
        Raise ProviderRejected (permanent: gone, refused) or ProviderUnavailable (transient)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """An agent's file the hub keeps, opened for an adapter that uploads it to its provider: its facts and
    its bytes as a stream (read once, in chunks; never whole)."""

    key: str  # the content's identity (its SHA-256): the same bytes have the same key
    mime: str
    size: int
    file_name: str | None
    chunks: AsyncIterator[bytes] = field(repr=False)


class FileOpener(Protocol):
    """Opens the bytes of an attachment the hub keeps (an agent's upload); yields None when the hub has no
    bytes for it (a public ``url`` the agent gave, an expired or removed file): the adapter sends the link."""

    def __call__(self, attachment: Attachment) -> AbstractAsyncContextManager[StoredFile | None]: ...


@runtime_checkable
class FileUploader(Protocol):
    """An adapter whose provider takes a file's bytes better than a link (WhatsApp Cloud's media upload):
    the hub hands it the opener once the adapters exist (hub/bootstrap.py)."""

    def use_files(self, opener: FileOpener) -> None:
        """Keep ``opener`` for the sends that carry an agent's file."""


class AdapterFactory(Protocol):
    def __call__(self, account: ChannelAccount, session: aiohttp.ClientSession) -> ChannelAdapter: ...


class AdapterClass(AdapterFactory, Protocol):
    """What an entry point of ``channelhub.adapters`` names: a factory that declares its provider's facts."""

    facts: ClassVar[ProviderFacts]
