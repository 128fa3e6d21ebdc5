"""What every CSV the API exports shares: a cell a spreadsheet would run as a formula is made text.

The audit log's export (hub/api/audit.py) and the reports' (hub/api/reports.py) write names, logins and
JSON that people and customers chose; a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is a formula to a spreadsheet, so it gets a leading apostrophe.
"""

from __future__ import annotations

__all__ = ["FORMULA_START", "as_text"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_text(cell: str) -> str:
    """``cell`` as a spreadsheet shows it and never runs it."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell
