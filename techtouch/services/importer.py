"""`techtouch import accounts|contacts|usage|events FILE.csv`: validate a CSV and upsert it, all or nothing.

How it works, and why:

* One transaction per file. Every row is validated; if any is bad, ImportFailed lists the problems
  as `FILE:ROW: column: problem` (ROW is the line in the file, the header being line 1) and the
  transaction is rolled back, so nothing from the file is written.
* The file is streamed with pandas in chunks (`dtype=str`, `keep_default_na=False`). Each column of
  a chunk is factorized and every *distinct* value is parsed once by techtouch.domain.validators; a usage
  file of a million rows has ~100 distinct dates and a few thousand distinct counts, so parsing is
  vectorized in effect while the validators stay plain, readable Python.
* Accounts and contacts referred to are looked up per chunk with batched IN queries (at most
  IN_BATCH ids a query), never by loading every id.
* Upserts by id (accounts, contacts) or by (account_id, date) (usage) through techtouch.adapters.db.bulk, and
  events by a content hash (`event_key`), so importing the same file twice changes nothing.
* Duplicate keys inside one file are errors. Detecting them across chunks keeps, for every row read
  so far, a 64-bit hash of its key and its line number in two sorted numpy arrays: 12 bytes a row
  (12 MB for a million rows), the only state that grows with the file. A hash collision (chance
  about n**2 / 2**65, 3e-8 for a million rows) would report a false duplicate, never miss one.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection, Engine, and_, delete, func, select

from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import (
    EVENT_TYPES,
    ROLES,
    SEGMENTS,
    Account,
    Contact,
    Event,
    Suppression,
    UsageDaily,
)
from techtouch.domain import validators as v

KINDS = ("accounts", "contacts", "usage", "events")
IN_BATCH = 5_000  # ids per IN (...) query: well under SQLite's and PostgreSQL's parameter limits
KNOWN_ACCOUNTS = 100_000  # account ids remembered between chunks (a few MB at most)

# Event types that (un)suppress a contact's channel: type -> (channel, reason).
SUPPRESSING = {
    "unsubscribed": ("email", "unsubscribed"),
    "email_bounced": ("email", "bounced"),
    "sms_stop": ("sms", "sms_stop"),
}
UNSUPPRESSING = {"sms_start": "sms"}


class ImportFailed(Exception):
    """The file was not imported. `problems` holds one `FILE:ROW: column: problem` line each."""

    def __init__(self, summary: str, problems: list[str]) -> None:
        super().__init__(summary)
        self.problems = problems


@dataclass(frozen=True)
class ImportResult:
    kind: str
    path: str
    rows: int  # rows read and written (upserted)


def event_key(
    account_id: str, contact_id: str | None, occurred_at: datetime, type_: str, value: str | None
) -> str:
    """sha256 hex of what makes an event the same event: re-importing it is then a no-op."""
    payload = [account_id, contact_id, occurred_at.astimezone(UTC).isoformat(), type_, value]
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------- columns


def _text(max_length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters: {value[:20]!r}…")
        return value

    return parse


@dataclass(frozen=True)
class _Column:
    name: str
    parse: Callable[[str], Any]
    required: bool = False


_ID = _text(64)
COLUMNS: dict[str, tuple[_Column, ...]] = {
    "accounts": (
        _Column("account_id", _ID, required=True),
        _Column("name", _text(200), required=True),
        _Column("segment", partial(v.parse_choice, choices=SEGMENTS, what="segment"), required=True),
        _Column("arr", v.parse_non_negative_number, required=True),
        _Column("start_date", v.parse_iso_date, required=True),
        _Column("renewal_date", v.parse_iso_date),
        _Column("csm_email", v.parse_email),
        _Column("timezone", v.parse_timezone),
        _Column("paused_until", v.parse_iso_date),
    ),
    "contacts": (
        _Column("contact_id", _ID, required=True),
        _Column("account_id", _ID, required=True),
        _Column("name", _text(200), required=True),
        _Column("email", v.parse_email, required=True),
        _Column("phone", v.parse_phone_e164),
        _Column("role", partial(v.parse_choice, choices=ROLES, what="role"), required=True),
        _Column("email_consent", v.parse_bool, required=True),
        _Column("sms_consent", v.parse_bool, required=True),
    ),
    "usage": (
        _Column("account_id", _ID, required=True),
        _Column("date", v.parse_iso_date, required=True),
        _Column("active_users", v.parse_non_negative_int, required=True),
        _Column("logins", v.parse_non_negative_int, required=True),
        _Column("key_actions", v.parse_non_negative_int, required=True),
    ),
    "events": (
        _Column("account_id", _ID, required=True),
        _Column("contact_id", _ID),
        _Column("occurred_at", v.parse_iso_datetime, required=True),
        _Column("type", partial(v.parse_choice, choices=EVENT_TYPES, what="event type"), required=True),
        _Column("value", _text(200)),  # checked against the type row by row
    ),
}


# -------------------------------------------------------------------------------------- problems


@dataclass
class _Problems:
    """Problems of one file, in file order; keeps the first `limit` lines and counts the rest."""

    path: str
    limit: int
    lines: list[str] = field(default_factory=list)
    count: int = 0
    bad_rows: int = 0

    def add_chunk(self, found: list[tuple[int, int, str, str]]) -> None:
        """`found`: (line, column position, column, message) of one chunk, in any order."""
        found.sort()
        self.bad_rows += len({line for line, *_ in found})
        for line, _, column, message in found:
            self.count += 1
            if len(self.lines) < self.limit:
                self.lines.append(f"{self.path}:{line}: {column}: {message}")

    def listing(self) -> list[str]:
        more = self.count - len(self.lines)
        return [*self.lines, f"… and {more} more"] if more > 0 else list(self.lines)

    def failed(self) -> ImportFailed:
        rows = f"{self.bad_rows} bad row{'s' if self.bad_rows != 1 else ''}"
        if self.count != self.bad_rows:
            rows += f" ({self.count} problems)"
        return ImportFailed(f"{self.path}: {rows}; nothing was imported", self.listing())


def _file_failed(path: str, line: int | None, problem: str) -> ImportFailed:
    where = f"{path}:{line}" if line is not None else path
    return ImportFailed(f"{path}: {problem}; nothing was imported", [f"{where}: {problem}"])


# ------------------------------------------------------------------------------ file-level checks


def _check_utf8(path: Path, shown: str) -> None:
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
                raise _file_failed(
                    shown,
                    line,
                    f"encoding: not UTF-8 (byte 0x{block[exc.start]:02x} at character {column}); "
                    "save the file as UTF-8",
                ) from None
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _file_failed(shown, line, "encoding: not UTF-8 (truncated character at the end)") from None


def _read_header(path: Path, shown: str, kind: str) -> list[str]:
    """The header's column names (stripped), checked against COLUMNS[kind]."""
    expected = [c.name for c in COLUMNS[kind]]
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        first = next(reader, None)
    if not header or not any(name.strip() for name in header):
        raise _file_failed(shown, 1, f"header: no header row; expected {','.join(expected)}")
    names = [name.strip() for name in header]
    parts = []
    missing = [name for name in expected if name not in names]
    unexpected = [name for name in names if name not in expected]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if missing:
        parts.append(f"missing column(s) {', '.join(missing)}")
    if unexpected:
        parts.append(f"unexpected column(s) {', '.join(n or repr(n) for n in unexpected)}")
    if duplicated:
        parts.append(f"duplicate column(s) {', '.join(duplicated)}")
    if parts:
        raise _file_failed(shown, 1, f"header: {'; '.join(parts)}")
    # pandas would silently turn extra leading fields of the first row into an index: refuse them.
    if first is not None and len(first) > len(names):
        raise _file_failed(shown, 2, f"row: {len(first)} fields, but the header has {len(names)}")
    return names


_PARSER_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


# ---------------------------------------------------------------------------------- chunk parsing


@dataclass
class _Parsed:
    """One chunk, column-wise: parsed values, blank and error masks, and file line numbers."""

    values: dict[str, npt.NDArray[Any]]
    ok: dict[str, npt.NDArray[np.bool_]]
    lines: npt.NDArray[np.int64]
    problems: list[tuple[int, int, str, str]]
    keep: npt.NDArray[np.bool_]  # not a blank line

    def column_position(self, name: str) -> int:
        return list(self.values).index(name)


def _parse_chunk(chunk: pd.DataFrame, columns: Sequence[_Column], first_line: int) -> tuple[_Parsed, int]:
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
    problems: list[tuple[int, int, str, str]] = []
    ok: dict[str, npt.NDArray[np.bool_]] = {}
    for position, column in enumerate(columns):
        codes, messages = errors[column.name]
        bad_code = np.array([m is not None for m in messages], dtype=bool)
        bad = bad_code[codes] & keep
        ok[column.name] = ~bad
        for row in np.flatnonzero(bad):
            problems.append((int(lines[row]), position, column.name, messages[codes[row]] or ""))
    next_line = first_line + n + int(newlines.sum())
    return _Parsed(values, ok, lines, problems, keep), next_line


def _batched(items: Sequence[str], size: int = IN_BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing_accounts(connection: Connection, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for batch in _batched(sorted(set(ids))):
        found.update(connection.scalars(select(Account.id).where(Account.id.in_(batch))))
    return found


def _contact_accounts(connection: Connection, ids: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for batch in _batched(sorted(set(ids))):
        rows = connection.execute(select(Contact.id, Contact.account_id).where(Contact.id.in_(batch)))
        found.update((contact_id, account_id) for contact_id, account_id in rows)
    return found


class _SeenKeys:
    """Keys read so far: sorted 64-bit hashes and the line each came from (12 bytes a key)."""

    def __init__(self) -> None:
        self.hashes: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self.lines: npt.NDArray[np.uint32] = np.empty(0, dtype=np.uint32)

    def add(self, hashes: npt.NDArray[np.uint64], lines: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Record keys in file order; returns, per key, the line of its first occurrence or 0."""
        n = len(hashes)
        first = np.zeros(n, dtype=np.int64)
        if n == 0:
            return first
        order = np.argsort(hashes, kind="stable")
        sorted_hashes = hashes[order]
        starts = np.ones(n, dtype=bool)
        starts[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
        run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
        # Repeats within this chunk point at the first row of their run ...
        repeat = ~starts
        first[order[repeat]] = lines[order[run_start[repeat]]]
        # ... and every key seen in an earlier chunk at that earlier row.
        if len(self.hashes):
            at = np.minimum(np.searchsorted(self.hashes, sorted_hashes), len(self.hashes) - 1)
            earlier = self.hashes[at] == sorted_hashes
            first[order[earlier]] = self.lines[at[earlier]]
            new = starts & ~earlier
        else:
            new = starts
        # Merge the new keys in (both sides sorted): one O(n) copy per chunk.
        at_new = np.searchsorted(self.hashes, sorted_hashes[new])
        self.hashes = np.insert(self.hashes, at_new, sorted_hashes[new])
        self.lines = np.insert(self.lines, at_new, lines[order[new]].astype(np.uint32))
        return first


def _check_duplicates(parsed: _Parsed, seen: _SeenKeys, keys: Sequence[str], column: str, what: str) -> None:
    """Rows whose key (all of `keys`) appeared on an earlier line become problems in `column`."""
    rows_ok = parsed.keep.copy()
    for key in keys:
        rows_ok &= parsed.ok[key]
    rows = np.flatnonzero(rows_ok)
    frame = pd.DataFrame({key: parsed.values[key][rows] for key in keys})
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    first = seen.add(hashes, parsed.lines[rows])
    position = parsed.column_position(column)
    for row, line in zip(rows[first > 0], first[first > 0], strict=True):
        parsed.problems.append((int(parsed.lines[row]), position, column, f"duplicate of row {line}{what}"))


def _columns(parsed: _Parsed, names: Iterable[str]) -> list[list[Any]]:
    """The values of these columns, blank lines left out, as lists (fast to zip)."""
    if parsed.keep.all():
        return [parsed.values[name].tolist() for name in names]
    rows = np.flatnonzero(parsed.keep)
    return [parsed.values[name][rows].tolist() for name in names]


def _records(parsed: _Parsed, names: dict[str, str]) -> list[dict[str, Any]]:
    """Rows as dicts for techtouch.adapters.db.bulk: `names` maps CSV column -> table column."""
    keys = list(names.values())
    return [dict(zip(keys, row, strict=True)) for row in zip(*_columns(parsed, names), strict=True)]


# ------------------------------------------------------------------------------------ the kinds


class _Kind:
    """Validation and writes of one kind of file, chunk by chunk, inside the file's transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # Account ids found so far, so that a file sorted by day asks once per account, not once per
        # chunk; emptied when it reaches KNOWN_ACCOUNTS, so memory stays bounded.
        self.known_accounts: set[str] = set()

    def check(self, parsed: _Parsed) -> None:
        raise NotImplementedError

    def check_accounts_exist(self, parsed: _Parsed) -> None:
        """Unknown account_id values become problems; one IN query per IN_BATCH ids not yet known."""
        rows_ok = parsed.ok["account_id"] & parsed.keep
        ids = parsed.values["account_id"]
        codes, uniques = pd.factorize(ids[rows_ok])
        ask = [u for u in uniques if u not in self.known_accounts]
        found = _existing_accounts(self.connection, ask)
        if len(self.known_accounts) + len(found) > KNOWN_ACCOUNTS:
            self.known_accounts.clear()
        self.known_accounts.update(found)
        unknown = set(ask) - found
        if not unknown:
            return
        unknown_code = np.array([u in unknown for u in uniques], dtype=bool)
        position = parsed.column_position("account_id")
        rows = np.flatnonzero(rows_ok)[unknown_code[codes]]
        for row in rows:
            parsed.problems.append(
                (int(parsed.lines[row]), position, "account_id", f"unknown account {ids[row]!r}")
            )
        parsed.ok["account_id"][rows] = False

    def write(self, parsed: _Parsed) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """After the last chunk, when every chunk was good."""


class _Accounts(_Kind):
    NAMES: ClassVar[dict[str, str]] = {
        "account_id": "id",
        "name": "name",
        "segment": "segment",
        "arr": "arr",
        "start_date": "start_date",
        "renewal_date": "renewal_date",
        "csm_email": "csm_email",
        "timezone": "timezone",  # blank stays NULL: the engine falls back to the default zone
        "paused_until": "paused_until",
    }

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.seen = _SeenKeys()

    def check(self, parsed: _Parsed) -> None:
        _check_duplicates(parsed, self.seen, ["account_id"], "account_id", "")

    def write(self, parsed: _Parsed) -> None:
        upsert_rows(self.connection, Account.__table__, _records(parsed, self.NAMES), ["id"])


class _Contacts(_Kind):
    NAMES: ClassVar[dict[str, str]] = {
        "contact_id": "id",
        "account_id": "account_id",
        "name": "name",
        "email": "email",
        "phone": "phone",
        "role": "role",
        "email_consent": "email_consent",
        "sms_consent": "sms_consent",
    }

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.seen = _SeenKeys()

    def check(self, parsed: _Parsed) -> None:
        _check_duplicates(parsed, self.seen, ["contact_id"], "contact_id", "")
        self.check_accounts_exist(parsed)

    def write(self, parsed: _Parsed) -> None:
        upsert_rows(self.connection, Contact.__table__, _records(parsed, self.NAMES), ["id"])


class _Usage(_Kind):
    NAMES: ClassVar[dict[str, str]] = {
        name: name for name in ("account_id", "date", "active_users", "logins", "key_actions")
    }

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.seen = _SeenKeys()

    def check(self, parsed: _Parsed) -> None:
        _check_duplicates(parsed, self.seen, ["account_id", "date"], "date", " (same account_id and date)")
        self.check_accounts_exist(parsed)

    def write(self, parsed: _Parsed) -> None:
        # The hot path of big files: a dict display is twice as fast as dict(zip(...)).
        rows = [
            {"account_id": a, "date": d, "active_users": u, "logins": n, "key_actions": k}
            for a, d, u, n, k in zip(*_columns(parsed, self.NAMES), strict=True)
        ]
        upsert_rows(self.connection, UsageDaily.__table__, rows, ["account_id", "date"])


class _Events(_Kind):
    """Events are keyed by content (event_key): identical rows are one event, never a duplicate."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.touched: set[str] = set()  # contacts with (un)suppressing events: bounded by contacts
        self.rows: list[dict[str, Any]] = []

    def check(self, parsed: _Parsed) -> None:
        self.check_accounts_exist(parsed)
        values, ok = parsed.values, parsed.ok
        contact_ids = values["contact_id"]
        given = np.fromiter((c is not None for c in contact_ids), dtype=bool, count=len(contact_ids))
        with_contact = parsed.keep & ok["contact_id"] & given
        owners = _contact_accounts(self.connection, contact_ids[with_contact])
        position = {name: parsed.column_position(name) for name in ("contact_id", "value")}
        self.rows = []
        for row in np.flatnonzero(parsed.keep):
            line = int(parsed.lines[row])
            account_id, contact_id = values["account_id"][row], values["contact_id"][row]
            type_, value = values["type"][row], values["value"][row]
            problems: list[tuple[str, str]] = []
            if ok["contact_id"][row] and contact_id is not None:
                owner = owners.get(contact_id)
                if owner is None:
                    problems.append(("contact_id", f"unknown contact {contact_id!r}"))
                elif ok["account_id"][row] and owner != account_id:
                    problems.append(
                        (
                            "contact_id",
                            f"contact {contact_id!r} belongs to account {owner!r}, not {account_id!r}",
                        )
                    )
            if ok["type"][row] and ok["value"][row]:
                if contact_id is None and ok["contact_id"][row] and type_ in (*SUPPRESSING, *UNSUPPRESSING):
                    problems.append(("contact_id", f"required for {type_}"))
                try:
                    value = _event_value(type_, value)
                except ValueError as exc:
                    problems.append(("value", str(exc)))
            for column, message in problems:
                parsed.problems.append((line, position[column], column, message))
            if problems or not all(ok[name][row] for name in ok):
                continue
            occurred_at = values["occurred_at"][row]
            self.rows.append(
                {
                    "key": event_key(account_id, contact_id, occurred_at, type_, value),
                    "account_id": account_id,
                    "contact_id": contact_id,
                    "occurred_at": occurred_at,
                    "type": type_,
                    "value": value,
                    "source": "import",
                }
            )
            if contact_id is not None and (type_ in SUPPRESSING or type_ in UNSUPPRESSING):
                self.touched.add(contact_id)

    def write(self, parsed: _Parsed) -> None:
        upsert_rows(self.connection, Event.__table__, self.rows, ["key"], update=False)

    def finish(self) -> None:
        _update_suppressions(self.connection, sorted(self.touched))


def _event_value(type_: str, value: str | None) -> str | None:
    if type_ == "milestone":
        if value is None:
            raise ValueError("required for milestone (e.g. configured, trained, live)")
        return v.parse_slug(value, "milestone")
    if type_ == "survey":
        if value is None:
            raise ValueError("required for survey (<survey>:<answer>, e.g. nps:9)")
        return v.parse_survey_value(value)
    return value


def _update_suppressions(connection: Connection, contact_ids: Sequence[str]) -> None:
    """Recompute suppressions of these contacts from all their events (already inserted).

    email: the earliest unsubscribe or bounce suppresses for good; an existing row is left alone.
    sms: the latest of sms_stop / sms_start wins; a start lifts only an 'sms_stop' suppression that
    began before it (a tie keeps the contact suppressed).
    """
    types = (*SUPPRESSING, *UNSUPPRESSING)
    table = Suppression.__table__
    for batch in _batched(contact_ids):
        latest: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        query = (
            select(Event.contact_id, Event.type, func.min(Event.occurred_at), func.max(Event.occurred_at))
            .where(Event.contact_id.in_(batch), Event.type.in_(types))
            .group_by(Event.contact_id, Event.type)
        )
        for contact_id, type_, earliest, last in connection.execute(query):
            latest[(contact_id, type_)] = (earliest, last)
        suppress: list[dict[str, Any]] = []
        for contact_id in batch:
            email = sorted(
                (latest[(contact_id, type_)][0], SUPPRESSING[type_][1])
                for type_ in ("unsubscribed", "email_bounced")
                if (contact_id, type_) in latest
            )
            if email:
                since, reason = email[0]
                suppress.append(
                    {"contact_id": contact_id, "channel": "email", "reason": reason, "since": since}
                )
            stop = latest.get((contact_id, "sms_stop"), (None, None))[1]
            start = latest.get((contact_id, "sms_start"), (None, None))[1]
            if stop is not None and (start is None or start <= stop):
                suppress.append(
                    {"contact_id": contact_id, "channel": "sms", "reason": "sms_stop", "since": stop}
                )
            elif start is not None:
                connection.execute(
                    delete(Suppression).where(
                        and_(
                            Suppression.contact_id == contact_id,
                            Suppression.channel == "sms",
                            Suppression.reason == "sms_stop",
                            Suppression.since < start,
                        )
                    )
                )
        upsert_rows(connection, table, suppress, ["contact_id", "channel"], update=False)


_KIND_CLASSES: dict[str, Callable[[Connection], _Kind]] = {
    "accounts": _Accounts,
    "contacts": _Contacts,
    "usage": _Usage,
    "events": _Events,
}


# ------------------------------------------------------------------------------------ entry point


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
        raise _file_failed(shown, None, f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        v.parse_timezone(default_timezone)
    except ValueError as exc:
        raise _file_failed(shown, None, f"default timezone: {exc}") from None
    if not file.exists():
        raise _file_failed(shown, None, "no such file")
    if not file.is_file():
        raise _file_failed(shown, None, "not a file")
    _check_utf8(file, shown)
    names = _read_header(file, shown, kind)
    columns = COLUMNS[kind]
    problems = _Problems(shown, max_problems)
    rows = records = 0  # rows: not blank; records: every data record pandas read
    # One transaction; on SQLite it takes the write lock at BEGIN (db.py's `immediate` option) so that
    # a writer committing between our first read and first write cannot make the import fail.
    with engine.connect() as connection, connection.execution_options(immediate=True).begin():
        handler = _KIND_CLASSES[kind](connection)
        reader = pd.read_csv(
            file,
            chunksize=chunksize,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,  # blank lines must still count for line numbers
            encoding="utf-8-sig",
            index_col=False,
            engine="c",
        )
        next_line = 2
        try:
            with reader:
                for chunk in reader:
                    chunk.columns = pd.Index(names)
                    parsed, next_line = _parse_chunk(chunk, columns, next_line)
                    handler.check(parsed)
                    problems.add_chunk(parsed.problems)
                    if not problems.count:
                        handler.write(parsed)
                    rows += int(parsed.keep.sum())
                    records += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
        except pd.errors.ParserError as exc:
            match = _PARSER_ERROR.search(str(exc))
            if match is None:
                problems.add_chunk([(next_line, 0, "row", f"cannot be read: {exc}")])
            else:
                expected, record, saw = (int(g) for g in match.groups())
                # pandas counts records; add the newlines inside quoted fields seen so far.
                line = record + (next_line - 2 - records)
                problems.add_chunk(
                    [(line, 0, "row", f"{saw} fields, but the header has {expected}; reading stopped here")]
                )
        if problems.count:
            raise problems.failed()
        handler.finish()
    return ImportResult(kind, shown, rows)
