"""IANA time zones by name: one rule for every place that reads a zone's name (the configuration, API fields,
provider payloads, templates).

``zoneinfo`` refuses a bad name in three ways: ``ZoneInfoNotFoundError`` (unknown), ``ValueError`` (an empty or
path-like name) and ``OSError`` (a folder of zones such as ``Europe``, or a name too long for a file name). A
reader that caught only the first two answered ``time_zone: "Europe"`` with a 500.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["named_zone", "zone_or_none"]


def named_zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name`` (``Europe/Prague``, ``UTC``); ValueError when there is none (an unknown
    name, a folder of zones such as ``Europe``, or no name at all)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not a known time zone (an IANA name such as Europe/Prague)") from None


def zone_or_none(name: object) -> ZoneInfo | None:
    """The zone ``name`` names, or None for anything else (a value read from stored or provider data)."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return named_zone(name)
    except ValueError:
        return None
