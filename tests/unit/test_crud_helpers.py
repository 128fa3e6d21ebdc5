"""The small helpers behind the CRUD store modules: cursors, LIKE patterns, phone spelling."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.store._crud import BadCursor, aware_datetime, decode_cursor, encode_cursor, like_pattern, normalise_phone


def test_cursor_round_trips_its_key() -> None:
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    cursor = encode_cursor("Nováková", 42, when.isoformat())
    assert decode_cursor(cursor, str, int, aware_datetime) == ["Nováková", 42, when]


@pytest.mark.parametrize(
    "cursor",
    ["", "not-a-cursor", encode_cursor(1, 2), encode_cursor("x"), encode_cursor("2026-03-02T09:00:00")],
)
def test_cursors_we_did_not_hand_out_are_refused(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(cursor, aware_datetime)


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("+420 777 123-456", "+420777123456"),
        ("00420 (777) 123.456", "+420777123456"),
        (" 777/123 456 ", "777123456"),
    ],
)
def test_phones_have_one_spelling(raw: str, stored: str) -> None:
    assert normalise_phone(raw) == stored
