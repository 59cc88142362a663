"""Deliver due touches: re-check consent at send time, render, claim, send in batches, mark.

Exactly-once intent is the claim -> send -> mark machine of techtouch.services.claims on
`touches.status` (`pending` -> `sending`, `attempted_at` committed before the provider call ->
`sent` / `failed` / `suppressed`). What is particular to touches:

- consent and suppressions are checked again at send time: a `pending` touch no longer allowed
  is `suppressed` without an attempt, and so is an ambiguous one the provider turns out not to
  have (it is not sent again);
- the claim lease (`delivery.claim_lease_minutes`): a `sending` touch younger than it may be
  another delivery's batch in flight and is left alone;
- SendGrid cannot be asked, but the webhook marks a touch sent when its `processed` or
  `delivered` event (carrying the touch key) arrives; a touch still ambiguous
  `delivery.reconcile_after_minutes` after it was due (`attempted_at`, or `send_at` for a
  scheduled send) without such an event is sent again;
- a provider that says the recipient opted out suppresses the touch and the contact's channel;
- the recipient's window (`Window`): a channel gets a message before it is due only if it can hold
  it until its `send_at` (`can_schedule`: SendGrid, Twilio with a Messaging Service); a due message
  goes out only while it is business hours in the recipient's zone; the rest waits for a later
  delivery (the hourly `deliver` flow). A `pending` message whose intended day (the local date of
  its `send_at`) ended more than `delivery.expire_after_hours` ago, or that was recorded after that
  day ended (a backfill), is `expired`: a compare-and-set from `pending` (a `sending` touch may be
  in flight and is never expired), counted in the report, never sent. The ladder does not wait
  for it. An ambiguous attempt that the provider turns out not to have is not resent past that
  deadline either: it is `failed` with the reason.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import pickle
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.context import BaseContext
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Engine, TextClause, text

from techtouch.adapters.channels.base import OutboundEmail, OutboundSms, Receipt
from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import Suppression, sql_in
from techtouch.adapters.db.sharding import and_in_shard
from techtouch.adapters.render.renderer import Renderer, TemplateProblem
from techtouch.domain.plan import send_time
from techtouch.domain.policy import Delivery
from techtouch.domain.shards import ALL, Shard
from techtouch.domain.statuses import UNSETTLED_TOUCH_STATUSES, ReceiptStatus, TouchStatus
from techtouch.services import claims
from techtouch.services.claims import TOUCHES, Mark

log = logging.getLogger(__name__)
# Touches of one rung come in order (see DUE_SQL), so a SendGrid batch is one request of up to
# 1,000 personalizations; SMS go one request each anyway and are paced by the channel.
BATCH = {"email": 1000, "sms": 500}
# Render workers (`render_workers` > 1): a delivery with fewer messages renders in its own process,
# since a worker is a fresh interpreter that imports techtouch (about a second of CPU). A worker
# renders CHUNK rows per task, and the workers stay at most AHEAD batches ahead of the batch being
# sent, so a launch day's rendered messages never pile up in memory.
POOL_MIN_MESSAGES = 2000
CHUNK = 250
AHEAD = 2
# Unsettled messages are read this many rows at a time (a server-side cursor on PostgreSQL): a 1M
# accounts' launch day has about 800,000 of them, and all at once took 6 GB.
READ_CHUNK = 20_000

DUE_QUERY = f"""
    SELECT t.key, t.status, t.attempted_at, t.account_id, t.contact_id, t.journey, t.milestone, t.rung,
           t.channel, t.sender, t.template, t.send_at, t.created_at,
           c.name AS contact_name, c.email, c.phone, c.role, c.email_consent, c.sms_consent,
           COALESCE(c.timezone, a.timezone) AS zone,
           se.channel IS NOT NULL AS email_suppressed, ss.channel IS NOT NULL AS sms_suppressed
    FROM touches t
    JOIN contacts c ON c.id = t.contact_id
    JOIN accounts a ON a.id = t.account_id
    LEFT JOIN suppressions se ON se.contact_id = c.id AND se.channel = 'email'
    LEFT JOIN suppressions ss ON ss.contact_id = c.id AND ss.channel = 'sms'
    WHERE {sql_in("t.status", UNSETTLED_TOUCH_STATUSES)} AND t.channel IN ('email', 'sms'){{shard}}
    ORDER BY t.channel, t.sender, t.journey, t.milestone, t.template, t.id
    """


def due_sql(shard: Shard = ALL) -> TextClause:
    """Unsettled messages (of the shard's accounts: shards never send each other's mail)."""
    return text(DUE_QUERY.format(shard=and_in_shard(shard, "t.account_id")))


DUE_SQL = due_sql()


@dataclass
class DeliveryReport:
    sent: Counter[str] = field(default_factory=Counter)  # by channel
    reconciled: int = 0  # ambiguous attempts the provider turned out to have
    retried: int = 0  # ambiguous attempts the provider did not have, sent again
    awaiting: int = 0  # ambiguous attempts left for webhook evidence (inside the grace period)
    suppressed: int = 0
    opted_out: int = 0  # the provider said the recipient opted out: now suppressed
    unknown: int = 0  # attempts that ended ambiguous in this run (timeouts)
    failed: int = 0
    expired: int = 0  # pending past their intended day + grace (or recorded after it): never sent
    held: int = 0  # not due yet (or due outside business hours): a later delivery sends them
    errors: list[str] = field(default_factory=list)  # touch key + reason, never addresses

    def add(self, other: DeliveryReport) -> None:
        """Fold another delivery's counts into this one (several passes of one run or flow)."""
        self.sent.update(other.sent)
        for name in ("reconciled", "retried", "awaiting", "suppressed", "opted_out", "unknown"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed
        self.expired += other.expired
        self.held += other.held
        self.errors += other.errors


@dataclass(frozen=True)
class Window:
    """When a message may reach its recipient: `hours` (business hours and days, and
    `expire_after_hours`) in the recipient's zone (the contact's, else the account's, else
    `default_zone`: the team's)."""

    hours: Delivery
    default_zone: str = "UTC"

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self.hours.expire_after_hours)


ContextFor = Callable[[dict[str, Any]], dict[str, Any]]
# A batch rendered: its messages by touch key (in row order) and the touches whose template failed.
Rendered = tuple[dict[str, OutboundEmail | OutboundSms], list[Mark]]


def deliver(
    engine: Engine,
    renderer: Renderer,
    channels: Mapping[str, Any],
    context_for: ContextFor,
    *,
    shard: Shard = ALL,
    limit: int | None = None,
    reconcile_after: timedelta = timedelta(hours=1),
    lease: timedelta = timedelta(minutes=10),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    window: Window | None = None,
    workers: int = 1,
) -> DeliveryReport:
    """Deliver due touches of the channels given ({"email": ..., "sms": ...}).

    `shard` limits delivery to a shard's accounts (in SQL), so that shards never send each other's mail.
    `window`: the recipients' business hours and the grace before a message expires (see the module
    docstring); every delivery of the application passes it (techtouch.services.day). Without it,
    every unsettled touch is handed over as it is (the state machine's own tests).
    `workers` (the `render_workers` setting): with more than one, and at least POOL_MIN_MESSAGES
    messages, rendering goes to that many worker processes (see render_batches); claims, sends and marks
    stay here, batch after batch, so the claim -> send -> mark machine is the same.
    """
    report = DeliveryReport()
    sending: deque[tuple[str, Any, list[dict[str, Any]]]] = deque()

    def batches() -> Generator[tuple[str, list[dict[str, Any]]], None, None]:
        for channel_name, channel, rows in _due_batches(
            engine, channels, shard, limit, lease, now, window, report
        ):  # fmt: skip
            sending.append((channel_name, channel, rows))
            yield channel_name, rows

    renders = render_batches(renderer, context_for, batches(), workers)
    with closing(renders):  # a failure here shuts the render workers down
        for rendered in renders:  # in the batches' order: render_batches keeps it
            channel_name, channel, batch = sending.popleft()
            _deliver_batch(
                engine, channel, channel_name, batch, rendered, report, reconcile_after, lease, now
            )  # fmt: skip
    return report


def _due_batches(
    engine: Engine,
    channels: Mapping[str, Any],
    shard: Shard,
    limit: int | None,
    lease: timedelta,
    now: Callable[[], datetime],
    window: Window | None,
    report: DeliveryReport,
) -> Generator[tuple[str, Any, list[dict[str, Any]]], None, None]:
    """The rows to hand over, in batches of BATCH[channel] rows in DUE_SQL's order.

    DUE_SQL is read READ_CHUNK rows at a time through a server-side cursor (`stream_results`), so a
    launch day's hundreds of thousands of unsettled messages are never all in memory: each chunk
    is checked (consent, suppressions, the window, the lease) as it comes, and the rows of a batch
    cut by a chunk's end wait for the next chunk, so the batches are those of one whole read. The
    cursor's transaction only reads; the claims and marks commit on other connections (SQLite:
    WAL lets them), and every one of them is a compare-and-set, so a row changed since the read
    is never sent twice.
    """
    left = limit
    carry: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        streamed = connection.execution_options(stream_results=True, max_row_buffer=READ_CHUNK)
        for chunk in pd.read_sql_query(due_sql(shard), streamed, chunksize=READ_CHUNK):
            due = chunk[chunk["channel"].isin(list(channels))]
            if left is not None:
                due = due.head(left)
                left -= len(due)
            for channel_name, rows in _handed_over(engine, due, channels, lease, now, window, report):
                rows = carry.pop(channel_name, []) + rows
                size = BATCH.get(channel_name, 500)
                whole = len(rows) - len(rows) % size
                for start in range(0, whole, size):
                    yield channel_name, channels[channel_name], rows[start : start + size]
                if whole < len(rows):
                    carry[channel_name] = rows[whole:]
            if left == 0:
                break
    for channel_name, rows in carry.items():
        yield channel_name, channels[channel_name], rows


def _handed_over(
    engine: Engine,
    due: pd.DataFrame,
    channels: Mapping[str, Any],
    lease: timedelta,
    now: Callable[[], datetime],
    window: Window | None,
    report: DeliveryReport,
) -> list[tuple[str, list[dict[str, Any]]]]:
    """A chunk of unsettled rows checked: what is no longer allowed is suppressed, what is past its
    day expired, what waits for its window or another sender's lease counted; the rest, by channel."""
    if due.empty:
        return []
    due = due.copy()
    for column in ("email_consent", "sms_consent", "email_suppressed", "sms_suppressed"):
        due[column] = due[column].astype(bool)
    is_email = due["channel"] == "email"
    allowed = (is_email & due["email_consent"] & ~due["email_suppressed"]) | (
        ~is_email & due["sms_consent"] & due["phone"].notna() & ~due["sms_suppressed"]
    )
    # An ambiguous attempt may already be out: reconcile it even if consent changed since.
    pending, sending = due["status"] == TouchStatus.PENDING, due["status"] == TouchStatus.SENDING
    blocked = due.loc[~allowed & pending, "key"].tolist()
    _mark(engine, [Mark(k, TouchStatus.SUPPRESSED, error="suppressed at send time") for k in blocked])
    report.suppressed += len(blocked)
    due = due.assign(allowed=allowed)[allowed | sending]
    due = due.assign(deadline=pd.Series(pd.NaT, index=due.index, dtype="datetime64[ns, UTC]"))
    if window is not None and not due.empty:
        due = _apply_window(engine, due, channels, window, now(), report)
    # A claim younger than the lease may be another delivery's batch in flight: not ours to judge.
    attempted = pd.to_datetime(due["attempted_at"], utc=True)
    in_flight = (due["status"] == TouchStatus.SENDING) & (attempted > pd.Timestamp(now() - lease))
    report.awaiting += int(in_flight.sum())
    due = due[~in_flight]
    return [
        (
            channel_name,
            [
                {str(k): v for k, v in row.items()}
                for row in due[due["channel"] == channel_name].to_dict("records")
            ],
        )
        for channel_name in channels
        if (due["channel"] == channel_name).any()
    ]


def render_rows(
    renderer: Renderer, context_for: ContextFor, channel_name: str, rows: Sequence[dict[str, Any]]
) -> Rendered:
    """The messages of these rows, and a failure mark for each row whose template cannot render."""
    messages: dict[str, OutboundEmail | OutboundSms] = {}
    failures: list[Mark] = []
    prepare = getattr(context_for, "prepare", None)
    if prepare is not None:  # the rows' account contexts in one pass (ContextBuilder.prepare)
        prepare(rows)
    build = _email if channel_name == "email" else _sms
    for row in rows:
        try:
            messages[row["key"]] = build(row, context_for(row), renderer)
        except TemplateProblem as exc:
            failures.append(Mark(row["key"], TouchStatus.FAILED, error=str(exc)))
    return messages, failures


def render_batches(
    renderer: Renderer,
    context_for: ContextFor,
    batches: Iterable[tuple[str, Sequence[dict[str, Any]]]],
    workers: int,
) -> Generator[Rendered, None, None]:
    """Each batch rendered, in order: here, or with `workers` > 1 (and enough messages) in a pool of
    processes that stays at most AHEAD batches ahead of the one being sent. `batches` is read as
    it goes (deliver's come from a cursor), a few batches ahead: enough to tell whether a pool pays.

    Workers are never forked from this process: a fork would copy its database engine (pooled
    connections, which must never be used by two processes), an orchestrator's threads' locks
    (Prefect) and its log handlers. They come from a fork server (see _pool_context), a clean
    single-threaded process that has imported this module once, so a worker starts without paying
    the imports (about a second of CPU each); they are spawned where there is no fork server. A
    worker gets the renderer and the context builder once, pickled (Renderer travels as its
    templates folder, ContextBuilder as the account columns and journey titles, see their
    __reduce__ and __getstate__), and renders CHUNK rows per task with its own compiled templates
    and caches. Rendering is deterministic (signed links included), so the messages are the same
    bytes as rendered here; a worker only renders, never touches the database
    or a channel. The pool is this delivery's, shut down when it ends, or fails (close the iterator).
    """
    batches = iter(batches)
    head: list[tuple[str, Sequence[dict[str, Any]]]] = []  # enough batches to know if a pool pays
    for batch in batches:
        head.append(batch)
        if sum(len(rows) for _, rows in head) >= POOL_MIN_MESSAGES:
            break
    if workers <= 1 or sum(len(rows) for _, rows in head) < POOL_MIN_MESSAGES:
        for channel_name, rows in itertools.chain(head, batches):
            yield render_rows(renderer, context_for, channel_name, rows)
        return
    try:
        payload = pickle.dumps((renderer, context_for))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"render workers need a picklable renderer and context builder: {exc}") from exc
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_pool_context(),
        initializer=_start_worker,
        initargs=(payload,),
    )
    try:
        queued = itertools.chain(head, batches)
        in_flight: deque[list[Future[Rendered]]] = deque()

        def submit() -> None:
            batch = next(queued, None)
            if batch is not None:
                name, rows = batch
                chunks = [rows[start : start + CHUNK] for start in range(0, len(rows), CHUNK)]
                in_flight.append([pool.submit(_render_in_worker, name, chunk) for chunk in chunks])

        for _ in range(AHEAD + 1):
            submit()
        while in_flight:
            futures = in_flight.popleft()
            submit()
            messages: dict[str, OutboundEmail | OutboundSms] = {}
            failures: list[Mark] = []
            for future in futures:
                chunk_messages, chunk_failures = future.result()
                messages.update(chunk_messages)
                failures += chunk_failures
            yield messages, failures
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pool_context() -> BaseContext:
    """The fork server's context where the platform has one (Linux, macOS), with this module
    preloaded in the server: its workers are forks of a process that imported techtouch's rendering
    once and holds nothing else (the server is started on first use, once per process). Elsewhere,
    spawned workers, which import it themselves. Either way a worker imports the delivering
    program's main module as multiprocessing does (scripts need their `if __name__ == "__main__"`)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # no effect once the server runs: it has it already
    return context


_worker: tuple[Renderer, ContextFor] | None = None  # a render worker's renderer and context builder


def _start_worker(payload: bytes) -> None:
    global _worker
    _worker = pickle.loads(payload)


def _render_in_worker(channel_name: str, rows: Sequence[dict[str, Any]]) -> Rendered:
    assert _worker is not None, "a render task outside a render worker"
    renderer, context_for = _worker
    return render_rows(renderer, context_for, channel_name, rows)


def _deliver_batch(
    engine: Engine,
    channel: Any,
    channel_name: str,
    rows: Sequence[dict[str, Any]],
    rendered: Rendered,
    report: DeliveryReport,
    reconcile_after: timedelta,
    lease: timedelta,
    now: Callable[[], datetime],
) -> None:
    messages, failures = rendered
    if failures:
        report.failed += len(failures)
        report.errors += [f"{f.key}: {f.error}" for f in failures]
        _mark(engine, failures)

    started = now()
    ambiguous = [r for r in rows if r["status"] == TouchStatus.SENDING and r["key"] in messages]
    resend: list[str] = []
    if ambiguous:
        # `attempted_at` is set with the claim; a clock a few minutes apart must not hide a message.
        since = min(_aware(r["attempted_at"]) for r in ambiguous) - timedelta(minutes=5)
        verdict = claims.judge(
            channel,
            [messages[r["key"]] for r in ambiguous],
            since,
            now=started,
            grace=reconcile_after,
            # SendGrid's `processed` event for a scheduled message comes at `send_at`, not before.
            settles_at={r["key"]: max(_aware(r["attempted_at"]), _aware(r["send_at"])) for r in ambiguous},
        )
        report.reconciled += len(verdict.found)
        _mark(engine, [m for r in verdict.found.values() if (m := TOUCHES.outcome(r)) is not None])
        # Not at the provider, and the contact has opted out since: suppressed, not sent again.
        allowed = {r["key"]: bool(r["allowed"]) for r in ambiguous}
        opted_out = [
            Mark(k, TouchStatus.SUPPRESSED, error="suppressed before the retry")
            for k in verdict.resend + verdict.waiting
            if not allowed[k]
        ]
        resend = [k for k in verdict.resend if allowed[k]]
        # Not at the provider, and its day is over: sending it now would be late. Never resent.
        deadline = {r["key"]: r["deadline"] for r in ambiguous}
        late = [k for k in resend if not pd.isna(deadline[k]) and deadline[k] <= pd.Timestamp(started)]
        if late:
            resend = [k for k in resend if k not in set(late)]
            reason = "not at the provider, and its day has passed: not sent late"
            report.failed += len(late)
            report.errors += [f"{k}: {reason}" for k in late]
            _mark(engine, [Mark(k, TouchStatus.FAILED, error=reason) for k in late])
        report.awaiting += sum(1 for k in verdict.waiting if allowed[k])
        report.suppressed += len(opted_out)
        _mark(engine, opted_out)
    fresh = [r["key"] for r in rows if r["status"] == TouchStatus.PENDING and r["key"] in messages]
    with engine.begin() as connection:  # fresh claims and resends commit together, before the call
        claimed = claims.claim(connection, TOUCHES, fresh, started)
        claimed |= claims.reclaim(connection, TOUCHES, resend, started, stale_before=started - lease)
    report.retried += sum(1 for k in resend if k in claimed)
    batch = [messages[k] for k in messages if k in claimed]
    if not batch:
        return
    contact_of = {r["key"]: r["contact_id"] for r in rows}
    claims.send(
        channel,
        batch,
        lambda receipts: _record_receipts(engine, receipts, contact_of, channel_name, report, started),
    )


def _apply_window(
    engine: Engine,
    due: pd.DataFrame,
    channels: Mapping[str, Any],
    window: Window,
    at: datetime,
    report: DeliveryReport,
) -> pd.DataFrame:
    """Expire what is past its day, hold what cannot reach the recipient inside their window now;
    the rows left are handed over (ambiguous `sending` rows are left to reconciliation)."""
    zones = due["zone"].fillna(window.default_zone).astype(str)
    send_at = pd.to_datetime(due["send_at"], utc=True)
    created = pd.to_datetime(due["created_at"], utc=True)
    day_end = pd.Series(pd.NaT, index=due.index, dtype="datetime64[ns, UTC]")
    open_now = pd.Series(False, index=due.index)
    for zone, rows in zones.groupby(zones).groups.items():
        local = send_at[rows].dt.tz_convert(str(zone))
        # The local midnight that ends the intended day (a calendar day: DST days have 23 or 25 hours).
        midnight = local.dt.tz_localize(None).dt.normalize() + pd.Timedelta(days=1)
        day_end[rows] = midnight.dt.tz_localize(
            str(zone), ambiguous=np.ones(len(midnight), dtype=bool), nonexistent="shift_forward"
        ).dt.tz_convert("UTC")
        # Business hours now, in that zone: the first instant at or after `at` inside them is `at`.
        open_now[rows] = send_time(at, ZoneInfo(str(zone)), window.hours) == at
    deadline = day_end + window.grace
    due = due.assign(deadline=deadline)
    pending = due["status"] == TouchStatus.PENDING
    stamp = pd.Timestamp(at)
    # Recorded after its day had ended: a backfill, never sent. (A record stamped later than the
    # delivery's clock comes from the simulator, which plays past days at their own times.)
    backfilled = created.notna() & (created >= day_end) & (created <= stamp)
    expired = pending & ((deadline <= stamp) | backfilled)
    if expired.any():
        with engine.begin() as connection:
            keys = due.loc[expired, "key"].tolist()
            done = claims.expire(connection, TOUCHES, keys, "its day passed before it could be sent")
        report.expired += len(done)
    is_due = send_at <= stamp
    handed = (is_due & open_now) | _schedulable(due["channel"], send_at, ~is_due, channels, at)
    held = pending & ~expired & ~handed
    report.held += int(held.sum())
    return due[~pending | (~expired & handed)]


def _never(send_at: datetime, now: datetime) -> bool:
    return False


def _schedulable(
    channel: pd.Series, send_at: pd.Series, ahead: pd.Series, channels: Mapping[str, Any], at: datetime
) -> pd.Series:
    """Which rows not due yet (`ahead`) their channel can hold until `send_at` (`can_schedule`),
    asked once per channel and distinct `send_at` (a rung's messages share a few send times)."""
    result = np.zeros(len(channel), dtype=bool)
    for name in channel[ahead].unique():
        rows = (ahead & (channel == name)).to_numpy()
        can = getattr(channels.get(name), "can_schedule", _never)
        codes, moments = pd.factorize(send_at[rows], use_na_sentinel=False)
        verdicts = np.array([bool(can(m.to_pydatetime(), at)) for m in moments], dtype=bool)
        result[rows] = verdicts[codes]
    return pd.Series(result, index=channel.index)


def _record_receipts(
    engine: Engine,
    receipts: list[Receipt],
    contact_of: dict[str, str],
    channel_name: str,
    report: DeliveryReport,
    at: datetime,
) -> None:
    """Mark each touch from its receipt; an opted-out recipient also gets a suppression."""
    marks: list[Mark] = []
    opted_out = []
    for receipt in receipts:
        settled = TOUCHES.outcome(receipt)
        verdict = claims.receipt_status(receipt)
        if verdict == ReceiptStatus.SENT:
            report.sent[channel_name] += 1
        elif verdict == ReceiptStatus.FAILED:
            report.failed += 1
            report.errors.append(f"{receipt.key}: {receipt.error}")
        elif verdict == ReceiptStatus.OPTED_OUT:
            report.opted_out += 1
            opted_out.append(contact_of[receipt.key])
            error = receipt.error or "recipient opted out"
            settled = Mark(receipt.key, TouchStatus.SUPPRESSED, error=error)
        else:  # unknown: stays `sending`; the next delivery reconciles it
            report.unknown += 1
        if settled is not None:
            marks.append(settled)
    _mark(engine, marks)
    if opted_out:
        with engine.begin() as connection:
            upsert_rows(
                connection,
                Suppression.__table__,
                [
                    {"contact_id": c, "channel": channel_name, "reason": "provider_opt_out", "since": at}
                    for c in sorted(set(opted_out))
                ],
                ["contact_id", "channel"],
                update=False,
            )


def _aware(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def _mark(engine: Engine, marks: list[Mark]) -> None:
    """Settle touches in a transaction of their own (each step of a batch commits as it happens)."""
    if marks:
        with engine.begin() as connection:
            claims.mark(connection, TOUCHES, marks)


def _email(row: dict[str, Any], context: dict[str, Any], renderer: Renderer) -> OutboundEmail:
    rendered = renderer.email(row["template"], context)
    sender = context["sender"]
    unsubscribe = context["links"]["unsubscribe"]
    return OutboundEmail(
        key=row["key"],
        to_email=row["email"],
        to_name=row["contact_name"],
        from_email=sender["email"],
        from_name=sender["name"],
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        send_at=_aware(row["send_at"]),
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        categories=(row["journey"], f"{row['journey']}.{row['milestone']}"),
        custom_args={"touch_key": row["key"]},
    )


def _sms(row: dict[str, Any], context: dict[str, Any], renderer: Renderer) -> OutboundSms:
    return OutboundSms(
        key=row["key"],
        to_phone=row["phone"],
        body=renderer.sms(row["template"], context),
        send_at=_aware(row["send_at"]),
    )
