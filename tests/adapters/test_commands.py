"""``channelhub channels check|connect`` and ``channelhub emulate say`` against the emulators over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.emulators.core import EmulatorState, build_emulator_app
from adapters.emulators.viber import WEBHOOKS
from hub.api.server import create_app
from hub.cli import main
from hub.settings import Settings, load_settings
from hub.store import Store
from hub.store.tables import messages

VIBER_USER = "01234567890A="


def config_text(hub_url: str, emulator_url: str, database_url: str, *, twilio_token: str = "twilio-auth-token") -> str:
    return f"""
[server]
public_url = "{hub_url}"

[database]
url = "{database_url}"

[demo]
emulator_port = {emulator_url.rsplit(":", 1)[1]}

[[queues]]
id = "support"
name = "Support"

[[accounts]]
id = "wa-twilio"
channel = "whatsapp"
provider = "twilio"
queue = "support"
api_base = "{emulator_url}/twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "{twilio_token}"
from_number = "+14155238886"

[[accounts]]
id = "viber-main"
channel = "viber"
queue = "support"
api_base = "{emulator_url}/viber/pa"
auth_token = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
name = "Acme Support"
"""


@dataclass
class Running:
    config: Path
    settings: Settings
    emulator_url: str
    state: EmulatorState
    store: Store
    emulator_app: web.Application


@pytest.fixture
async def running(
    store: Store,
    tmp_path: Path,
    aiohttp_server: Callable[..., Any],
    database_url: str,
    unused_tcp_port_factory: Callable[[], int],
) -> Running:
    """The hub and the emulators, both listening; a configuration file that names them."""
    hub_port, emulator_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    hub_url, emulator_url = f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{emulator_port}"
    config = tmp_path / "channelhub.toml"
    config.write_text(config_text(hub_url, emulator_url, database_url), encoding="utf-8")
    settings = load_settings(config, {})
    state = EmulatorState(settings, hub_url, callback_delay=0)
    emulator_app = build_emulator_app(state)
    await aiohttp_server(emulator_app, port=emulator_port)
    hub: TestServer = await aiohttp_server(create_app(settings, store=store), port=hub_port)
    assert hub.port == hub_port
    return Running(
        config=config, settings=settings, emulator_url=emulator_url, state=state, store=store, emulator_app=emulator_app
    )


async def run(*argv: str) -> int:
    """The CLI runs its own event loop, so it runs in a thread beside the servers."""
    return await asyncio.to_thread(main, list(argv))


async def inbound(store: Store, account_id: str) -> list[Any]:
    async with store.read() as connection:
        query = select(messages).where(messages.c.account_id == account_id).order_by(messages.c.id)
        return list((await connection.execute(query)).all())


async def test_channels_check_reports_each_account_ok(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run("channels", "check", "--config", str(running.config)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("wa-twilio (whatsapp.twilio) ok: Twilio account")
    assert lines[1].startswith("viber-main (viber) ok: Viber bot Acme Support")


async def test_channels_check_fails_when_a_credential_is_wrong(
    running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    text = running.config.read_text(encoding="utf-8").replace('"twilio-auth-token"', '"not-the-token"')
    bad.write_text(text, encoding="utf-8")
    assert await run("channels", "check", "--config", str(bad)) == 1
    out = capsys.readouterr().out
    assert "wa-twilio (whatsapp.twilio) FAILED: Twilio refused our credentials" in out
    assert "viber-main (viber) ok" in out


async def test_channels_connect_registers_the_viber_webhook(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("channels", "connect", "viber", "viber-main", "--config", str(running.config)) == 0
    expected = f"{running.settings.server.public_url}/webhooks/viber/viber-main"
    assert capsys.readouterr().out.strip() == f"viber-main: Viber now calls {expected}"
    assert running.emulator_app[WEBHOOKS]["viber-main"] == expected


async def test_channels_connect_refuses_an_account_that_is_not_viber(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("channels", "connect", "viber", "wa-twilio", "--config", str(running.config)) == 2
    assert "not Viber" in capsys.readouterr().err


async def test_emulate_say_makes_a_viber_user_write_to_the_hub(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["emulate", "say", "--config", str(running.config), "--channel", "viber", "--from", VIBER_USER]
    assert await run(*argv, "--repeat", "2", "Ahoj, kde je zásilka?") == 0
    assert '"status": 200' in capsys.readouterr().out
    (message,) = await inbound(running.store, "viber-main")
    assert message.text == "Ahoj, kde je zásilka?"


async def test_emulate_say_on_whatsapp_through_the_emulator_control_api(running: Running) -> None:
    argv = ["emulate", "say", "--config", str(running.config), "--emulator", running.emulator_url]
    assert await run(*argv, "--channel", "whatsapp", "--from", "+420601234567", "--name", "Jana", "Hello") == 0
    (message,) = await inbound(running.store, "wa-twilio")
    assert message.text == "Hello"
    assert running.state.window_open("wa-twilio", "+420601234567")


async def test_emulate_say_direct_posts_the_signed_webhook_without_an_emulator(running: Running) -> None:
    argv = ["emulate", "say", "--config", str(running.config), "--direct", "--account", "wa-twilio"]
    assert await run(*argv, "--from", "+420601234568", "Straight to the hub") == 0
    (message,) = await inbound(running.store, "wa-twilio")
    assert message.text == "Straight to the hub"


# secrets of everything but the Twilio account, each kept in a variable the tests below leave unset
_OTHER_SECRETS = """
[metrics]
token = "env:CHANNELHUB_TEST_UNSET_METRICS_TOKEN"

[[accounts]]
id = "viber-other"
channel = "viber"
queue = "support"
auth_token = "env:CHANNELHUB_TEST_UNSET_VIBER_TOKEN"
"""


def _secrets_from_environment(running: Running, path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The running configuration with the Twilio token kept in a variable (set) and the secrets of other
    parts of the configuration in variables that are not set; the database URL too."""
    text = running.config.read_text(encoding="utf-8").replace('"twilio-auth-token"', '"env:CHANNELHUB_TEST_TWILIO"')
    text = text.replace(f'url = "{running.settings.database_url}"', 'url = "env:CHANNELHUB_TEST_UNSET_DATABASE"')
    path.write_text(text + _OTHER_SECRETS, encoding="utf-8")
    monkeypatch.setenv("CHANNELHUB_TEST_TWILIO", "twilio-auth-token")
    return path


async def test_emulate_say_reads_only_the_secrets_of_the_account_it_speaks_as(
    running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _secrets_from_environment(running, tmp_path / "env.toml", monkeypatch)
    direct = ["emulate", "say", "--config", str(config), "--direct", "--account", "wa-twilio"]
    assert await run(*direct, "--from", "+420601234571", "Signed with the one secret") == 0
    through = ["emulate", "say", "--config", str(config), "--emulator", running.emulator_url]
    assert await run(*through, "--channel", "whatsapp", "--from", "+420601234571", "Through the emulator") == 0
    assert [m.text for m in await inbound(running.store, "wa-twilio")] == [
        "Signed with the one secret",
        "Through the emulator",
    ]
    assert "configuration error" not in capsys.readouterr().err
    # serve still reads everything: the first unset reference stops it
    with pytest.raises(SystemExit) as exit_:
        await run("serve", "--config", str(config))
    assert exit_.value.code == 2
    assert "CHANNELHUB_TEST_UNSET_" in capsys.readouterr().err


async def test_emulate_say_names_the_unset_variable_of_its_own_account(
    running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _secrets_from_environment(running, tmp_path / "env.toml", monkeypatch)
    monkeypatch.delenv("CHANNELHUB_TEST_TWILIO")
    argv = ["emulate", "say", "--config", str(config), "--direct", "--channel", "whatsapp", "--from", "+420601234572"]
    with pytest.raises(SystemExit) as exit_:
        await run(*argv, "Unsigned")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "auth_token: refers to environment variable CHANNELHUB_TEST_TWILIO which is not set" in err
    assert "UNSET" not in err
    assert await inbound(running.store, "wa-twilio") == []


@pytest.mark.parametrize("direct", [True, False])
async def test_emulate_say_with_a_kind_the_provider_lacks_says_which_it_has(
    running: Running, capsys: pytest.CaptureFixture[str], direct: bool
) -> None:
    argv = ["emulate", "say", "--config", str(running.config), "--account", "wa-twilio", "--from", "+420601234570"]
    how = ["--direct"] if direct else ["--emulator", running.emulator_url]
    assert await run(*argv, *how, "--kind", "quick_reply", "--payload", "yes", "Yes") == 1  # Twilio's is "button"
    answer = json.loads(capsys.readouterr().out)
    assert answer["error"]["code"] == "bad_request"
    assert answer["error"]["message"].startswith("unknown kind 'quick_reply' for WhatsApp (Twilio); it plays text,")
    assert answer["error"]["message"].endswith(", location, button")
    assert await inbound(running.store, "wa-twilio") == []


async def test_a_repeat_out_of_bounds_is_refused_before_anything_is_posted(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    # a repeat of 100000000 used to post webhooks until the process was killed; a list was a 500
    argv = ["emulate", "say", "--config", str(running.config), "--account", "viber-main", "--from", VIBER_USER]
    for how in (["--direct"], ["--emulator", running.emulator_url]):
        assert await run(*argv, *how, "--repeat", "101", "x") == 2
        assert capsys.readouterr().err.strip() == "channelhub: --repeat must be from 1 to 100"
    async with aiohttp.ClientSession() as session:
        for repeat in (101, 0, [2], "2", True):
            request = {"account": "viber-main", "from": VIBER_USER, "text": "x", "repeat": repeat}
            async with session.post(f"{running.emulator_url}/_emulator/say", json=request) as refused:
                assert refused.status == 400, repeat
                assert (await refused.json())["error"]["code"] == "invalid_field"
    assert await inbound(running.store, "viber-main") == []


async def test_emulate_say_fails_when_nothing_listens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        config_text("http://127.0.0.1:9", "http://127.0.0.1:9", f"sqlite:///{tmp_path / 'x.db'}"), encoding="utf-8"
    )
    assert await run("emulate", "say", "--config", str(config), "--channel", "viber", "--from", VIBER_USER, "x") == 1
    assert "could not reach" in capsys.readouterr().err


async def test_emulate_say_presses_a_button(running: Running) -> None:
    argv = ["emulate", "say", "--config", str(running.config), "--emulator", running.emulator_url]
    pressed = ("--kind", "button", "--payload", "confirm_yes", "Yes")
    assert await run(*argv, "--channel", "whatsapp", "--from", "+420601234569", *pressed) == 0
    direct = ["emulate", "say", "--config", str(running.config), "--direct", "--account", "wa-twilio"]
    assert await run(*direct, "--from", "+420601234569", "--kind", "button", "--payload", "call_me", "Call me") == 0
    first, second = await inbound(running.store, "wa-twilio")
    assert (first.text, first.payload) == ("Yes", "confirm_yes")
    assert (second.text, second.payload) == ("Call me", "call_me")


async def test_emulate_say_presses_a_viber_keyboard_button(running: Running) -> None:
    """A Viber reply button sends its payload (``ActionBody``) as the message's text, the title is not sent."""
    argv = ["emulate", "say", "--config", str(running.config), "--emulator", running.emulator_url]
    assert await run(*argv, "--channel", "viber", "--from", VIBER_USER, "--payload", "hours") == 0
    direct = ["emulate", "say", "--config", str(running.config), "--direct", "--account", "viber-main"]
    assert await run(*direct, "--from", VIBER_USER, "--payload", "returns", "Returns") == 0
    first, second = await inbound(running.store, "viber-main")
    assert (first.text, second.text) == ("hours", "returns")
