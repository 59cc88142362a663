"""Reading one CSV file: encoding and header checks, then chunks parsed column-wise with line numbers.

The file is streamed with pandas in chunks (`dtype=str`, `keep_default_na=False`), so memory does
not grow with the file. Each column of a chunk is factorized and every *distinct* value is parsed
once: a usage file of a million rows has ~100 distinct dates and a few thousand distinct counts, so
parsing is vectorized in effect while the validators stay plain, readable Python.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from techtouch.services.importing.columns import COLUMNS, Column
from techtouch.services.importing.problems import Problem, file_failed

_PARSER_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
# No column holds more than a few hundred characters; a longer field is refused without parsing it
# (or echoing it back in the message).
FIELD_MAX = 1000


# ------------------------------------------------------------------------------ file-level checks


def check_utf8(path: Path, shown: str) -> None:
    """Fail on the first byte that is not UTF-8, naming its line (pandas would only say 'offset')."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                head = block[: exc.start]
                line += head.count(b"\n")
                column = len(head) - (head.rfind(b"\n") + 1) + 1
                raise file_failed(
                    shown,
                    line,
                    f"encoding: not UTF-8 (byte 0x{block[exc.start]:02x} at character {column}); "
                    "save the file as UTF-8",
                ) from None
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise file_failed(shown, line, "encoding: not UTF-8 (truncated character at the end)") from None


def read_header(path: Path, shown: str, kind: str) -> list[str]:
    """The header's column names (stripped), checked against COLUMNS[kind]."""
    expected = [c.name for c in COLUMNS[kind]]
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        try:
            header = next(reader, None)
            first = next(reader, None)
        except csv.Error as exc:  # e.g. "field larger than field limit (131072)"
            where = "header" if reader.line_num <= 1 else "row"
            problem = str(exc)
            if "field limit" in problem:
                problem = f"a field longer than {csv.field_size_limit()} characters"
            raise file_failed(shown, max(reader.line_num, 1), f"{where}: cannot be read: {problem}") from None
    if not header or not any(name.strip() for name in header):
        raise file_failed(shown, 1, f"header: no header row; expected {','.join(expected)}")
    names = [name.strip() for name in header]
    parts = []
    missing = [name for name in expected if name not in names]
    unexpected = [name if len(name) <= 40 else f"{name[:40]}…" for name in names if name not in expected]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if missing:
        parts.append(f"missing column(s) {', '.join(missing)}")
    if unexpected:
        parts.append(f"unexpected column(s) {', '.join(n or repr(n) for n in unexpected)}")
    if duplicated:
        parts.append(f"duplicate column(s) {', '.join(duplicated)}")
    if parts:
        raise file_failed(shown, 1, f"header: {'; '.join(parts)}")
    # pandas would silently turn extra leading fields of the first row into an index: refuse them.
    if first is not None and len(first) > len(names):
        raise file_failed(shown, 2, f"row: {len(first)} fields, but the header has {len(names)}")
    return names


# ---------------------------------------------------------------------------------- chunk parsing


@dataclass
class ParsedChunk:
    """One chunk, column-wise: parsed values, error masks, file line numbers and the problems found."""

    values: dict[str, npt.NDArray[Any]]
    ok: dict[str, npt.NDArray[np.bool_]]
    lines: npt.NDArray[np.int64]
    problems: list[Problem]
    keep: npt.NDArray[np.bool_]  # not a blank line
    records: int  # records pandas read, blank lines included

    def column_position(self, name: str) -> int:
        return list(self.values).index(name)

    def columns(self, names: Iterable[str]) -> list[list[Any]]:
        """The values of these columns, blank lines left out, as lists (fast to zip)."""
        if self.keep.all():
            return [self.values[name].tolist() for name in names]
        rows = np.flatnonzero(self.keep)
        return [self.values[name][rows].tolist() for name in names]

    def records_as(self, names: dict[str, str]) -> list[dict[str, Any]]:
        """Rows as dicts for techtouch.adapters.db.bulk: `names` maps CSV column -> table column."""
        keys = list(names.values())
        return [dict(zip(keys, row, strict=True)) for row in zip(*self.columns(names), strict=True)]


def parse_chunk(chunk: pd.DataFrame, columns: Sequence[Column], first_line: int) -> tuple[ParsedChunk, int]:
    """Parse every column of a chunk; returns the result and the first line of the next chunk.

    Each distinct value is parsed once. Lines account for newlines inside quoted fields.
    """
    n = len(chunk)
    values: dict[str, npt.NDArray[Any]] = {}
    errors: dict[str, tuple[npt.NDArray[np.intp], list[str | None]]] = {}
    blank_all = np.ones(n, dtype=bool)
    newlines = np.zeros(n, dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(chunk[column.name].to_numpy(dtype=object, na_value=""))
        parsed = np.empty(len(uniques), dtype=object)
        messages: list[str | None] = [None] * len(uniques)
        blank = np.zeros(len(uniques), dtype=bool)
        breaks = np.zeros(len(uniques), dtype=np.int64)
        for i, raw in enumerate(uniques):
            text = raw.strip()
            if "\n" in raw:
                breaks[i] = raw.count("\n")
            if not text:
                blank[i] = True
                if column.required:
                    messages[i] = "required, but blank"
                continue
            if len(text) > FIELD_MAX:
                messages[i] = f"{len(text)} characters, longer than any field may be ({FIELD_MAX})"
                continue
            try:
                parsed[i] = column.parse(text)
            except ValueError as exc:
                messages[i] = str(exc)
        values[column.name] = parsed[codes]
        errors[column.name] = (codes, messages)
        blank_all &= blank[codes]
        if breaks.any():
            newlines += breaks[codes]
    # Line of each row: header is line 1; earlier rows' embedded newlines push later rows down.
    lines = first_line + np.arange(n, dtype=np.int64) + np.cumsum(newlines) - newlines
    keep = ~blank_all
    problems: list[Problem] = []
    ok: dict[str, npt.NDArray[np.bool_]] = {}
    for position, column in enumerate(columns):
        codes, messages = errors[column.name]
        bad_code = np.array([m is not None for m in messages], dtype=bool)
        bad = bad_code[codes] & keep
        ok[column.name] = ~bad
        for row in np.flatnonzero(bad):
            problems.append((int(lines[row]), position, column.name, messages[codes[row]] or ""))
    next_line = first_line + n + int(newlines.sum())
    return ParsedChunk(values, ok, lines, problems, keep, n), next_line


class CsvChunks:
    """The data rows of a checked file (see check_utf8, read_header) as ParsedChunk objects.

    A row pandas cannot split into the header's fields ends the iteration; `stopped` then holds
    that problem, with the row's line in the file.
    """

    def __init__(self, path: Path, names: list[str], columns: Sequence[Column], chunksize: int) -> None:
        self.path = path
        self.names = names
        self.columns = columns
        self.chunksize = chunksize
        self.stopped: Problem | None = None

    def __iter__(self) -> Iterator[ParsedChunk]:
        reader = pd.read_csv(
            self.path,
            chunksize=self.chunksize,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,  # blank lines must still count for line numbers
            encoding="utf-8-sig",
            index_col=False,
            engine="c",
        )
        next_line = 2  # the header is line 1
        records = 0  # every data record pandas read so far
        try:
            with reader:
                for chunk in reader:
                    chunk.columns = pd.Index(self.names)
                    parsed, next_line = parse_chunk(chunk, self.columns, next_line)
                    records += len(chunk)
                    yield parsed
        except pd.errors.ParserError as exc:
            match = _PARSER_ERROR.search(str(exc))
            unclosed = _OPEN_QUOTE.search(str(exc))
            if unclosed is not None:
                # pandas counts rows from 0 at the header; add the newlines inside quoted fields.
                line = int(unclosed.group(1)) + 1 + (next_line - 2 - records)
                self.stopped = (line, 0, "row", "a quoted field opened on this row is never closed")
            elif match is None:
                self.stopped = (next_line, 0, "row", f"cannot be read: {exc}")
            else:
                expected, record, saw = (int(g) for g in match.groups())
                # pandas counts records; add the newlines inside quoted fields seen so far.
                line = record + (next_line - 2 - records)
                self.stopped = (
                    line,
                    0,
                    "row",
                    f"{saw} fields, but the header has {expected}; reading stopped here",
                )
