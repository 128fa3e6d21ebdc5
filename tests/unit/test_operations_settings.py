"""[metrics] and [audit]: read, overridable from the environment, and refused by name when wrong."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hub.errors import ConfigError
from hub.settings import Settings


def test_defaults_serve_metrics_to_loopback_and_keep_audit_a_year(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert (settings.metrics.token, settings.metrics.port, settings.metrics.host) == (None, None, "127.0.0.1")
    assert settings.audit.keep_days == 365


def test_the_token_from_the_environment_is_a_secret_the_logs_redact(make_settings: Callable[..., Settings]) -> None:
    token = "scrape-me-0123456789abcdef"
    settings = make_settings('[metrics]\ntoken = "env:SCRAPE"\nport = 9100\n', env={"SCRAPE": token})
    assert (settings.metrics.token, settings.metrics.port) == (token, 9100)
    assert token in settings.secrets()


def test_the_environment_sets_metrics_and_audit_keys(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(env={"CHANNELHUB_METRICS_PORT": "9200", "CHANNELHUB_AUDIT_KEEP_DAYS": "30"})
    assert (settings.metrics.port, settings.audit.keep_days) == (9200, 30)


def test_a_metrics_port_that_is_the_servers_own_is_refused_by_name(make_settings: Callable[..., Settings]) -> None:
    # both listeners would bind the same address: the second failed at start with a traceback
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        make_settings(env={"CHANNELHUB_SERVER_PORT": "9100", "CHANNELHUB_METRICS_PORT": "9100"})


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[metrics]\ntoken = "short"\n', "metrics.token"),
        ("[metrics]\nport = 70000\n", "metrics.port"),
        ('[metrics]\nport = "nine"\n', "metrics.port"),
        ('[metrics]\npath = "/m"\n', "metrics.path"),
        ("[audit]\nkeep_days = 0\n", "audit.keep_days"),
        ("[audit]\nsweep_seconds = 0\n", "audit.sweep_seconds"),
        ("[audit]\nforever = true\n", "audit.forever"),
    ],
)
def test_a_wrong_value_names_its_key(make_settings: Callable[..., Settings], toml: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_settings(toml)
