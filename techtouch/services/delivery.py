"""Deliver due touches: re-check consent at send time, render, claim, send in batches, mark.

Exactly-once intent, as a small state machine on `touches.status`:

- `pending`: recorded by the run, never attempted. Safe to send.
- `sending`: claimed for an attempt (`attempted_at` set and committed *before* the provider call).
  After a crash, or a timeout the provider may or may not have acted on, it is ambiguous.
- `sent` / `failed` / `suppressed`: final, with the provider's id or the reason.

An ambiguous touch is never sent blindly. Channels that can be asked (`reconcile_is_authoritative`:
the outbox, Twilio's message list) are asked; the ones found are marked sent and the rest go out
again. For SendGrid, which cannot be asked, the webhook marks the touch sent when its `processed`
or `delivered` event (carrying the touch key) arrives; a touch still ambiguous after
`delivery.reconcile_after_minutes` without such an event is sent again.

Claims are compare-and-set updates (`... WHERE status = 'pending' RETURNING key`), so two
deliveries running at once never send the same touch twice. A `sending` touch younger than the
claim lease (`delivery.claim_lease_minutes`) may be another delivery's batch in flight: it is left
alone. An ambiguous touch whose contact has opted out since is not sent again but suppressed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, bindparam, text, update

from techtouch.adapters.channels.base import OutboundEmail, OutboundSms, Receipt
from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import Suppression, Touch
from techtouch.adapters.render.renderer import Renderer, TemplateProblem

log = logging.getLogger(__name__)
# Touches of one rung come in order (see DUE_SQL), so a SendGrid batch is one request of up to
# 1,000 personalizations; SMS go one request each anyway and are paced by the channel.
BATCH = {"email": 1000, "sms": 500}

DUE_SQL = text(
    """
    SELECT t.key, t.status, t.attempted_at, t.account_id, t.contact_id, t.journey, t.milestone, t.rung,
           t.channel, t.sender, t.template, t.send_at,
           c.name AS contact_name, c.email, c.phone, c.role, c.email_consent, c.sms_consent,
           se.channel IS NOT NULL AS email_suppressed, ss.channel IS NOT NULL AS sms_suppressed
    FROM touches t
    JOIN contacts c ON c.id = t.contact_id
    LEFT JOIN suppressions se ON se.contact_id = c.id AND se.channel = 'email'
    LEFT JOIN suppressions ss ON ss.contact_id = c.id AND ss.channel = 'sms'
    WHERE t.status IN ('pending', 'sending') AND t.channel IN ('email', 'sms')
    ORDER BY t.channel, t.sender, t.journey, t.milestone, t.template, t.id
    """
)


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
    errors: list[str] = field(default_factory=list)  # touch key + reason, never addresses


ContextFor = Callable[[dict[str, Any]], dict[str, Any]]


def deliver(
    engine: Engine,
    renderer: Renderer,
    channels: Mapping[str, Any],
    context_for: ContextFor,
    *,
    accounts: Iterable[str] | None = None,
    limit: int | None = None,
    reconcile_after: timedelta = timedelta(hours=1),
    lease: timedelta = timedelta(minutes=10),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeliveryReport:
    """Deliver due touches of the channels given ({"email": ..., "sms": ...}).

    `accounts` limits delivery to a shard's accounts, so that shards never send each other's mail.
    """
    report = DeliveryReport()
    with engine.connect() as connection:
        due = pd.read_sql_query(DUE_SQL, connection)
    due = due[due["channel"].isin(list(channels))]
    if accounts is not None:
        due = due[due["account_id"].isin(list(accounts))]
    if limit is not None:
        due = due.head(limit)
    if due.empty:
        return report
    for column in ("email_consent", "sms_consent", "email_suppressed", "sms_suppressed"):
        due[column] = due[column].astype(bool)
    is_email = due["channel"] == "email"
    allowed = (is_email & due["email_consent"] & ~due["email_suppressed"]) | (
        ~is_email & due["sms_consent"] & due["phone"].notna() & ~due["sms_suppressed"]
    )
    # An ambiguous attempt may already be out: reconcile it even if consent changed since.
    blocked = due.loc[~allowed & (due["status"] == "pending"), "key"].tolist()
    _mark(engine, [_row(k, "suppressed", error="suppressed at send time") for k in blocked])
    report.suppressed = len(blocked)
    due = due.assign(allowed=allowed)[allowed | (due["status"] == "sending")]
    # A claim younger than the lease may be another delivery's batch in flight: not ours to judge.
    attempted = pd.to_datetime(due["attempted_at"], utc=True)
    in_flight = (due["status"] == "sending") & (attempted > pd.Timestamp(now() - lease))
    report.awaiting += int(in_flight.sum())
    due = due[~in_flight]

    for channel_name, channel in channels.items():
        rows = due[due["channel"] == channel_name].to_dict("records")
        size = BATCH.get(channel_name, 500)
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            _deliver_batch(
                engine, renderer, channel, channel_name, batch, context_for, report,
                reconcile_after, lease, now,
            )  # fmt: skip
    return report


def _deliver_batch(
    engine: Engine,
    renderer: Renderer,
    channel: Any,
    channel_name: str,
    rows: Sequence[dict[str, Any]],
    context_for: ContextFor,
    report: DeliveryReport,
    reconcile_after: timedelta,
    lease: timedelta,
    now: Callable[[], datetime],
) -> None:
    messages: dict[str, OutboundEmail | OutboundSms] = {}
    failures: list[dict[str, Any]] = []
    for row in rows:
        try:
            context = context_for(row)
            build = _email if channel_name == "email" else _sms
            messages[row["key"]] = build(row, context, renderer)
        except TemplateProblem as exc:
            failures.append(_row(row["key"], "failed", error=str(exc)))
    if failures:
        report.failed += len(failures)
        report.errors += [f"{f['_key']}: {f['error']}" for f in failures]
        _mark(engine, failures)

    started = now()
    ambiguous = [r for r in rows if r["status"] == "sending" and r["key"] in messages]
    resend: list[str] = []
    if ambiguous:
        # `attempted_at` is set with the claim; a clock a few minutes apart must not hide a message.
        since = min(_aware(r["attempted_at"]) for r in ambiguous) - timedelta(minutes=5)
        found = channel.reconcile([messages[r["key"]] for r in ambiguous], since)
        authoritative = getattr(channel, "reconcile_is_authoritative", False)
        report.reconciled += len(found)
        _mark(engine, [_receipt_row(r) for r in found.values()])
        opted_out = []
        for row in ambiguous:
            if row["key"] in found:
                continue
            if not row["allowed"]:  # not at the provider, and the contact has opted out since
                opted_out.append(_row(row["key"], "suppressed", error="suppressed before the retry"))
                continue
            # SendGrid's `processed` event for a scheduled message comes at `send_at`, not before.
            settled_by = max(_aware(row["attempted_at"]), _aware(row["send_at"]))
            if authoritative or settled_by <= started - reconcile_after:
                resend.append(row["key"])
            else:
                report.awaiting += 1
        report.suppressed += len(opted_out)
        _mark(engine, opted_out)
    fresh = [r["key"] for r in rows if r["status"] == "pending" and r["key"] in messages]
    claimed = _claim(engine, fresh, resend, started, started - lease)
    report.retried += sum(1 for k in resend if k in claimed)
    batch = [messages[k] for k in messages if k in claimed]
    if not batch:
        return
    contact_of = {r["key"]: r["contact_id"] for r in rows}
    try:
        receipts: list[Receipt] = channel.send(batch)
    except Exception as exc:
        # A configuration error (bad key, wrong host) part-way: keep what was settled, then stop.
        # The rest stay `sending` and are reconciled by the next delivery.
        settled = list(getattr(exc, "receipts", []))
        _record_receipts(engine, settled, contact_of, channel_name, report, started)
        raise
    _record_receipts(engine, receipts, contact_of, channel_name, report, started)


def _claim(
    engine: Engine, fresh: list[str], resend: list[str], at: datetime, stale_before: datetime
) -> set[str]:
    """Compare-and-set `sending` before the provider call; the keys this delivery may send.

    A resend claims only an attempt older than the lease, and renews it: a second delivery that
    saw the same ambiguous touch finds it renewed and leaves it."""
    table = Touch.__table__
    claimed: set[str] = set()
    with engine.begin() as connection:
        if fresh:
            claimed |= set(
                connection.scalars(
                    update(table)
                    .where(table.c.key.in_(fresh), table.c.status == "pending")
                    .values(status="sending", attempted_at=at)
                    .returning(table.c.key)
                )
            )
        if resend:
            claimed |= set(
                connection.scalars(
                    update(table)
                    .where(
                        table.c.key.in_(resend),
                        table.c.status == "sending",
                        table.c.attempted_at <= stale_before,
                    )
                    .values(attempted_at=at)
                    .returning(table.c.key)
                )
            )
    return claimed


def _record_receipts(
    engine: Engine,
    receipts: list[Receipt],
    contact_of: dict[str, str],
    channel_name: str,
    report: DeliveryReport,
    at: datetime,
) -> None:
    marks = []
    opted_out = []
    for receipt in receipts:
        if receipt.status == "sent":
            report.sent[channel_name] += 1
            marks.append(_receipt_row(receipt))
        elif receipt.status == "failed":
            report.failed += 1
            report.errors.append(f"{receipt.key}: {receipt.error}")
            marks.append(_receipt_row(receipt))
        elif receipt.status == "opted_out":
            report.opted_out += 1
            opted_out.append(contact_of[receipt.key])
            marks.append(_row(receipt.key, "suppressed", error=receipt.error or "recipient opted out"))
        else:  # unknown: stays `sending`; the next delivery reconciles it
            report.unknown += 1
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


def _row(key: str, status: str, provider_id: str | None = None, error: str | None = None) -> dict[str, Any]:
    return {"_key": key, "status": status, "provider_id": provider_id, "error": error}


def _receipt_row(receipt: Receipt) -> dict[str, Any]:
    return _row(receipt.key, receipt.status, receipt.provider_id, receipt.error)


def _mark(engine: Engine, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Touch.__table__
    statement = (
        update(table)
        .where(table.c.key == bindparam("_key"), text("status IN ('pending', 'sending')"))
        .values(status=bindparam("status"), provider_id=bindparam("provider_id"), error=bindparam("error"))
    )
    with engine.begin() as connection:
        connection.execute(statement, rows)


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
