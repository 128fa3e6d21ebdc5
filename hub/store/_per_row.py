"""Core statements run once per row of a batch with plain tuples (ADR 0017).

SQLAlchemy's ``executemany`` builds and type-processes a parameter dictionary for every row, and an
expanding ``IN`` is rendered (and prepared by the database) anew for every length. For the outbox's
acceptances (two updates per message) that was a measurable share of the hub's own work: callgrind counted
a round of 1,000 messages at 507M instructions before and 493M after. A ``PerRow`` statement is still
written with Core; it is compiled once per dialect, and each row's values go to the driver as a tuple
through ``exec_driver_sql`` (the engine's transaction, connection and error handling unchanged), with the
columns' own type processing applied where a value needs it (timestamps on SQLite).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["PerRow"]

_Build = Callable[[Sequence[Any]], tuple[Any, ...]]


class PerRow:
    """``statement`` with bound parameters ``names``; ``await run(connection, rows)`` executes it once per
    row, each row's values given in ``names`` order. Other bound parameters keep the values the statement
    was built with."""

    def __init__(self, statement: Any, names: Sequence[str]) -> None:
        self._statement = statement
        self._names = tuple(names)
        self._compiled: dict[str, tuple[str, _Build]] = {}

    async def run(self, connection: AsyncConnection, rows: Iterable[Sequence[Any]]) -> None:
        sql, build = self._for(connection.dialect)
        batch = [build(row) for row in rows]
        if batch:
            await connection.exec_driver_sql(sql, batch)

    def _for(self, dialect: Dialect) -> tuple[str, _Build]:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _compile(self._statement, self._names, dialect)
        return found


def _compile(statement: Any, names: tuple[str, ...], dialect: Dialect) -> tuple[str, _Build]:
    compiled = statement.compile(dialect=dialect)
    positions = compiled.positiontup
    if positions is None:  # pragma: no cover (both engines' drivers take positional parameters)
        raise ValueError(f"{dialect.name} does not bind positionally")
    missing = set(names) - set(positions)
    if missing:
        raise ValueError(f"the statement has no parameters {sorted(missing)}")
    # each row's values, type-processed once per name (a name may be bound at several places), then the
    # statement's constants; ``arrange`` picks them in the statement's order (C, not a Python loop per value)
    processors: list[Callable[[Any], Any] | None] = [None] * len(names)
    constants: list[Any] = []
    order: list[int] = []
    for name in positions:
        bind = compiled.binds[name]
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in names:
            processors[names.index(name)] = processor
            order.append(names.index(name))
        else:
            value = bind.effective_value
            constants.append(processor(value) if processor else value)
            order.append(len(names) + len(constants) - 1)
    arrange = operator.itemgetter(*order)
    processed = tuple((index, processor) for index, processor in enumerate(processors) if processor is not None)

    def build(row: Sequence[Any]) -> tuple[Any, ...]:
        values = [*row, *constants]
        for index, processor in processed:
            values[index] = processor(values[index])
        picked = arrange(values)
        return picked if len(order) > 1 else (picked,)

    return str(compiled), build
