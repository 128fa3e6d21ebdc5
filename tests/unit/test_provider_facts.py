"""Provider facts: each adapter class declares its provider's facts, and the settings validate accounts with them.

A fifth adapter installed by hand (``tests.fakes.RelayAdapter``, a WhatsApp provider nothing in hub/ names) is
configured like the real ones; the real adapters' declarations match what the README documents."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.model import Channel, MessageKind
from hub.ports import MB, MediaRules, ProviderFacts
from hub.registry import adapter_classes, adapter_factories, adapters_installed, provider_facts
from hub.settings import Settings
from tests.fakes import RecordingAdapter, RelayAdapter

README = Path(__file__).resolve().parents[2] / "README.md"

RELAY = """
[[accounts]]
id = "relay-main"
channel = "whatsapp"
provider = "relay"
queue = "support"
relay_key = "rk-public"
relay_secret = "rs-very-secret"
line = "+15550002222"
"""


# ------------------------------------------------------------- a fifth adapter


def test_an_installed_adapter_s_facts_define_its_accounts(make_settings: Callable[..., Settings]) -> None:
    with adapters_installed(RelayAdapter):
        settings = make_settings(RELAY)
        secrets = settings.secrets()
    assert "rs-very-secret" in secrets
    assert not {"rk-public", "+15550002222"} & secrets
    # without its facts every credential counts as a secret, to be safe
    assert {"rk-public", "+15550002222", "rs-very-secret"} <= settings.secrets()
    account = settings.account("relay-main")
    assert (account.channel, account.provider, account.adapter_name) == (Channel.WHATSAPP, "relay", "whatsapp.relay")
    assert account.credentials == {"relay_key": "rk-public", "relay_secret": "rs-very-secret", "line": "+15550002222"}
    assert account.api_base == "https://relay.example/v2"
    assert account.subscribes_on_message
    assert account.echoes_own_sends


@pytest.mark.parametrize(
    ("toml", "key", "message"),
    [
        (RELAY.replace('relay_secret = "rs-very-secret"\n', ""), "accounts[0].relay_secret", "is required"),
        (RELAY + 'page_id = "1234"\n', "accounts[0].page_id", "unknown key"),
        (RELAY + 'api_base = "ftp://relay"\n', "accounts[0].api_base", "is not an http(s) URL"),
        (RELAY.replace('"relay"', '"relayed"'), "accounts[0].provider", "'relayed' is not one of cloud, relay, twilio"),
    ],
)
def test_an_installed_adapter_s_facts_validate_its_accounts(
    make_settings: Callable[..., Settings], toml: str, key: str, message: str
) -> None:
    with adapters_installed(RelayAdapter), pytest.raises(ConfigError) as caught:
        make_settings(toml)
    assert caught.value.key == key
    assert message in str(caught.value)


def test_an_account_of_an_adapter_that_is_not_installed_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(RELAY)
    assert caught.value.key == "accounts[0].provider"
    assert "'relay' is not one of cloud, twilio" in str(caught.value)


def test_an_api_base_of_the_account_wins_over_the_declared_default(make_settings: Callable[..., Settings]) -> None:
    with adapters_installed(RelayAdapter):
        settings = make_settings(RELAY + 'api_base = "http://127.0.0.1:9/relay/"\n')
    assert settings.account("relay-main").api_base == "http://127.0.0.1:9/relay"


def test_an_adapter_installed_by_hand_is_in_the_registry_only_inside_the_block() -> None:
    with adapters_installed(RelayAdapter):
        assert provider_facts()["whatsapp.relay"] is RelayAdapter.facts
        assert adapter_classes()["whatsapp.relay"] is RelayAdapter
        assert adapter_factories()["whatsapp.relay"] is RelayAdapter
    assert "whatsapp.relay" not in provider_facts()
    assert "whatsapp.relay" not in adapter_classes()
    assert "whatsapp.relay" not in adapter_factories()


def test_the_registry_refuses_an_adapter_without_facts_or_a_name_taken() -> None:
    with pytest.raises(TypeError, match=r"declares no hub\.ports\.ProviderFacts"), adapters_installed(RecordingAdapter):  # type: ignore[arg-type]
        pass
    with pytest.raises(ValueError, match="already installed: viber"), adapters_installed(adapter_classes()["viber"]):
        pass
    assert adapter_classes()["viber"].facts.name == "viber"


def test_facts_refuse_a_public_key_or_address_that_is_not_a_credential() -> None:
    with pytest.raises(ValueError, match="not credentials"):
        ProviderFacts(
            channel=Channel.VIBER, provider="viber", credentials=("a",), api_base="https://x", public=frozenset({"b"})
        )
    with pytest.raises(ValueError, match="must be a public credential"):
        ProviderFacts(channel=Channel.VIBER, provider="viber", credentials=("a",), api_base="https://x", address="a")


# ------------------------------------------------------------ the real adapters


def _documented_credentials() -> dict[str, tuple[str, ...]]:
    """The README's list of each provider's credentials, by registry name (``whatsapp/twilio``: ``whatsapp.twilio``)."""
    found = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s+- (messenger|whatsapp/twilio|whatsapp/cloud|viber): (.*)$", line)
        if match:
            found[match.group(1).replace("/", ".")] = tuple(re.findall(r"`([a-z_]+)`", match.group(2)))
    return found


def test_each_adapter_declares_the_credentials_the_readme_documents() -> None:
    documented = _documented_credentials()
    assert set(documented) == {"messenger", "whatsapp.twilio", "whatsapp.cloud", "viber"}
    assert {name: facts.credentials for name, facts in provider_facts().items()} == documented


def test_the_readme_s_channels_and_providers_are_the_installed_ones() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    match = re.search(r"`channel` \(([^)]*)\), `provider` \(whatsapp: ([^)]*)\)", text)
    assert match is not None
    channels = set(re.findall(r"`([a-z]+)`", match.group(1)))
    whatsapp = set(re.findall(r"`([a-z]+)`", match.group(2)))
    assert {facts.channel.value for facts in provider_facts().values()} == channels == {c.value for c in Channel}
    assert {f.provider for f in provider_facts().values() if f.channel is Channel.WHATSAPP} == whatsapp


# what the settings and the admin API used to hold in tables: each adapter now says it itself
DECLARED = {
    "messenger": ("https://graph.facebook.com/v21.0", {"page_id"}, "page_id", False, True),
    "whatsapp.twilio": ("https://api.twilio.com", {"account_sid", "from_number"}, "from_number", False, False),
    "whatsapp.cloud": ("https://graph.facebook.com/v21.0", {"phone_number_id"}, "phone_number_id", False, False),
    "viber": ("https://chatapi.viber.com/pa", {"name"}, "name", True, False),
}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_each_adapter_declares_its_defaults_address_and_behaviour(
    name: str, make_settings: Callable[..., Settings]
) -> None:
    facts = provider_facts()[name]
    assert adapter_classes()[name].facts is facts
    assert facts.name == name
    api_base, public, address, subscribes, echoes = DECLARED[name]
    assert (facts.api_base, facts.public, facts.address) == (api_base, public, address)
    assert (facts.subscribes_on_message, facts.echoes_own_sends) == (subscribes, echoes)
    provider = f'provider = "{facts.provider}"\n' if facts.provider != facts.channel.value else ""
    keys = "".join(f'{key} = "v-{key}"\n' for key in facts.credentials)
    toml = f'[[accounts]]\nid = "a"\nchannel = "{facts.channel.value}"\n{provider}queue = "support"\n{keys}'
    account = make_settings(toml).account("a")
    assert account.adapter_name == name
    assert (account.api_base, account.subscribes_on_message, account.echoes_own_sends) == (api_base, subscribes, echoes)


# the largest size of each kind, in bytes, as docs/channels.md "Media limits" gives them (MB: 10^6 bytes)
MEDIA_SIZES = {
    "messenger": {"image": 8_000_000, "video": 25_000_000, "audio": 25_000_000, "file": 25_000_000},
    "whatsapp.cloud": {"image": 5_000_000, "video": 16_000_000, "audio": 16_000_000, "file": 100_000_000},
    "whatsapp.twilio": {"image": 5_000_000, "video": 16_000_000, "audio": 16_000_000, "file": 16_000_000},
    "viber": {"image": 1_000_000, "video": 26_000_000, "file": 50_000_000},
}


@pytest.mark.parametrize("name", sorted(MEDIA_SIZES))
def test_each_adapter_declares_its_media_rules_in_decimal_megabytes(name: str) -> None:
    media = provider_facts()[name].media
    assert media is not None
    assert {kind.value: most for kind, most in media.sizes.items()} == MEDIA_SIZES[name]
    assert media.per_message == 1


def test_whatsapp_through_twilio_takes_the_channel_s_media_rules_with_its_own_on_top() -> None:
    cloud, twilio = provider_facts()["whatsapp.cloud"].media, provider_facts()["whatsapp.twilio"].media
    assert cloud is not None
    assert twilio is not None
    assert set(twilio.sizes) == set(cloud.sizes)
    assert all(twilio.sizes[kind] <= most for kind, most in cloud.sizes.items())
    assert {k: v for k, v in twilio.types.items() if k is not MessageKind.FILE} == {
        k: v for k, v in cloud.types.items() if k is not MessageKind.FILE
    }
    assert cloud.types[MessageKind.FILE] is None
    assert "application/pdf" in (twilio.types[MessageKind.FILE] or ())
    assert twilio.uncaptioned == cloud.uncaptioned | {MessageKind.FILE}


def test_tightened_media_rules_only_lower_a_limit_and_never_add_a_kind() -> None:
    rules = MediaRules(sizes={MessageKind.IMAGE: 5 * MB, MessageKind.FILE: 100 * MB}, per_message=2)
    tighter = rules.tightened(
        sizes={MessageKind.IMAGE: 9 * MB, MessageKind.FILE: 16 * MB, MessageKind.VIDEO: 1 * MB},
        types={MessageKind.FILE: frozenset({"application/pdf"})},
        uncaptioned=frozenset({MessageKind.FILE}),
    )
    assert tighter == MediaRules(
        sizes={MessageKind.IMAGE: 5 * MB, MessageKind.FILE: 16 * MB},
        types={MessageKind.FILE: frozenset({"application/pdf"})},
        uncaptioned=frozenset({MessageKind.FILE}),
        per_message=2,
    )


def test_media_rules_refuse_file_types_for_a_kind_not_taken_or_no_attachment_per_message() -> None:
    with pytest.raises(ValueError, match="kinds not taken"):
        MediaRules(sizes={MessageKind.FILE: MB}, types={MessageKind.IMAGE: frozenset({"image/png"})})
    with pytest.raises(ValueError, match="at least 1"):
        MediaRules(sizes={MessageKind.FILE: MB}, per_message=0)
