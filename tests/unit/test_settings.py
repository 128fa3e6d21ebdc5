"""Configuration: TOML, environment overrides, and one clear line naming a wrong key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.model import Channel
from hub.settings import Settings, load_settings

MESSENGER = """
[[accounts]]
id = "fb-main"
channel = "messenger"
queue = "support"
page_id = "1234"
app_secret = "s3cret-app"
verify_token = "verify-me"
page_access_token = "EAAB-token"
"""


def test_defaults_need_no_file() -> None:
    settings = load_settings(None, {})
    assert settings.database_url == "sqlite:///channelhub.db"
    assert settings.server.port == 8080
    assert settings.server.max_body_bytes == 1024 * 1024


def test_a_full_account_is_loaded_with_its_adapter_name(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(MESSENGER)
    account = settings.account("fb-main")
    assert account.channel is Channel.MESSENGER
    assert account.adapter_name == "messenger"
    assert account.credentials["page_id"] == "1234"
    assert account.api_base == "https://graph.facebook.com/v21.0"
    assert not account.reopen_after_close


def test_an_unknown_channel_is_refused_naming_channel(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(MESSENGER.replace('"messenger"', '"telegraph"'))
    assert caught.value.key == "accounts[0].channel"
    assert "telegraph" in str(caught.value)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        (MESSENGER.replace('app_secret = "s3cret-app"\n', ""), "accounts[0].app_secret"),
        (MESSENGER.replace('queue = "support"', 'queue = "nowhere"'), "accounts[0].queue"),
        (MESSENGER.replace('channel = "messenger"', 'channel = "whatsapp"'), "accounts[0].provider"),
        (MESSENGER + MESSENGER, "accounts[1].id"),
        (MESSENGER.replace("[[accounts]]", '[[accounts]]\nafter_close = "maybe"'), "accounts[0].after_close"),
        (MESSENGER.replace("[[accounts]]", '[[accounts]]\napi_base = "ftp://x"'), "accounts[0].api_base"),
        ('\n[[queues]]\nid = "q3"\noffer_timeout = -1\n', "queues[2].offer_timeout"),
        ('\n[[queues]]\nid = "q3"\nstatuses = ["lost"]\n', "queues[2].statuses"),
        ('\n[outbox]\nworkers = "many"\n', "outbox.workers"),
        ("\n[colour]\nred = 1\n", "colour"),
    ],
)
def test_a_wrong_value_names_its_key(make_settings: Callable[..., Settings], toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(toml)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("\n[outbox]\nworkrs = 2\n", "outbox.workrs: unknown key; did you mean 'workers'?"),
        ("\n[servr]\nport = 8080\n", "servr: unknown section; did you mean 'server'?"),
        ('\n[[bot]]\nid = "faq"\n', "bot: unknown section; did you mean 'bots'?"),
        (MESSENGER.replace("[[accounts]]", '[[accounts]]\npage_token = "x"'), "did you mean 'page_access_token'?"),
        (
            "\n[routing]\ncolour = 1\n",
            "routing.colour: unknown key; known: missed_offer_reason, tick_seconds, waiting_update_seconds",
        ),
    ],
)
def test_a_misspelt_key_or_section_is_refused_with_the_one_meant(
    make_settings: Callable[..., Settings], toml: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(toml)
    assert str(caught.value).endswith(message)


def test_environment_overrides_scalars_and_list_entries(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        MESSENGER,
        env={
            "CHANNELHUB_SERVER_PORT": "9123",
            "CHANNELHUB_DATABASE_URL": "postgresql://hub@db/hub",
            "CHANNELHUB_ACCOUNTS_FB_MAIN_APP_SECRET": "from-env",
            "CHANNELHUB_QUEUES_SUPPORT_OFFER_TIMEOUT": "45",
        },
    )
    assert settings.server.port == 9123
    assert settings.database_url == "postgresql://hub@db/hub"
    assert settings.account("fb-main").credentials["app_secret"] == "from-env"
    assert settings.queue("support").offer_timeout == 45


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (
            "CHANNELHUB_ACCOUNTS_FB_MAIM_APP_SECRET",
            "names no [[accounts]] entry (their ids, as the variable spells them: FB_MAIN)",
        ),
        (
            "CHANNELHUB_WEBHOOKS_OUT_CRM_PAUSE_AFTER",
            "names no [[webhooks_out]] entry (their ids, as the variable spells them: none in the file)",
        ),
    ],
)
def test_a_variable_for_an_entry_that_does_not_exist_is_refused(
    make_settings: Callable[..., Settings], variable: str, message: str
) -> None:
    # a misspelt id used to be ignored, leaving the file's value in force
    with pytest.raises(ConfigError) as caught:
        make_settings(MESSENGER, env={variable: "from-env"})
    assert (caught.value.key, caught.value.problem) == (variable, message)


def test_other_tools_variables_with_our_prefix_are_not_configuration(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        env={"CHANNELHUB_REQUIRE_POSTGRES": "1", "CHANNELHUB_TEST_POSTGRES_URL": "postgresql://x/y"}
    )
    assert settings.database_url == "sqlite:///channelhub.db"
    with pytest.raises(ConfigError) as caught:
        make_settings(env={"CHANNELHUB_SERVER_PROT": "1"})  # a typo inside a section we own is still refused
    assert caught.value.key == "server.prot"


def test_secrets_can_be_read_from_named_variables(make_settings: Callable[..., Settings]) -> None:
    toml = MESSENGER.replace('"EAAB-token"', '"env:FB_PAGE_TOKEN"')
    settings = make_settings(toml, env={"FB_PAGE_TOKEN": "EAAB-real"})
    assert settings.account("fb-main").credentials["page_access_token"] == "EAAB-real"
    with pytest.raises(ConfigError) as caught:
        make_settings(toml)
    assert caught.value.key == "accounts[0].page_access_token"


def test_secrets_are_listed_for_redaction_but_ids_are_not(make_settings: Callable[..., Settings]) -> None:
    secrets = make_settings(MESSENGER).secrets()
    assert {"s3cret-app", "verify-me", "EAAB-token"} <= secrets
    assert "1234" not in secrets


def test_a_missing_file_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, {})


def test_unsupported_database_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(env={"CHANNELHUB_DATABASE_URL": "mysql://x/y"})
    assert caught.value.key == "database.url"


def test_the_pool_size_comes_from_the_file_or_the_environment(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().database_pool_size is None  # the engine's default for its database
    assert make_settings("[database]\npool_size = 5\n").database_pool_size == 5
    assert make_settings(env={"CHANNELHUB_DATABASE_POOL_SIZE": "7"}).database_pool_size == 7


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_pool_size_that_is_not_a_positive_number_is_refused(
    make_settings: Callable[..., Settings], value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(env={"CHANNELHUB_DATABASE_POOL_SIZE": value})
    assert caught.value.key == "database.pool_size"


def test_serve_with_a_wrong_channel_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        '[[queues]]\nid = "support"\n' + MESSENGER.replace('"messenger"', '"telegraph"'), encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "accounts[0].channel" in lines[0]
    assert "telegraph" in lines[0]
