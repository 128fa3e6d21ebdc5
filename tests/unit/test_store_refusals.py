"""The store's refusals reach callers as the application's, with the same code, message and fields."""

from __future__ import annotations

import pytest

from hub.errors import Conflict, Invalid
from hub.store import _crud
from hub.usecases._store_refusals import store_refusals


def test_an_unknown_reference_becomes_invalid_named_after_its_field() -> None:
    with pytest.raises(Invalid) as caught, store_refusals():
        raise _crud.Invalid("statuses", "no status 'gone'")
    assert (caught.value.code, caught.value.message) == ("unknown_status", "no status 'gone'")
    assert caught.value.fields == {"field": "statuses"}
    assert caught.value.__cause__ is None


def test_a_clash_becomes_conflict_with_its_extra_fields() -> None:
    with pytest.raises(Conflict) as caught, store_refusals():
        raise _crud.Conflict("queue_in_use", "accounts route into it", accounts=["wa"])
    assert (caught.value.code, caught.value.fields) == ("queue_in_use", {"accounts": ["wa"]})


def test_a_cursor_the_store_did_not_hand_out_becomes_invalid_on_after() -> None:
    with pytest.raises(Invalid) as caught, store_refusals():
        raise _crud.BadCursor("not base64")
    assert caught.value.code == "invalid_cursor"
    assert caught.value.message == "'after' is not a cursor this API handed out"
    assert caught.value.fields == {"field": "after"}
    assert caught.value.__cause__ is None


def test_anything_else_passes_through_untouched() -> None:
    with pytest.raises(KeyError), store_refusals():
        raise KeyError("x")
