"""Adapter test helpers.

aioresponses 0.7.9 (the latest release) builds ``ClientResponse`` without the
``stream_writer`` argument that aiohttp 3.14 requires (aioresponses issue #289).
Until a fixed release exists, every test here gets a response class that
supplies a finished writer, so mocked responses build as before.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse


class _CompatClientResponse(ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture(autouse=True)
def _aioresponses_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioresponses.core, "ClientResponse", _CompatClientResponse)
