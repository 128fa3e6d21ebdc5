"""``[[bots]]`` is validated strictly: each mistake is a ConfigError naming the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hub.errors import WHSEC_RECIPE, ConfigError
from hub.settings import Settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def webhook(**keys: str) -> str:
    values = {"id": '"faq"', "kind": '"webhook"', "queues": '["support"]', "url": '"http://127.0.0.1:9/bot"'}
    values["secret"] = f'"{SECRET}"'
    values.update(keys)
    return "[[bots]]\n" + "\n".join(f"{k} = {v}" for k, v in values.items() if v != "") + "\n"


def test_a_webhook_bot_with_defaults(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(webhook())
    (bot,) = settings.bots
    assert bot.kind == "webhook"
    assert bot.handoff_after == 60
    assert "agent" in bot.keywords()
    assert SECRET in settings.secrets()


def test_the_account_of_a_bots_queue_names_the_bot(make_settings: Callable[..., Settings]) -> None:
    account = """
[[accounts]]
id = "wa"
channel = "whatsapp"
provider = "twilio"
queue = "support"
account_sid = "AC1"
auth_token = "t"
from_number = "+15550001111"
"""
    settings = make_settings(webhook() + account)
    assert settings.account("wa").bot == "faq"


def test_tokens_may_come_from_the_environment(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(webhook(token='"env:FAQ_TOKEN"'), env={"FAQ_TOKEN": "a-long-enough-bot-token"})
    assert settings.bot("faq").token == "a-long-enough-bot-token"
    assert "a-long-enough-bot-token" in settings.secrets()


def test_keywords_per_language(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(webhook(handoff_keywords='{ en = ["Agent"], cs = ["operátor"] }'))
    assert settings.bot("faq").keywords() == frozenset({"agent", "operátor"})


@pytest.mark.parametrize(
    ("keys", "key"),
    [
        ({"kind": '"telepathy"'}, "bots[0].kind"),
        ({"queues": '["nowhere"]'}, "bots[0].queues"),
        ({"queues": "[]"}, "bots[0].queues"),
        ({"url": ""}, "bots[0].url"),
        ({"url": '"ftp://x"'}, "bots[0].url"),
        ({"secret": ""}, "bots[0].secret"),
        ({"secret": '"plain-secret"'}, "bots[0].secret"),
        ({"secret": '"whsec_not*base64"'}, "bots[0].secret"),
        ({"secret": '"whsec_c2hvcnQ="'}, "bots[0].secret"),
        ({"token": '"short"'}, "bots[0].token"),
        ({"handoff_after": "0"}, "bots[0].handoff_after"),
        ({"handoff_after": '"soon"'}, "bots[0].handoff_after"),
        ({"handoff_keywords": '"agent"'}, "bots[0].handoff_keywords"),
        ({"handoff_keywords": '{ "not a language" = ["x"] }'}, "bots[0].handoff_keywords.not a language"),
        ({"flow": '"x.toml"'}, "bots[0].flow"),
        ({"colour": '"red"'}, "bots[0].colour"),
        ({"id": '"bad id"'}, "bots[0].id"),
    ],
)
def test_mistakes_name_their_key(make_settings: Callable[..., Settings], keys: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(webhook(**keys))
    assert caught.value.key == key


@pytest.mark.parametrize("secret", ["", '"plain-secret"', '"whsec_c2hvcnQ="'])
def test_a_bad_or_missing_secret_says_how_to_make_one(make_settings: Callable[..., Settings], secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(webhook(secret=secret))
    assert caught.value.key == "bots[0].secret"
    assert caught.value.problem.endswith("; " + WHSEC_RECIPE)


def test_one_queue_has_one_bot(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(webhook() + webhook(id='"other"'))
    assert caught.value.key == "bots[1].queues"


def test_a_rules_bot_needs_a_valid_flow(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    flow = tmp_path / "flow.toml"
    flow.write_text('[[menu]]\ntitle = "Sales"\nqueue = "nowhere"\n', encoding="utf-8")
    config = f'[[bots]]\nid = "r"\nkind = "rules"\nqueues = ["support"]\nflow = "{flow}"\n'
    with pytest.raises(ConfigError) as caught:
        make_settings(config)
    assert caught.value.key == "bots[0].flow.menu[0].queue"
    flow.write_text('[[menu]]\ntitle = "Sales"\nqueue = "sales"\n', encoding="utf-8")
    (bot,) = make_settings(config).bots
    assert bot.flow is not None
    assert bot.flow.menu[0].payload == "sales"
    missing = config.replace(str(flow), str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError) as caught:
        make_settings(missing)
    assert caught.value.key == "bots[0].flow"
