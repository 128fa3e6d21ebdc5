"""``POST /_emulator/media`` (keep a customer's file for a later ``say``) over real HTTP: a whole form is kept,
anything else is a 4xx that says how to send one, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from yarl import URL

from adapters.emulators.core import EmulatorState, build_emulator_app
from hub.settings import Settings

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
async def emulator(make_settings: Callable[..., Settings], aiohttp_client: Any) -> AsyncIterator[Any]:
    state = EmulatorState(make_settings(), "http://127.0.0.1:9", callback_delay=0)
    yield await aiohttp_client(build_emulator_app(state))
    await state.close()


async def test_a_file_in_a_form_is_kept_and_served(emulator: Any) -> None:
    form = aiohttp.FormData()
    form.add_field("file", PDF, filename="invoice.pdf", content_type="application/pdf")
    kept = await emulator.post("/_emulator/media", data=form)
    assert kept.status == 200
    answer = await kept.json()
    assert answer["mime"] == "application/pdf"
    served = await emulator.get(URL(answer["media_url"]).path)
    assert await served.read() == PDF


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Content-Type": "application/json"}, b"{}", 415, "unsupported_media_type"),
        ({}, b"", 415, "unsupported_media_type"),
        ({"Content-Type": "multipart/form-data"}, b"file=x", 400, "invalid_form"),  # no boundary
    ],
)
async def test_a_body_that_is_not_a_form_is_refused_saying_how_to_send_one(
    emulator: Any, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    refused = await emulator.post("/_emulator/media", data=body, headers=headers)
    assert refused.status == status
    assert (await refused.json())["error"]["code"] == code
