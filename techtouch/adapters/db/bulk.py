"""Every bulk write of techtouch, the same on SQLite and PostgreSQL, on public SQLAlchemy API only.

Row-at-a-time ORM inserts cost ~100 µs a row; a million-row import or seed is feasible only in bulk.
Four ways in, for four kinds of callers:

* `insert_rows(connection, table, rows)`: a plain INSERT of dicts; constraint violations raise.
* `upsert_rows(connection, table, rows, key)`: INSERT … ON CONFLICT (key) DO UPDATE (or DO NOTHING),
  so that writing the same rows twice changes nothing (the CSV importer, health, digest, delivery).
  On PostgreSQL, COPY_MIN rows or more are COPYed into a temporary table first (`_copy_upsert`).
* `load_rows(connection, table, columns, rows)`: generated tuples already in their stored form,
  appended by COPY FROM STDIN on PostgreSQL (the seed's millions of usage rows).
* `insert_new(connection, table, rows, conflict, column)`, `insert_returning(…, returning)`,
  `insert_ignore(…)`: INSERT … ON CONFLICT DO NOTHING [RETURNING], the rows actually inserted
  (feedback events, suppressions, the journey recorder's enrollments and touches; unnest()ed
  arrays on PostgreSQL); `dialect_insert` gives the same ON CONFLICT-capable INSERT to the rest.
* `one_of(connection, column, values)`: `IN`, or `= ANY(array)` on PostgreSQL (claims, caps).
* `update_rows(connection, table, key, rows, where)`: UPDATE each row's columns where its key
  matches and `where` holds (delivery's marks: a launch day settles 800,000 touches at 1M accounts).

How the first two run, and why:

* PostgreSQL: Core `connection.execute(statement, rows)`, which psycopg runs as "insertmanyvalues"
  (one multi-row INSERT per 1,000 rows). Python-side column defaults are applied per row by SQLAlchemy.
* SQLite: SQLAlchemy compiles the statement (`sqlite.insert(...).on_conflict_do_update(...)`), each
  column's values are converted once per batch by the column type's public `bind_processor`, and the
  tuples go to the driver's executemany through `Connection.exec_driver_sql`. The stored values are
  the ones Core would store (None is SQL NULL). Core's own executemany of dicts does the same work
  per row and per parameter; measured in CPU time (other load on the machine does not count) on a
  200,000-row usage CSV, it would take the import from ~165k to ~135k rows/s (re-import: ~190k to
  ~148k), ~20% slower. Python-side defaults (`updated_at=utcnow`) are evaluated once per call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Float,
    FromClause,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    TextClause,
    any_,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter

BATCH = 5_000  # dicts per Core execute on PostgreSQL (insertmanyvalues pages 1,000 rows within it)
SQLITE_BATCH = 50_000  # tuples per executemany on SQLite: bounds the converted copy of the rows
# PostgreSQL upserts of at least this many rows go through COPY (see _copy_upsert), when every
# column is of a type psycopg's COPY dumps as Core would bind it.
COPY_MIN = 20_000
UNNEST_BATCH = 10_000  # rows per INSERT … SELECT unnest(…) on PostgreSQL (_insert_skipping)
COPY_TYPES = (String, Integer, Float, Numeric, Date, DateTime, Boolean)

Row = Mapping[str, Any]


def insert_rows(connection: Connection, table: FromClause, rows: Sequence[Row]) -> int:
    """Plain INSERT of many rows (dicts with the keys of the first); constraint violations raise."""
    table = _table(table)
    return _execute_many(connection, table, insert(table), rows)


def upsert_rows(
    connection: Connection,
    table: FromClause,
    rows: Sequence[Row],
    key: Sequence[str],
    *,
    update: bool = True,
) -> int:
    """INSERT … ON CONFLICT (key) DO UPDATE the other given columns (or DO NOTHING): idempotent writes.

    Columns not given (and Python-side `onupdate` values) are left alone on conflict.
    """
    if not rows:
        return 0
    table = _table(table)
    dialect = connection.dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:  # pragma: no cover - the two supported backends
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    columns = [c for c in rows[0] if c not in key]
    if dialect == "postgresql" and len(rows) >= COPY_MIN and _copyable(table, rows[0]):
        return _copy_upsert(connection, table, rows, key, columns if update else [])
    if update and columns:
        statement = statement.on_conflict_do_update(
            index_elements=list(key), set_={c: statement.excluded[c] for c in columns}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key))
    return _execute_many(connection, table, statement, rows)


def _copyable(table: Table, row: Row) -> bool:
    """Whether COPY can carry these columns: scalar types psycopg dumps itself (JSON and the
    like go through Core)."""
    names = [*row, *(c.name for c in table.c if c.name not in row and c.default is not None)]
    return all(
        isinstance(table.c[n].type, COPY_TYPES)
        or isinstance(getattr(table.c[n].type, "impl", None), COPY_TYPES)
        for n in names
    )


def _copy_upsert(
    connection: Connection, table: Table, rows: Sequence[Row], key: Sequence[str], update: Sequence[str]
) -> int:
    """PostgreSQL, many rows: COPY them into a temporary table, then one INSERT … SELECT … ON
    CONFLICT. The values go through each column type's bind processor and Python-side defaults
    are applied, as Core's executemany would; psycopg dumps them for COPY. At 1M accounts the
    day's health snapshot took 52 s through insertmanyvalues (a million dicts bound a parameter
    at a time)."""
    dialect = connection.dialect
    given = list(rows[0])
    defaults = _python_defaults(
        table, [c.name for c in table.c if c.name not in given and c.default is not None]
    )
    names = [*given, *defaults]
    processors = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    preparer = dialect.identifier_preparer
    target = preparer.format_table(table)
    listed = ", ".join(preparer.quote(n) for n in names)
    staged = preparer.quote(f"staged_{table.name}")

    def tuples() -> Iterator[tuple[Any, ...]]:
        for row in rows:
            values = []
            for name, process in zip(names, processors, strict=True):
                if name in defaults:
                    default = defaults[name]
                    value = default.function(_RowContext(row)) if isinstance(default, _PerRow) else default
                else:
                    value = row[name]
                values.append(value if value is None or process is None else process(value))
            yield tuple(values)

    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staged} AS SELECT {listed} FROM {target} WITH NO DATA"
    )
    # No clean-up on failure: the failed transaction rolls back, and the temporary table with it.
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {staged} ({listed}) FROM STDIN") as copy:
            for values in tuples():
                copy.write_row(values)
    finally:
        cursor.close()
    conflict = ", ".join(preparer.quote(k) for k in key)
    action = (
        "DO UPDATE SET " + ", ".join(f"{preparer.quote(c)} = EXCLUDED.{preparer.quote(c)}" for c in update)
        if update
        else "DO NOTHING"
    )
    connection.exec_driver_sql(
        f"INSERT INTO {target} ({listed}) SELECT {listed} FROM {staged} ON CONFLICT ({conflict}) {action}"
    )
    connection.exec_driver_sql(f"DROP TABLE {staged}")
    return len(rows)


def load_rows(
    connection: Connection, table: FromClause, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Append rows given as tuples in `columns` order, already in the form the database stores.

    For generated data, where building dicts and binding them would cost more than generating the
    rows: values must be str, int, float or None as stored (dates 'YYYY-MM-DD', datetimes naive UTC
    'YYYY-MM-DD HH:MM:SS.ffffff', booleans 0/1), which SQLite keeps as given and PostgreSQL's COPY
    parses. No bind processing and no Python-side defaults; `rows` may be a one-pass iterator.
    PostgreSQL: COPY FROM STDIN through psycopg's `cursor.copy()`, in the connection's transaction.
    SQLite: the driver's executemany. Returns the number of rows written.
    """
    table = _table(table)
    preparer = connection.dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in columns)})"
    dialect = connection.dialect.name
    if dialect == "postgresql":
        count = 0
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        finally:
            cursor.close()
        return count
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in columns)
        return _sqlite_executemany(connection, f"INSERT INTO {target} VALUES ({marks})", rows)
    raise NotImplementedError(f"load_rows is not implemented for {dialect}")  # pragma: no cover


# ---------------------------------------------------------------------------------------- helpers


def dialect_insert(connection: Connection, table: FromClause) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (PostgreSQL or SQLite)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(_table(table))
    return sqlite.insert(_table(table))


def insert_returning(
    connection: Connection,
    table: FromClause,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    returning: Sequence[str],
    conflict_where: ColumnElement[bool] | TextClause | None = None,
) -> list[Any]:
    """INSERT … ON CONFLICT (conflict) [WHERE conflict_where] DO NOTHING RETURNING `returning`: the
    rows actually inserted (SQLAlchemy Rows, by name or position; in no promised order).
    `conflict_where` names a partial unique index (its predicate, as literals)."""
    results = _insert_skipping(connection, table, rows, conflict, returning, conflict_where)
    return [row for result in results for row in result]


def insert_ignore(
    connection: Connection, table: FromClause, rows: Sequence[Mapping[str, Any]], conflict: Sequence[str]
) -> int:
    """INSERT … ON CONFLICT (conflict) DO NOTHING: how many rows were inserted."""
    return sum(result.rowcount or 0 for result in _insert_skipping(connection, table, rows, conflict, ()))


def insert_new(
    connection: Connection,
    table: FromClause,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    column: str,
) -> set[Any]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING `column`: the values of the rows actually inserted."""
    return {row[0] for row in insert_returning(connection, table, rows, conflict, [column])}


def _insert_skipping(
    connection: Connection,
    table: FromClause,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    returning: Sequence[str],
    conflict_where: ColumnElement[bool] | TextClause | None = None,
) -> Iterator[Any]:
    """The results of INSERT … ON CONFLICT DO NOTHING [RETURNING], batch after batch.

    PostgreSQL gets one array per column, unnest()ed: a short statement whatever the batch size.
    A VALUES list of 1,000 rows is a statement psycopg parses for its placeholders in Python
    each time (too long for its cache): that was 40 % of a 1M launch day's journeys. Python-side
    defaults of the columns not given are evaluated once per statement (`from_select` includes
    them). SQLite: Core's executemany (insertmanyvalues when RETURNING), its driver's parsing is C.
    """
    if not rows:
        return
    table = _table(table)
    statement = dialect_insert(connection, table)
    postgres = connection.dialect.name == "postgresql"
    names = list(rows[0])
    for batch in _batches(rows, UNNEST_BATCH if postgres else BATCH):
        params: list[Mapping[str, Any]] | None = list(batch)
        each = statement
        if postgres:
            arrays = (
                cast(func.unnest(array), table.c[n].type) if as_text else func.unnest(array)
                for n in names
                for array, as_text in [_array_of(table, n, [row[n] for row in batch])]
            )
            each, params = statement.from_select(names, select(*arrays)), None
        each = each.on_conflict_do_nothing(index_elements=list(conflict), index_where=conflict_where)
        if returning:
            each = each.returning(*(table.c[n] for n in returning))
        yield connection.execute(each, params)


def update_rows(
    connection: Connection,
    table: FromClause,
    key: str,
    rows: Sequence[Mapping[str, Any]],
    where: Sequence[ColumnElement[bool]] = (),
) -> None:
    """UPDATE `table` SET each row's other columns WHERE `key` = the row's and every `where` holds.
    Every row names the same columns; keys are unique (which of two rows of one key would win is
    undefined on PostgreSQL); `where` has no expanding IN (SQLite's executemany refuses it).

    PostgreSQL: one `UPDATE … FROM unnest(arrays) AS rows(…)` per BATCH rows, the arrays bound as
    one parameter per column. psycopg's executemany of one-row UPDATEs cost a round trip each
    (about 0.2 ms: over a minute and a half for a 1M launch day's marks). SQLite: an executemany
    of one-row UPDATEs, which runs in the process, a prepared statement stepped per row.
    """
    if not rows:
        return
    table = _table(table)
    names = [n for n in rows[0] if n != key]
    if connection.dialect.name != "postgresql":
        statement = (
            update(table)
            .where(table.c[key] == bindparam(f"_{key}"), *where)
            .values({n: bindparam(f"_{n}") for n in names})
        )
        for batch in _batches(rows, BATCH):
            connection.execute(statement, [{f"_{n}": row[n] for n in (key, *names)} for row in batch])
        return
    for batch in _batches(rows, BATCH):
        arrays = {n: _array_of(table, n, [row[n] for row in batch]) for n in (key, *names)}
        given = (
            func.unnest(*(array for array, _ in arrays.values()))
            .table_valued(*(key, *names), name="given")
            .render_derived()
        )
        connection.execute(
            update(table)
            .where(table.c[key] == given.c[key], *where)
            .values({n: cast(given.c[n], table.c[n].type) if arrays[n][1] else given.c[n] for n in names})
        )


def one_of(
    connection: Connection, column: ColumnElement[Any] | QueryableAttribute[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(:array)`, one parameter: an IN list of
    thousands is a statement too long for psycopg's cache, parsed for its placeholders in Python
    every time (a 1M launch day's claims, caps and lookups ask hundreds of them)."""
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def _array_of(table: Table, name: str, values: list[Any]) -> tuple[BindParameter[Any], bool]:
    """One column's values as one PostgreSQL array parameter, and whether the array is of JSON
    text to be cast back to the column's type. A JSON column's values travel as their JSON text: as
    an ARRAY(JSON) item, a list value would be taken for one more dimension of the array."""
    column_type = table.c[name].type
    if isinstance(column_type, JSON):
        texts = [json.dumps(value) for value in values]
        return bindparam(f"_{name}", texts, type_=postgresql.ARRAY(Text)), True
    return bindparam(f"_{name}", values, type_=postgresql.ARRAY(column_type)), False


def _table(table: FromClause) -> Table:
    """A mapped class's `__table__` (typed FromClause) as the Table it is for a plain model."""
    if not isinstance(table, Table):
        raise TypeError(f"bulk writes need a Table, not {type(table).__name__}")
    return table


def _batches(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _execute_many(connection: Connection, table: Table, statement: Insert, rows: Sequence[Row]) -> int:
    """Run an INSERT statement for every row: Core executemany, or the SQLite tuple path."""
    if not rows:
        return 0
    if connection.dialect.name == "sqlite":
        compiled = statement.compile(dialect=connection.dialect, column_keys=list(rows[0]))
        if compiled.positiontup is not None:  # qmark, pysqlite's paramstyle
            return _sqlite_tuples(connection, table, str(compiled), compiled.positiontup, rows)
    for batch in _batches(rows, BATCH):
        connection.execute(statement, list(batch))
    return len(rows)


def _sqlite_tuples(
    connection: Connection, table: Table, sql: str, names: Sequence[str], rows: Sequence[Row]
) -> int:
    """Execute SQLAlchemy's compiled `sql` on tuples made a column at a time (see the module doc).

    `names` are the statement's parameters in order: the given columns and those with Python-side
    defaults, which SQLAlchemy adds to every INSERT it compiles.
    """
    dialect = connection.dialect
    defaults = _python_defaults(table, [name for name in names if name not in rows[0]])
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]

    def values_of(name: str, batch: Sequence[Row]) -> list[Any]:
        if name not in defaults:
            return [row[name] for row in batch]
        default = defaults[name]
        if isinstance(default, _PerRow):
            return [default.function(_RowContext(row)) for row in batch]
        return [default] * len(batch)

    def converted() -> Iterator[tuple[Any, ...]]:
        for batch in _batches(rows, SQLITE_BATCH):
            columns: list[list[Any]] = []
            for name, process in zip(names, processors, strict=True):
                values = values_of(name, batch)
                columns.append([None if v is None else process(v) for v in values] if process else values)
            yield from zip(*columns, strict=True)

    return _sqlite_executemany(connection, sql, converted())


@dataclass(frozen=True)
class _PerRow:
    """A context-sensitive default (it reads the row's other values): evaluated for each row."""

    function: Callable[[Any], Any]


class _RowContext:
    """What a context-sensitive default may ask of its execution context: the row's parameters."""

    def __init__(self, row: Row) -> None:
        self.row = row

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> Row:
        return self.row


def _python_defaults(table: Table, names: Sequence[str]) -> dict[str, Any]:
    """Values of these columns' Python-side defaults (scalar or callable), evaluated once per call.

    A callable that takes no argument is wrapped by SQLAlchemy (`functools.update_wrapper`, so it
    has `__wrapped__`) and evaluated once; one that takes the context (`Account.shard_key`) reads
    the row, so it is evaluated per row with a context that gives the row's values.
    """
    values: dict[str, Any] = {}
    for name in names:
        default = table.c[name].default
        if default is not None and default.is_scalar:
            values[name] = default.arg  # type: ignore[attr-defined]
        elif default is not None and default.is_callable and not hasattr(default.arg, "__wrapped__"):  # type: ignore[attr-defined]
            values[name] = _PerRow(default.arg)  # type: ignore[attr-defined]
        elif default is not None and default.is_callable:
            values[name] = default.arg(None)  # type: ignore[attr-defined]  # wrapped: ignores the context
        else:  # pragma: no cover - SQLAlchemy binds only columns given or with Python-side defaults
            raise ValueError(f"{table.name}.{name}: no value given and no Python-side default")
    return values


def _sqlite_executemany(connection: Connection, sql: str, rows: Iterable[Sequence[Any]]) -> int:
    """The driver's executemany, SQLITE_BATCH tuples at a time (so that `rows` may be an iterator)."""
    count = 0
    iterator = iter(rows)
    while batch := list(islice(iterator, SQLITE_BATCH)):
        connection.exec_driver_sql(sql, batch)
        count += len(batch)
    return count
