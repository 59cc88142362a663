"""`import_csv`: one file, one transaction: check the file, then read, validate and write each chunk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine

from techtouch.adapters.db.engine import analyze
from techtouch.domain import validators as v
from techtouch.services.importing.columns import COLUMNS, KINDS
from techtouch.services.importing.csvfile import CsvChunks, check_utf8, read_header
from techtouch.services.importing.events import Events
from techtouch.services.importing.kinds import Accounts, Contacts, Kind, Usage
from techtouch.services.importing.problems import Problems, file_failed

KIND_CLASSES: dict[str, Callable[[Connection], Kind]] = {
    "accounts": Accounts,
    "contacts": Contacts,
    "usage": Usage,
    "events": Events,
}


@dataclass(frozen=True)
class ImportResult:
    kind: str
    path: str
    rows: int  # rows read and written (upserted)


ANALYZE_AFTER = 20_000  # imported rows from which PostgreSQL's statistics are refreshed
ANALYZED = {
    "accounts": ("accounts",),
    "contacts": ("contacts",),
    "usage": ("usage_daily",),
    "events": ("events", "suppressions"),
}


def import_csv(
    engine: Engine,
    kind: str,
    path: str | Path,
    *,
    default_timezone: str = "UTC",
    chunksize: int = 50_000,
    progress: Callable[[int], None] | None = None,
    max_problems: int = 1000,
) -> ImportResult:
    """Validate and upsert one CSV file of `kind` in one transaction; ImportFailed if anything is bad.

    `default_timezone` is only checked: a blank account timezone is stored as NULL so that the
    engine applies the default of the day, and naive event times mean UTC. `progress(n)` is called
    with the number of rows just processed.
    """
    shown = str(path)
    file = Path(path)
    if kind not in KINDS:
        raise file_failed(shown, None, f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        v.parse_timezone(default_timezone)
    except ValueError as exc:
        raise file_failed(shown, None, f"default timezone: {exc}") from None
    if not file.exists():
        raise file_failed(shown, None, "no such file")
    if not file.is_file():
        raise file_failed(shown, None, "not a file")
    check_utf8(file, shown)
    chunks = CsvChunks(file, read_header(file, shown, kind), COLUMNS[kind], chunksize)
    problems = Problems(shown, max_problems)
    rows = 0  # not blank
    # One transaction; on SQLite it takes the write lock at BEGIN (the engine's `immediate` option) so
    # that a writer committing between our first read and first write cannot make the import fail.
    with engine.connect() as connection, connection.execution_options(immediate=True).begin():
        handler = KIND_CLASSES[kind](connection)
        for parsed in chunks:
            handler.check(parsed)
            problems.add_chunk(parsed.problems)
            if not problems.count:
                handler.write(parsed)
            rows += int(parsed.keep.sum())
            if progress is not None:
                progress(parsed.records)
        if chunks.stopped is not None:
            problems.add_chunk([chunks.stopped])
        if problems.count:
            raise problems.failed()
        handler.finish()
    if rows >= ANALYZE_AFTER:
        # A run the same morning would otherwise plan its reads on the sizes of the day before.
        analyze(engine, ANALYZED[kind])
    return ImportResult(kind, shown, rows)
