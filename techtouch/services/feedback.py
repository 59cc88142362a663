"""Provider and link feedback applied to the database: what SendGrid, Twilio and our links tell us.

No web framework here: techtouch.entrypoints.web verifies signatures and hands over parsed payloads, and tests
or a backfill script can call the same functions. How it works, and why:

* One transaction per call (per webhook POST), taken with SQLite's write lock at BEGIN
  (db.py's `immediate`) so that concurrent POSTs queue instead of failing half-way.
* Batched: a SendGrid POST of 1,000 events costs one query for the touches it names, one
  INSERT … ON CONFLICT DO NOTHING RETURNING for the events, one executemany UPDATE for touches
  and one INSERT for suppressions, whatever the mix. PostgreSQL gets arrays (`= ANY`, `unnest`)
  instead of thousands of placeholders.
* Rows are written in key order, so two batches never wait for each other in a cycle; a deadlock
  with another writer (PostgreSQL aborts one side) re-runs the call, which is idempotent.
* Idempotent: every provider event gets a key derived from the provider's own id (`sg_event_id`,
  Twilio's MessageSid + status), so a replay inserts nothing. Side effects (suppressions, lifting
  them) follow only from events inserted *now* (RETURNING), so replaying an old STOP after a newer
  START does not re-suppress anyone.
* Evidence for crash reconciliation: any provider event about a touch still `sending` (or
  `pending`) proves the provider has the message; the touch becomes `sent` with the provider id.
* Suppressions follow techtouch.services.importer: email suppressions are permanent (first reason kept);
  SMS suppressions have reason `sms_stop`, which START lifts.
* Nothing personal is logged: counts only. Event values are touch keys or survey answers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, Table, and_, any_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from techtouch.adapters.db.models import Account, Contact, Event, Suppression, Touch
from techtouch.domain import validators
from techtouch.services.importer import event_key

log = logging.getLogger(__name__)

IN_BATCH = 5_000  # keys per IN (...) query
COMMENT_MAX = 2_000  # characters of a survey comment
EVIDENCE_STATUSES = ("sending", "pending")  # touches a provider event moves to `sent`


class BadPayload(ValueError):
    """A payload that is not what the provider sends; the message says what is wrong (HTTP 400)."""


class BadAnswer(ValueError):
    """A survey answer or comment that cannot be stored; the message is shown to the person."""


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


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("`now` must be an aware datetime")
    return now


def _hash_key(*parts: str) -> str:
    """A 64-hex event key from provider ids: the same provider event always gets the same key."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


_P = ParamSpec("_P")
_R = TypeVar("_R")
RETRYABLE = ("40P01", "40001")  # PostgreSQL: deadlock detected, serialization failure
ATTEMPTS = 3


def _retrying(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run the whole call again when PostgreSQL aborts it for a deadlock (it is idempotent).

    Our own transactions take row locks in key order and cannot deadlock each other; another
    writer (delivery marking the same touches) can, and then one of the two is aborted.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return function(*args, **kwargs)
            except DBAPIError as exc:
                code = getattr(exc.orig, "sqlstate", None)
                if code not in RETRYABLE or attempt == ATTEMPTS:
                    raise
                log.warning(
                    "%s: database answered %s, attempt %d of %d", function.__name__, code, attempt, ATTEMPTS
                )
        raise AssertionError("unreachable")

    return wrapper


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
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


def _insert(connection: Connection, table: Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _insert_new(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    column: str,
) -> set[Any]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING `column`: the values of the rows actually inserted.

    PostgreSQL gets one array per column, unnest()ed: a short statement whatever the batch size
    (a VALUES list of 1,000 rows costs psycopg ~20 ms just to convert its placeholders).
    """
    if not rows:
        return set()
    statement = _insert(connection, table)
    params: list[Mapping[str, Any]] | None = list(rows)
    if connection.dialect.name == "postgresql":
        names = list(rows[0])
        arrays = (
            func.unnest(bindparam(f"_{n}", [row[n] for row in rows], type_=postgresql.ARRAY(table.c[n].type)))
            for n in names
        )
        statement, params = statement.from_select(names, select(*arrays)), None
    statement = statement.on_conflict_do_nothing(index_elements=list(conflict)).returning(table.c[column])
    return set(connection.execute(statement, params).scalars())


def _key_in(connection: Connection, column: Any, keys: Sequence[str]) -> Any:
    """`column IN keys`; on PostgreSQL `= ANY(array)`: one parameter instead of thousands."""
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam("_keys", list(keys), type_=postgresql.ARRAY(column.type)))
    return column.in_(keys)


def _batched(items: Sequence[str], size: int = IN_BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class _Touch:
    account_id: str
    contact_id: str | None
    channel: str
    status: str


def _touches(connection: Connection, keys: Iterable[str]) -> dict[str, _Touch]:
    found: dict[str, _Touch] = {}
    columns = (Touch.key, Touch.account_id, Touch.contact_id, Touch.channel, Touch.status)
    for batch in _batched(sorted(set(keys))):
        for key, account_id, contact_id, channel, status in connection.execute(
            select(*columns).where(_key_in(connection, Touch.key, batch))
        ):
            found[key] = _Touch(account_id, contact_id, channel, status)
    return found


def _mark_sent(connection: Connection, provider_ids: Mapping[str, str | None]) -> None:
    """Touches still sending/pending that a provider reported on: `sent`, keeping a known provider id."""
    if not provider_ids:
        return
    table = Touch.__table__
    statement = (
        update(table)
        # or_(), not in_(): an expanding IN cannot be part of an executemany
        .where(table.c.key == bindparam("_key"), or_(*(table.c.status == s for s in EVIDENCE_STATUSES)))
        .values(status="sent", provider_id=func.coalesce(table.c.provider_id, bindparam("_provider_id")))
    )
    connection.execute(statement, [{"_key": k, "_provider_id": p} for k, p in sorted(provider_ids.items())])


def _suppress(connection: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Add suppressions (earliest per contact and channel wins in the batch); existing rows stay."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        slot = (row["contact_id"], row["channel"])
        if slot not in first or row["since"] < first[slot]["since"]:
            first[slot] = row
    ordered = [first[slot] for slot in sorted(first)]
    inserted = _insert_new(
        connection, Suppression.__table__, ordered, ["contact_id", "channel"], "contact_id"
    )
    return len(inserted)


def _record(connection: Connection, rows: list[dict[str, Any]], result: Applied) -> set[str]:
    """Insert event rows (deduplicated by key); returns the keys inserted now and counts the rest."""
    by_key = {row["key"]: row for row in rows}
    unique = [by_key[key] for key in sorted(by_key)]
    for row in unique:
        row.setdefault("detail", None)
    new = _insert_new(connection, Event.__table__, unique, ["key"], "key")
    result.recorded += len(new)
    result.duplicates += len(rows) - len(new)
    return new


# ------------------------------------------------------------------------------------- SendGrid

# SendGrid event -> (event type recorded, email suppression reason). `processed` only proves that
# SendGrid has the message (the touch becomes `sent`); `deferred` is a retry in progress.
SENDGRID_EFFECTS: dict[str, tuple[str | None, str | None]] = {
    "processed": (None, None),
    "deferred": (None, None),
    "delivered": ("email_delivered", None),
    "open": ("email_opened", None),
    "click": ("email_clicked", None),
    "bounce": ("email_bounced", "bounced"),
    "dropped": ("email_bounced", "dropped"),
    "spamreport": ("unsubscribed", "spamreport"),
    "unsubscribe": ("unsubscribed", "unsubscribed"),
    "group_unsubscribe": ("unsubscribed", "unsubscribed"),
}
_MAX_TIMESTAMP = 2**33  # year 2242: beyond it a `timestamp` is milliseconds or garbage


@dataclass(frozen=True)
class SendGridEvent:
    kind: str
    occurred_at: datetime
    key: str  # our event key, from sg_event_id
    touch_key: str | None  # our custom arg
    message_id: str | None  # sg_message_id up to the first '.', what the send API returned
    email: str | None
    bounce_type: str | None  # `bounce` (permanent) or `blocked` (temporary)


def _text_field(event: Mapping[str, Any], name: str) -> str | None:
    value = event.get(name)
    return value if isinstance(value, str) and value else None


def parse_sendgrid_events(body: bytes | str) -> list[SendGridEvent]:
    """The Event Webhook body (a JSON array of event objects); BadPayload says what is wrong.

    Every event needs a string `event` and a Unix `timestamp`; other fields are optional and
    unknown kinds are kept (and later ignored), as SendGrid adds kinds over time.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"body is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise BadPayload(f"body must be a JSON array of events, got {type(data).__name__}")
    events: list[SendGridEvent] = []
    for index, event in enumerate(data):
        if not isinstance(event, dict):
            raise BadPayload(f"event {index}: must be an object, got {type(event).__name__}")
        kind = event.get("event")
        if not isinstance(kind, str) or not kind:
            raise BadPayload(f"event {index}: `event` must be a non-empty string")
        timestamp = event.get("timestamp")
        if (
            isinstance(timestamp, bool)
            or not isinstance(timestamp, int | float)
            or not math.isfinite(timestamp)
            or not 0 <= timestamp < _MAX_TIMESTAMP
        ):
            raise BadPayload(f"event {index}: `timestamp` must be a Unix time in seconds")
        event_id = _text_field(event, "sg_event_id")
        if event_id is None:  # not documented as optional, but a replay must still be a no-op
            key = _hash_key("sendgrid-content", json.dumps(event, sort_keys=True, separators=(",", ":")))
        else:
            key = _hash_key("sendgrid", event_id)
        message_id = _text_field(event, "sg_message_id")
        events.append(
            SendGridEvent(
                kind=kind,
                occurred_at=datetime.fromtimestamp(timestamp, UTC),
                key=key,
                touch_key=_text_field(event, "touch_key"),
                message_id=message_id.split(".", 1)[0] if message_id else None,
                email=_text_field(event, "email"),
                bounce_type=_text_field(event, "type"),
            )
        )
    return events


def _contacts_by_email(connection: Connection, emails: set[str]) -> dict[str, list[tuple[str, str]]]:
    """Lower-cased address -> [(contact_id, account_id)]: one address may be a contact in two accounts."""
    found: dict[str, list[tuple[str, str]]] = {}
    for batch in _batched(sorted(emails)):
        query = select(func.lower(Contact.email), Contact.id, Contact.account_id).where(
            func.lower(Contact.email).in_(batch)
        )
        for email, contact_id, account_id in connection.execute(query):
            found.setdefault(email, []).append((contact_id, account_id))
    return found


@_retrying
def apply_sendgrid_events(engine: Engine, events: Sequence[SendGridEvent]) -> Applied:
    """Apply one webhook POST's events in one transaction (see the module docstring).

    An event names its touch by the `touch_key` custom arg; unknown keys (or a key of a non-email
    touch) are counted and skipped. An event without `touch_key` can only suppress: it is mapped to
    the contacts with that address, if any. Blocked bounces (`type: blocked`, temporary) do not.
    """
    result = Applied(received=len(events))
    with _writing(engine) as connection:
        touches = _touches(connection, {e.touch_key for e in events if e.touch_key})
        by_email = _contacts_by_email(
            connection,
            {
                e.email.lower()
                for e in events
                if e.touch_key is None and e.email and SENDGRID_EFFECTS.get(e.kind, (None, None))[1]
            },
        )
        evidence: dict[str, str | None] = {}
        rows: list[dict[str, Any]] = []
        suppressions: dict[str, dict[str, Any]] = {}  # event key -> suppression it causes
        for event in events:
            effect = SENDGRID_EFFECTS.get(event.kind)
            touch = touches.get(event.touch_key) if event.touch_key else None
            if event.touch_key is not None:
                if touch is None or touch.channel != "email":
                    result.unknown += 1
                    continue
                if touch.status in EVIDENCE_STATUSES:
                    evidence[event.touch_key] = evidence.get(event.touch_key) or event.message_id
            if effect is None or (event.kind == "bounce" and event.bounce_type == "blocked"):
                result.ignored += 1
                continue
            type_, reason = effect
            if type_ is None:
                continue
            if touch is not None:
                targets = [(touch.contact_id, touch.account_id, event.key)]
            elif reason is not None and event.email:
                found = by_email.get(event.email.lower(), [])
                targets = [(c, a, _hash_key(event.key, c)) for c, a in found]
            else:
                targets = []
            if not targets:
                result.unknown += 1
                continue
            for contact_id, account_id, key in targets:
                rows.append(
                    {
                        "key": key,
                        "account_id": account_id,
                        "contact_id": contact_id,
                        "occurred_at": event.occurred_at,
                        "type": type_,
                        "value": event.touch_key,
                        "source": "sendgrid",
                    }
                )
                if reason is not None and contact_id is not None:
                    suppressions[key] = {
                        "contact_id": contact_id,
                        "channel": "email",
                        "reason": reason,
                        "since": event.occurred_at,
                    }
        new = _record(connection, rows, result)
        _mark_sent(connection, evidence)
        result.touches = len(evidence)
        result.suppressed = _suppress(connection, (s for k, s in suppressions.items() if k in new))
    log.info("sendgrid events applied: %s", result.as_dict())
    return result


# --------------------------------------------------------------------------------------- Twilio

TWILIO_OPTED_OUT = "21610"  # "Attempt to send to unsubscribed recipient": the number sent STOP
TWILIO_EVIDENCE = ("accepted", "scheduled", "queued", "sending", "sent", "delivered", "read")
TWILIO_FAILED = ("failed", "undelivered")
TWILIO_KNOWN = (*TWILIO_EVIDENCE, *TWILIO_FAILED, "canceled", "partially_delivered", "receiving", "received")

# Whole-message keywords, as carriers and Twilio's default opt-out handling treat them.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

SmsAction = Literal["stop", "start", "help", "other"]


def _required(params: Mapping[str, str], *names: str) -> list[str]:
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise BadPayload(f"missing form field(s): {', '.join(missing)}")
    return [params[name] for name in names]


@_retrying
def apply_twilio_status(
    engine: Engine, params: Mapping[str, str], touch_key: str | None, *, now: datetime | None = None
) -> Applied:
    """One status callback: MessageSid, MessageStatus and ErrorCode; `touch_key` from the callback URL.

    queued/sent/delivered… move a sending/pending touch to `sent` (provider id = MessageSid);
    delivered records `sms_delivered`; failed/undelivered mark a sending/pending touch `failed`,
    and with ErrorCode 21610 (the number opted out) record `sms_stop` and suppress SMS.
    The same (MessageSid, status) twice changes nothing.
    """
    sid, status = _required(params, "MessageSid", "MessageStatus")
    error_code = (params.get("ErrorCode") or "").strip()
    result = Applied(received=1)
    if status not in TWILIO_KNOWN:
        result.ignored = 1
        return result
    if not touch_key:
        result.unknown = 1
        return result
    with _writing(engine) as connection:
        touch = _touches(connection, [touch_key]).get(touch_key)
        if touch is None or touch.channel != "sms":
            result.unknown = 1
            return result
        event = {
            "key": _hash_key("twilio-status", sid, status),
            "account_id": touch.account_id,
            "contact_id": touch.contact_id,
            "occurred_at": _now(now),
            "value": touch_key,
            "source": "twilio",
        }
        if status in TWILIO_EVIDENCE:
            if touch.status in EVIDENCE_STATUSES:
                _mark_sent(connection, {touch_key: sid})
                result.touches = 1
            if status == "delivered":
                _record(connection, [event | {"type": "sms_delivered"}], result)
            return result
        if status in TWILIO_FAILED:
            if touch.status in EVIDENCE_STATUSES:
                table = Touch.__table__
                connection.execute(
                    update(table)
                    .where(table.c.key == touch_key, table.c.status.in_(EVIDENCE_STATUSES))
                    .values(
                        status="failed",
                        provider_id=func.coalesce(table.c.provider_id, sid),
                        error=f"twilio {status}" + (f" (error {error_code})" if error_code else ""),
                    )
                )
                result.touches = 1
            if error_code == TWILIO_OPTED_OUT and touch.contact_id is not None:
                new = _record(connection, [event | {"type": "sms_stop"}], result)
                if new:
                    result.suppressed = _suppress(
                        connection,
                        [
                            {
                                "contact_id": touch.contact_id,
                                "channel": "sms",
                                "reason": "sms_stop",
                                "since": event["occurred_at"],
                            }
                        ],
                    )
            return result
        result.ignored = 1
    return result


def classify_sms(body: str | None) -> SmsAction:
    """STOP/START/HELP keywords are the whole message, trimmed, in any case; anything else is `other`."""
    word = (body or "").strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return "other"


@dataclass
class Inbound:
    action: SmsAction
    contacts: int  # contacts with the sender's number
    applied: Applied = field(default_factory=Applied)


@_retrying
def apply_twilio_inbound(
    engine: Engine, params: Mapping[str, str], *, now: datetime | None = None
) -> Inbound:
    """An inbound SMS: STOP suppresses SMS to every contact with that number, START lifts it.

    Contacts are matched by number in E.164. Only keywords are acted on; the text of any other
    message is neither stored nor logged.
    """
    sid, sender = _required(params, "MessageSid", "From")
    action = classify_sms(params.get("Body"))
    inbound = Inbound(action=action, contacts=0, applied=Applied(received=1))
    if action not in ("stop", "start"):
        return inbound
    try:
        phone = validators.parse_phone_e164(sender.strip())
    except ValueError:
        phone = sender.strip()
    occurred_at = _now(now)
    type_ = "sms_stop" if action == "stop" else "sms_start"
    result = inbound.applied
    with _writing(engine) as connection:
        contacts = connection.execute(
            select(Contact.id, Contact.account_id).where(Contact.phone == phone)
        ).all()
        inbound.contacts = len(contacts)
        if not contacts:
            result.unknown = 1
            return inbound
        rows = [
            {
                "key": _hash_key("twilio-inbound", sid, contact_id),
                "account_id": account_id,
                "contact_id": contact_id,
                "occurred_at": occurred_at,
                "type": type_,
                "value": None,
                "source": "twilio",
            }
            for contact_id, account_id in contacts
        ]
        new = _record(connection, rows, result)
        changed = [row["contact_id"] for row in rows if row["key"] in new]
        if action == "stop":
            result.suppressed = _suppress(
                connection,
                [
                    {"contact_id": c, "channel": "sms", "reason": "sms_stop", "since": occurred_at}
                    for c in changed
                ],
            )
        elif changed:
            result.unsuppressed = _lift_sms_stop(connection, changed, occurred_at)
    log.info("inbound sms %s: %s", action, result.as_dict())
    return inbound


def _lift_sms_stop(connection: Connection, contact_ids: Sequence[str], start: datetime) -> int:
    """START lifts `sms_stop` suppressions that began before it (as the importer does)."""
    statement = delete(Suppression).where(
        and_(
            Suppression.contact_id.in_(list(contact_ids)),
            Suppression.channel == "sms",
            Suppression.reason == "sms_stop",
            Suppression.since <= start,
        )
    )
    return int(connection.execute(statement).rowcount or 0)


# ---------------------------------------------------------------------------------------- links

LINK_CHANNELS = ("email", "sms")


@dataclass(frozen=True)
class Unsubscribed:
    found: bool  # the contact exists
    changed: bool  # this call suppressed the channel (False: it already was, or no such contact)


@_retrying
def unsubscribe(
    engine: Engine,
    contact_id: str,
    channel: str = "email",
    *,
    source: str = "web",
    now: datetime | None = None,
) -> Unsubscribed:
    """Suppress `channel` for a contact from a signed link; a repeated click changes nothing.

    Email records `unsubscribed` (reason `unsubscribed`); SMS records `sms_stop` (reason
    `sms_stop`, so that texting START lifts it, as it would after texting STOP).
    """
    if channel not in LINK_CHANNELS:
        raise BadAnswer(f"unknown channel {channel!r}")
    occurred_at = _now(now)
    with _writing(engine) as connection:
        account_id = connection.scalar(select(Contact.account_id).where(Contact.id == contact_id))
        if account_id is None:
            return Unsubscribed(found=False, changed=False)
        already = connection.scalar(
            select(Suppression.reason).where(
                Suppression.contact_id == contact_id, Suppression.channel == channel
            )
        )
        if already is not None:
            return Unsubscribed(found=True, changed=False)
        type_, reason = ("unsubscribed", "unsubscribed") if channel == "email" else ("sms_stop", "sms_stop")
        row = {
            "key": event_key(account_id, contact_id, occurred_at, type_, source),
            "account_id": account_id,
            "contact_id": contact_id,
            "occurred_at": occurred_at,
            "type": type_,
            "value": source,
            "source": source,
        }
        _record(connection, [row], Applied())
        _suppress(
            connection,
            [{"contact_id": contact_id, "channel": channel, "reason": reason, "since": occurred_at}],
        )
    log.info("unsubscribed from %s via %s", channel, source)
    return Unsubscribed(found=True, changed=True)


@dataclass(frozen=True)
class Preferences:
    email_suppressed: bool
    sms_suppressed: bool
    has_phone: bool


def preferences(engine: Engine, contact_id: str) -> Preferences | None:
    """What the preferences page shows: which channels still reach the contact (None: no such contact)."""
    with engine.connect() as connection:
        phone = connection.execute(select(Contact.phone).where(Contact.id == contact_id)).first()
        if phone is None:
            return None
        channels = set(
            connection.scalars(select(Suppression.channel).where(Suppression.contact_id == contact_id))
        )
    return Preferences("email" in channels, "sms" in channels, phone[0] is not None)


def survey_value(survey: str, answer: str) -> str:
    """`<survey>:<answer>` checked and normalized like an imported event (BadAnswer if not valid)."""
    try:
        value = validators.parse_survey_value(f"{survey}:{answer}")
    except ValueError as exc:
        raise BadAnswer(str(exc)) from None
    if len(value) > Event.__table__.c.value.type.length:
        raise BadAnswer("survey answer too long")
    return value


@dataclass(frozen=True)
class SurveyAnswer:
    value: str  # `<survey>:<answer>`
    recorded: bool  # False: the contact's latest answer to this survey was already this one


@_retrying
def record_survey_answer(
    engine: Engine, account_id: str, contact_id: str, survey: str, answer: str, *, now: datetime | None = None
) -> SurveyAnswer | None:
    """Record a one-click answer as a `survey` event; None when the account no longer exists.

    Clicking the same answer again records nothing. A different answer is a new event, placed
    after every earlier answer of the account to this survey so that it is the one journeys read
    (techtouch.adapters.db.signals takes the latest per account and survey).
    """
    value = survey_value(survey, answer)
    occurred_at = _now(now)
    prefix = value.split(":", 1)[0] + ":"
    with _writing(engine) as connection:
        if connection.scalar(select(Account.id).where(Account.id == account_id)) is None:
            return None
        known = connection.scalar(
            select(Contact.id).where(Contact.id == contact_id, Contact.account_id == account_id)
        )
        answers = (
            Event.account_id == account_id,
            Event.type == "survey",
            Event.value.startswith(prefix, autoescape=True),
        )
        contact = (Event.contact_id == known) if known else Event.contact_id.is_(None)
        mine = connection.scalar(
            select(Event.value)
            .where(*answers, contact)
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .limit(1)
        )
        if mine == value:
            return SurveyAnswer(value, recorded=False)
        latest = connection.scalar(select(func.max(Event.occurred_at)).where(*answers))
        if latest is not None and latest >= occurred_at:
            occurred_at = latest + timedelta(microseconds=1)
        row = {
            "key": event_key(account_id, known, occurred_at, "survey", value),
            "account_id": account_id,
            "contact_id": known,
            "occurred_at": occurred_at,
            "type": "survey",
            "value": value,
            "source": "web",
        }
        _record(connection, [row], Applied())
    log.info("survey answer recorded: %s", value)
    return SurveyAnswer(value, recorded=True)


@_retrying
def record_survey_comment(
    engine: Engine,
    account_id: str,
    contact_id: str,
    survey: str,
    answer: str,
    comment: str,
    *,
    now: datetime | None = None,
) -> bool | None:
    """Store a free-text comment on an answer (`survey_comment`, value `<survey>:<answer>`, text in
    `detail`). The same comment submitted twice is stored once. None when the account is gone."""
    value = survey_value(survey, answer)
    text = comment.strip()
    if not text:
        raise BadAnswer("the comment is empty")
    if len(text) > COMMENT_MAX:
        raise BadAnswer(f"the comment is longer than {COMMENT_MAX} characters")
    occurred_at = _now(now)
    with _writing(engine) as connection:
        if connection.scalar(select(Account.id).where(Account.id == account_id)) is None:
            return None
        known = connection.scalar(
            select(Contact.id).where(Contact.id == contact_id, Contact.account_id == account_id)
        )
        row = {
            "key": _hash_key("survey-comment", account_id, known or "", value, text),
            "account_id": account_id,
            "contact_id": known,
            "occurred_at": occurred_at,
            "type": "survey_comment",
            "value": value,
            "source": "web",
            "detail": text,
        }
        return bool(_record(connection, [row], Applied()))
