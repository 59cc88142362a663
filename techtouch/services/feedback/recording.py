"""Database plumbing shared by every kind of feedback: one transaction per call, batched inserts of
events and suppressions, and the retry of a call the database refused for a moment (a deadlock,
a lock it could not get in time); when the moment lasts, DatabaseBusy, so the sender retries later.

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

from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from techtouch.adapters.db.bulk import insert_new
from techtouch.adapters.db.models import Event, Suppression, Touch, UTCDateTime
from techtouch.adapters.retry import Retry, retrying
from techtouch.domain.statuses import DELIVERY_RANK, NO_DELIVERY_RANK, DeliveryStatus, delivery_rank

log = logging.getLogger(__name__)

IN_BATCH = 5_000  # keys per IN (...) query
EVIDENCE_STATUSES = ("sending", "pending")  # touches a provider event moves to `sent`
# PostgreSQL: deadlock detected, serialization failure, lock not available (`lock_timeout`).
RETRYABLE = ("40P01", "40001", "55P03")
# SQLite: the file is locked by another connection (after the busy timeout), a table is locked.
SQLITE_RETRYABLE = ("SQLITE_BUSY", "SQLITE_LOCKED")
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


class DatabaseBusy(Exception):
    """The database stayed locked (or kept aborting the call) through every attempt: nothing was
    recorded, and the caller should answer so that the sender tries again later (HTTP 503)."""


def busy_code(outcome: object) -> str | None:
    """The database's name for a momentary refusal (`40P01`, `55P03`, `SQLITE_BUSY`…), else None.

    PostgreSQL says it with a SQLSTATE; sqlite3 with its error name ("database is locked" is
    SQLITE_BUSY: another connection held the write lock for longer than the busy timeout).
    """
    if not isinstance(outcome, DBAPIError):
        return None
    original = outcome.orig
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate in RETRYABLE:
        return str(sqlstate)
    name = getattr(original, "sqlite_errorname", None)
    if name in SQLITE_RETRYABLE:
        return str(name)
    if name is None and "database is locked" in str(original):  # an sqlite3 without error names
        return "SQLITE_BUSY"
    return None


def _transient(outcome: object) -> bool:
    """Only a refusal the database itself says is momentary is worth repeating; every other error is final."""
    return busy_code(outcome) is not None


def retry_transient(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run the whole call again when the database refuses it for a moment (every call is idempotent).

    Our own transactions take row locks in key order and cannot deadlock each other; another
    writer (delivery marking the same touches) can, and then one of the two is aborted. Another
    process may also hold the lock longer than we wait for it: SQLite's write lock beyond the
    busy timeout (a daily run), a PostgreSQL table lock beyond `lock_timeout`. The wait between
    attempts is the shared policy's jittered backoff (techtouch.adapters.retry), so two writers
    that collided do not come back at the same instant and collide again. When the attempts run
    out on such a refusal the call raises DatabaseBusy (the transaction was rolled back: nothing
    is half-recorded), which the web service answers 503 so that the provider sends it again.
    """

    def log_retry(retry: Retry) -> None:
        log.warning(
            "%s: database answered %s, attempt %d of %d",
            function.__name__,
            busy_code(retry.outcome),
            retry.attempt,
            ATTEMPTS,
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
        try:
            result: _R = policy(function, *args, **kwargs)
        except DBAPIError as exc:
            code = busy_code(exc)
            if code is None:
                raise
            log.error("%s: database still answered %s after %d attempts", function.__name__, code, ATTEMPTS)
            raise DatabaseBusy(f"the database is busy ({code}); nothing was recorded, try again") from exc
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


@dataclass(frozen=True)
class Verdict:
    """What a provider said about one touch (DeliveryStatus), and when it said it."""

    status: DeliveryStatus
    at: datetime


def keep_strongest(verdicts: dict[str, Verdict], touch_key: str, verdict: Verdict) -> None:
    """Keep, per touch, the verdict of a batch that ranks highest (of equals, the earliest): the
    one that the database would end up with if the batch's events were applied one by one."""
    held = verdicts.get(touch_key)
    if held is None or (delivery_rank(verdict.status), held.at) > (delivery_rank(held.status), verdict.at):
        verdicts[touch_key] = verdict


def _rank_of(column: Any) -> Any:
    """`CASE column WHEN 'delivered' THEN 1 … ELSE 0 END`: DELIVERY_RANK in SQL (NULL ranks 0)."""
    return case({str(s): r for s, r in DELIVERY_RANK.items()}, value=column, else_=NO_DELIVERY_RANK)


def settle(
    connection: Connection,
    provider_ids: Mapping[str, str | None],
    verdicts: Mapping[str, Verdict] | None = None,
) -> None:
    """What provider events do to their touches, as one executemany UPDATE in key order.

    Evidence (`provider_ids`): a touch still sending/pending becomes `sent`, keeping a known
    provider id. Verdicts: `delivery_status` takes the verdict only when it ranks higher than the
    stored one, decided by the UPDATE itself (no read-modify-write: a concurrent webhook that
    raised it first is seen by the WHERE, and a replay or a late lower event matches no row).
    """
    verdicts = verdicts or {}
    if not provider_ids and not verdicts:
        return
    table = cast(Table, Touch.__table__)
    # or_(), not in_(): an expanding IN cannot be part of an executemany
    settles = and_(
        bindparam("_evidence", type_=Boolean), or_(*(table.c.status == s for s in EVIDENCE_STATUSES))
    )
    raises = _rank_of(table.c.delivery_status) < bindparam("_rank", type_=Integer)
    statement = (
        update(table)
        .where(table.c.key == bindparam("_key"), or_(settles, raises))
        .values(
            status=case((settles, "sent"), else_=table.c.status),
            provider_id=case(
                (settles, func.coalesce(table.c.provider_id, bindparam("_provider_id", type_=String))),
                else_=table.c.provider_id,
            ),
            delivery_status=case(
                (raises, bindparam("_verdict", type_=String)), else_=table.c.delivery_status
            ),
            delivery_status_at=case(
                (raises, bindparam("_verdict_at", type_=UTCDateTime())), else_=table.c.delivery_status_at
            ),
        )
    )
    rows = []
    for key in sorted(provider_ids.keys() | verdicts.keys()):
        verdict = verdicts.get(key)
        rows.append(
            {
                "_key": key,
                "_evidence": key in provider_ids,
                "_provider_id": provider_ids.get(key),
                "_rank": NO_DELIVERY_RANK if verdict is None else delivery_rank(verdict.status),
                "_verdict": None if verdict is None else str(verdict.status),
                "_verdict_at": None if verdict is None else verdict.at,
            }
        )
    connection.execute(statement, rows)


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
