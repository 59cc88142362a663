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
    for batch in _batches(rows, BATCH):
        connection.execute(insert(table), list(batch))
    return len(rows)


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
