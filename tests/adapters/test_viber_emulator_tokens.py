"""The Viber emulator's message tokens differ from one run to the next: the hub keeps a customer's message once
per token, so a demo restarted on the same database must not hand out the tokens of its last run (the customer's
new messages would be taken for redeliveries and dropped)."""

from __future__ import annotations

import subprocess
import sys

_FIRST_TOKEN = "from adapters.emulators import viber; print(next(viber._TOKENS))"


def _first_token() -> int:
    done = subprocess.run([sys.executable, "-c", _FIRST_TOKEN], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_two_runs_of_the_emulator_give_different_message_tokens() -> None:
    first, second = _first_token(), _first_token()
    assert first != second
    for token in (first, second):
        assert 2**53 < token < 2**63  # Viber-sized: beyond a float's precision, within a signed 64-bit integer
