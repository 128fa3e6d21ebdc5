"""The store's refusals (``hub.store._crud``) as the application's: one translation, used by every use case.

A store function that finds a reference naming nothing raises ``_crud.Invalid`` (422, ``unknown_<field>``), one
that clashes with what is stored raises ``_crud.Conflict`` (409), and a page read given a cursor it did not hand
out raises ``_crud.BadCursor`` (422, ``invalid_cursor`` on ``after``). Use cases wrap such calls in
:func:`store_refusals` so the API and every other caller see ``hub.errors`` refusals only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hub.errors import Conflict, Invalid
from hub.store import _crud

__all__ = ["store_refusals"]


@contextmanager
def store_refusals() -> Iterator[None]:
    """Re-raise the store's ``Invalid``, ``Conflict`` and ``BadCursor`` as the application's, with code, message
    and fields."""
    try:
        yield
    except _crud.BadCursor:
        raise Invalid("invalid_cursor", "'after' is not a cursor this API handed out", field="after") from None
    except _crud.Invalid as exc:
        raise Invalid(exc.code, exc.message, field=exc.field) from None
    except _crud.Conflict as exc:
        raise Conflict(exc.code, exc.message, **exc.extra) from None
