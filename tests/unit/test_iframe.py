"""hub.iframe and its configuration: a page's address is built only from allowed parts.

Hostile values (a customer picks their own display name) must stay inside one query value or
path segment; a template that lets a variable choose the host is refused when the file is read.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hub.errors import ConfigError
from hub.iframe import IframeRefused, build_iframe_url, check_iframe_template
from hub.settings import load_settings

HOSTS = ("crm.example.com",)
TEMPLATE = "https://crm.example.com/lookup?name={customer_name}&phone={phone}&c={conversation_id}&v={bot.email}"


@pytest.mark.parametrize(
    "hostile",
    [
        "Ann&admin=1",
        "x#fragment",
        "../../admin",
        "a/b?c=d",
        "https://evil.example/",
        "@evil.example",
        "\u202eevil",
        "name with spaces % and +",
        "<script>alert(1)</script>",
        "\r\nSet-Cookie: a=b",
        "{phone}",
        "Zoë Łukasz 中文",
    ],
)
def test_a_hostile_value_stays_one_parameter_on_the_allowed_host(hostile: str) -> None:
    url = build_iframe_url(TEMPLATE, HOSTS, {"customer_name": hostile, "phone": "+420 777", "conversation_id": 5})
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.path, parts.fragment) == ("https", "crm.example.com", "/lookup", "")
    query = parse_qs(parts.query, keep_blank_values=True)
    assert query["name"] == [hostile]
    assert query["phone"] == ["+420 777"]
    assert query["c"] == ["5"]
    assert query["v"] == [""]  # no bot field collected: empty, never the raw placeholder
    assert set(query) == {"name", "phone", "c", "v"}


def test_a_value_in_the_path_stays_one_segment() -> None:
    url = build_iframe_url("https://crm.example.com/people/{contact_id}/card", HOSTS, {"contact_id": "../../x?y#z"})
    assert url == "https://crm.example.com/people/..%2F..%2Fx%3Fy%23z/card"


def test_bot_fields_fill_their_placeholders() -> None:
    url = build_iframe_url(TEMPLATE, HOSTS, {"bot.email": "ann@example.com"})
    assert parse_qs(urlsplit(url).query)["v"] == ["ann@example.com"]


@pytest.mark.parametrize(
    ("template", "code"),
    [
        ("https://evil.example/x?n={customer_name}", "iframe_host_not_allowed"),
        ("https://crm.example.com{phone}", "invalid_iframe_url"),
        ("https://crm.example.com.{phone}/", "invalid_iframe_url"),
        ("https://{customer_name}/x", "invalid_iframe_url"),
        ("{customer_name}", "invalid_iframe_url"),
        ("javascript:alert(1)//crm.example.com/", "invalid_iframe_url"),
        ("ftp://crm.example.com/x", "invalid_iframe_url"),
        ("https://user:pw@crm.example.com/x", "invalid_iframe_url"),
        ("https://crm.example.com/x?{password}", "unknown_iframe_variable"),
        ("https://crm.example.com/x?{bot.a-b}", "unknown_iframe_variable"),
        ("https://crm.example.com/x?{phone!r}", "invalid_iframe_url"),
        ("https://crm.example.com/x?{phone:>20}", "invalid_iframe_url"),
        ("https://crm.example.com/x?{phone", "invalid_iframe_url"),
    ],
)
def test_templates_that_could_leave_the_allowed_hosts_are_refused(template: str, code: str) -> None:
    with pytest.raises(IframeRefused) as refused:
        check_iframe_template(template, HOSTS)
    assert refused.value.code == code


def test_hosts_compare_without_case_or_trailing_dot() -> None:
    check_iframe_template("https://CRM.Example.com./x?p={phone}", ["crm.example.com"])


def _settings(tmp_path: Path, queue_lines: str) -> object:
    path = tmp_path / "hub.toml"
    path.write_text(f'[[queues]]\nid = "support"\nname = "Support"\n{queue_lines}\n', encoding="utf-8")
    return load_settings(path, {"CHANNELHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"})


def test_the_configuration_carries_a_checked_template(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, f'iframe_url = "{TEMPLATE}"\niframe_hosts = ["CRM.example.com", "other.example.com"]'
    )
    queue = settings.queues[0]  # type: ignore[attr-defined]
    assert queue.iframe_url == TEMPLATE
    assert queue.iframe_hosts == ("crm.example.com", "other.example.com")


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        ('iframe_url = "https://evil.example/x"\niframe_hosts = ["crm.example.com"]', "queues[0].iframe_hosts"),
        ('iframe_url = "https://crm.example.com/x"', "queues[0].iframe_hosts"),
        ('iframe_url = "https://crm.example.com/{secret}"\niframe_hosts = ["crm.example.com"]', "queues[0].iframe_url"),
        ('iframe_url = 5\niframe_hosts = ["crm.example.com"]', "queues[0].iframe_url"),
        ('iframe_url = "https://crm.example.com/"\niframe_hosts = [1]', "queues[0].iframe_hosts"),
    ],
)
def test_the_configuration_refuses_a_template_off_the_allow_list(tmp_path: Path, lines: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _settings(tmp_path, lines)
    assert key in str(refused.value)
