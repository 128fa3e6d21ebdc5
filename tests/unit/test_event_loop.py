"""[server] event_loop: which loop ``serve`` runs on, chosen by name and refused by name when wrong."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

import pytest

from hub.errors import ConfigError
from hub.event_loop import check_event_loop, new_event_loop
from hub.settings import ServerSettings, Settings


def test_serve_runs_on_asyncios_loop_unless_told_otherwise(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().server.event_loop == "asyncio"
    assert make_settings(env={"CHANNELHUB_SERVER_EVENT_LOOP": "uvloop"}).server.event_loop == "uvloop"


@pytest.mark.parametrize(("name", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_each_name_makes_its_own_kind_of_loop_and_it_runs(name: str, module: str) -> None:
    loop = new_event_loop(name)
    try:
        assert type(loop).__module__.partition(".")[0] == module
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_an_unknown_loop_is_refused_with_the_names_that_work(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match=r"server\.event_loop.*'asyncio', 'uvloop'.*'trio'"):
        make_settings(env={"CHANNELHUB_SERVER_EVENT_LOOP": "trio"})


def test_uvloop_asked_for_but_not_installed_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # an optional dependency (and none on Windows): the setting says what to do instead of failing at start-up
    monkeypatch.setitem(sys.modules, "uvloop", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "uvloop" else object())
    assert check_event_loop("uvloop") == (
        'uvloop is not installed: install it (pip install "channelhub[uvloop]"; not on Windows) or use "asyncio"'
    )
    assert check_event_loop("asyncio") is None


async def test_the_tests_run_on_the_loop_serve_runs_on() -> None:
    # tests/conftest.py: production's loop unless CHANNELHUB_TEST_EVENT_LOOP says otherwise
    expected = os.environ.get("CHANNELHUB_TEST_EVENT_LOOP") or ServerSettings().event_loop
    assert type(asyncio.get_running_loop()).__module__.partition(".")[0] == expected
