"""Bulk writes that work the same on SQLite and PostgreSQL.

Row-at-a-time ORM inserts cost ~100 µs a row; these go through executemany (SQLite) or
insertmanyvalues (psycopg), which is what makes a million-row import or seed feasible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects import postgresql, sqlite

BATCH = 5_000


def _batches(rows: Sequence[Mapping[str, Any]], size: int) -> Iterable[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Plain INSERT of many rows; constraint violations raise."""
    if not rows:
        return 0
    if connection.dialect.name == "sqlite":
        return _sqlite_executemany(connection, table, rows, "")
    for batch in _batches(rows, BATCH):
        connection.execute(insert(table), list(batch))
    return len(rows)


def _sqlite_executemany(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], tail: str
) -> int:
    """SQLite fast path: the driver's executemany on tuples, values bound by the columns' own types.

    Three times faster than Core executemany of dicts (measured: ~130k vs ~44k usage rows/s),
    with the same stored values because each column's bind processor still runs.
    """
    given = list(rows[0])
    defaults = _python_defaults(table, given)
    names = given + list(defaults)
    quoted = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("?" for _ in names)
    sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks}){tail}'
    processors = [table.c[n].type._cached_bind_processor(connection.dialect) for n in names]
    for batch in _batches(rows, 50_000):
        columns = []
        for name, process in zip(names, processors, strict=True):
            values = [defaults[name]] * len(batch) if name in defaults else [row[name] for row in batch]
            columns.append([None if v is None else process(v) for v in values] if process else values)
        connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))
    return len(rows)


def _python_defaults(table: Table, given: list[str]) -> dict[str, Any]:
    """Column defaults SQLAlchemy would apply in Python (e.g. `updated_at=utcnow`), once per call."""
    values: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or default is None or not hasattr(default, "arg"):
            continue
        if default.is_scalar:
            values[column.name] = default.arg
        elif default.is_callable:
            values[column.name] = default.arg(None)  # SQLAlchemy wraps zero-argument callables
    return values


def upsert_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    *,
    update: bool = True,
) -> int:
    """INSERT … ON CONFLICT (key) DO UPDATE (or DO NOTHING): re-importing a file changes nothing."""
    if not rows:
        return 0
    dialect = connection.dialect.name
    if dialect == "sqlite":
        columns = [c for c in rows[0] if c not in key]
        conflict = ", ".join(f'"{k}"' for k in key)
        if update and columns:
            assignments = ", ".join(f'"{c}" = excluded."{c}"' for c in columns)
            tail = f" ON CONFLICT ({conflict}) DO UPDATE SET {assignments}"
        else:
            tail = f" ON CONFLICT ({conflict}) DO NOTHING"
        return _sqlite_executemany(connection, table, rows, tail)
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:  # pragma: no cover - the two supported backends
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    columns = [c for c in rows[0] if c not in key]
    if update and columns:
        statement = statement.on_conflict_do_update(
            index_elements=list(key), set_={c: statement.excluded[c] for c in columns}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key))
    for batch in _batches(rows, BATCH):
        connection.execute(statement, list(batch))
    return len(rows)
