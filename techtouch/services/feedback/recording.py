"""Database plumbing shared by every kind of feedback: one transaction per call, batched inserts of
events and suppressions, and the retry of a call PostgreSQL aborted for a deadlock.

Kept apart from the provider modules so that the rules that make feedback safe to replay and to
run concurrently (key order, ON CONFLICT DO NOTHING RETURNING, whole-call retry) live in one place.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import Connection, Engine, Table, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from techtouch.adapters.db.bulk import insert_new
from techtouch.adapters.db.models import Event, Suppression, Touch
from techtouch.adapters.retry import Retry, retrying

log = logging.getLogger(__name__)

IN_BATCH = 5_000  # keys per IN (...) query
EVIDENCE_STATUSES = ("sending", "pending")  # touches a provider event moves to `sent`
RETRYABLE = ("40P01", "40001")  # PostgreSQL: deadlock detected, serialization failure
ATTEMPTS = 3
# Seconds: the first retry's jitter window, and the longest wait. Short: the abort has already
# released our locks, and the other writer only needs a moment to finish its own transaction.
BACKOFF = 0.05
BACKOFF_CAP = 1.0


@dataclass
class Applied:
    """What one call did, as counts (safe to log: nothing personal)."""

    received: int = 0
    recorded: int = 0  # events inserted
    duplicates: int = 0  # events already recorded (replays)
    unknown: int = 0  # naming a touch or contact we do not have
    ignored: int = 0  # kinds we do not act on
    touches: int = 0  # touches moved from sending/pending
    suppressed: int = 0  # suppressions added
    unsuppressed: int = 0  # suppressions lifted

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def aware_now(now: datetime | None) -> datetime:
    """`now`, or the current time: callers (tests, backfills) may pin the moment, but never naively."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("`now` must be an aware datetime")
    return now


def hash_key(*parts: str) -> str:
    """A 64-hex event key from provider ids: the same provider event always gets the same key."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _transient(outcome: object) -> bool:
    """Only an abort PostgreSQL itself says is worth repeating; every other error is final."""
    return isinstance(outcome, DBAPIError) and getattr(outcome.orig, "sqlstate", None) in RETRYABLE


def retry_transient(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run the whole call again when PostgreSQL aborts it for a deadlock (every call is idempotent).

    Our own transactions take row locks in key order and cannot deadlock each other; another
    writer (delivery marking the same touches) can, and then one of the two is aborted. The wait
    between attempts is the shared policy's jittered backoff (techtouch.adapters.retry), so two
    writers that collided do not come back at the same instant and collide again.
    """

    def log_retry(retry: Retry) -> None:
        code = getattr(getattr(retry.outcome, "orig", None), "sqlstate", None)
        log.warning(
            "%s: database answered %s, attempt %d of %d", function.__name__, code, retry.attempt, ATTEMPTS
        )

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        policy = retrying(
            max_attempts=ATTEMPTS,
            backoff=BACKOFF,
            cap=BACKOFF_CAP,
            retryable=_transient,
            on_retry=log_retry,
        )
        result: _R = policy(function, *args, **kwargs)
        return result

    return wrapper


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One transaction; on SQLite the write lock is taken at BEGIN so concurrent POSTs queue.

    SQLite has one writer at a time, and a writer that finds the lock taken sleeps in growing
    steps (its busy handler), so threads of one process queue on a Python lock first: they then
    take turns without sleeping (bench_webhooks, 4 concurrent senders: 5,700 → 7,500 events/s).
    Other processes (a daily run) still meet the busy timeout, as before.
    """
    if engine.dialect.name != "sqlite":
        with engine.connect() as connection, connection.execution_options(immediate=True).begin():
            yield connection
        return
    with _SQLITE_WRITERS_GUARD:
        lock = _SQLITE_WRITERS.setdefault(engine, threading.Lock())
    with lock, engine.connect() as connection, connection.execution_options(immediate=True).begin():
        yield connection


def key_in(connection: Connection, column: Any, keys: Sequence[str]) -> Any:
    """`column IN keys`; on PostgreSQL `= ANY(array)`: one parameter instead of thousands."""
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam("_keys", list(keys), type_=postgresql.ARRAY(column.type)))
    return column.in_(keys)


def batched(items: Sequence[str], size: int = IN_BATCH) -> Iterator[Sequence[str]]:
    """Slices of at most `size` keys: SQLite limits the parameters of one statement."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class KnownTouch:
    """The columns of a touch that feedback needs to attribute an event and to settle the touch."""

    account_id: str
    contact_id: str | None
    channel: str
    status: str


def touches(connection: Connection, keys: Iterable[str]) -> dict[str, KnownTouch]:
    """The touches among `keys` (one query per IN_BATCH keys); unknown keys are simply absent."""
    found: dict[str, KnownTouch] = {}
    columns = (Touch.key, Touch.account_id, Touch.contact_id, Touch.channel, Touch.status)
    for batch in batched(sorted(set(keys))):
        for key, account_id, contact_id, channel, status in connection.execute(
            select(*columns).where(key_in(connection, Touch.key, batch))
        ):
            found[key] = KnownTouch(account_id, contact_id, channel, status)
    return found


def mark_sent(connection: Connection, provider_ids: Mapping[str, str | None]) -> None:
    """Touches still sending/pending that a provider reported on: `sent`, keeping a known provider id."""
    if not provider_ids:
        return
    table = cast(Table, Touch.__table__)
    statement = (
        update(table)
        # or_(), not in_(): an expanding IN cannot be part of an executemany
        .where(table.c.key == bindparam("_key"), or_(*(table.c.status == s for s in EVIDENCE_STATUSES)))
        .values(status="sent", provider_id=func.coalesce(table.c.provider_id, bindparam("_provider_id")))
    )
    connection.execute(statement, [{"_key": k, "_provider_id": p} for k, p in sorted(provider_ids.items())])


def suppress(connection: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Add suppressions (earliest per contact and channel wins in the batch); existing rows stay."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        slot = (row["contact_id"], row["channel"])
        if slot not in first or row["since"] < first[slot]["since"]:
            first[slot] = row
    ordered = [first[slot] for slot in sorted(first)]
    inserted = insert_new(
        connection, cast(Table, Suppression.__table__), ordered, ["contact_id", "channel"], "contact_id"
    )
    return len(inserted)


def record(connection: Connection, rows: list[dict[str, Any]], result: Applied) -> set[str]:
    """Insert event rows (deduplicated by key); returns the keys inserted now and counts the rest."""
    by_key = {row["key"]: row for row in rows}
    unique = [by_key[key] for key in sorted(by_key)]
    for row in unique:
        row.setdefault("detail", None)
    new = insert_new(connection, cast(Table, Event.__table__), unique, ["key"], "key")
    result.recorded += len(new)
    result.duplicates += len(rows) - len(new)
    return new
