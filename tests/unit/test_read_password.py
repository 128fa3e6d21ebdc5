"""The ``agents`` commands' password from a pipe: one line is the password; nothing at all says how to give one."""

from __future__ import annotations

import io

import pytest

from hub.agent_commands import PasswordError, read_password


def test_a_piped_line_is_the_password() -> None:
    assert read_password(io.StringIO("anna-secret-1\n")) == "anna-secret-1"


def test_nothing_piped_in_says_how_to_give_a_password() -> None:
    # < /dev/null used to answer "the password needs at least 8 characters", for a password never given
    with pytest.raises(PasswordError) as refused:
        read_password(io.StringIO(""))
    assert str(refused.value).startswith("no password on standard input: run the command at a terminal")


def test_an_empty_line_is_a_password_too_short() -> None:
    with pytest.raises(PasswordError, match="at least 8 characters"):
        read_password(io.StringIO("\n"))
