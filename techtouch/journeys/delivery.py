"""Deliver pending touches: re-check consent at send time, render, send in batches, mark.

Exactly-once intent: every touch was committed as `pending` before this runs; the channel
is asked first which keys it already has (a crash between send and mark), and only the
rest are sent; each batch's receipts are committed before the next batch goes out.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine, bindparam, text, update

from techtouch.channels.base import OutboundEmail, OutboundSms, Receipt
from techtouch.models import Touch
from techtouch.render import Renderer, TemplateProblem

log = logging.getLogger(__name__)
BATCH = 500

PENDING_SQL = text(
    """
    SELECT t.key, t.account_id, t.contact_id, t.journey, t.milestone, t.rung, t.channel, t.sender,
           t.template, t.send_at,
           c.name AS contact_name, c.email, c.phone, c.role, c.email_consent, c.sms_consent,
           se.channel IS NOT NULL AS email_suppressed, ss.channel IS NOT NULL AS sms_suppressed
    FROM touches t
    JOIN contacts c ON c.id = t.contact_id
    LEFT JOIN suppressions se ON se.contact_id = c.id AND se.channel = 'email'
    LEFT JOIN suppressions ss ON ss.contact_id = c.id AND ss.channel = 'sms'
    WHERE t.status = 'pending' AND t.channel IN ('email', 'sms')
    ORDER BY t.id
    """
)


@dataclass
class DeliveryReport:
    sent: Counter[str] = field(default_factory=Counter)  # by channel
    reconciled: int = 0
    suppressed: int = 0
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
) -> DeliveryReport:
    """Deliver pending touches of the channels given ({"email": ..., "sms": ...}).

    `accounts` limits delivery to a shard's accounts, so that shards never send each other's mail.
    """
    report = DeliveryReport()
    with engine.connect() as connection:
        pending = pd.read_sql_query(PENDING_SQL, connection)
    pending = pending[pending["channel"].isin(list(channels))]
    if accounts is not None:
        pending = pending[pending["account_id"].isin(list(accounts))]
    if limit is not None:
        pending = pending.head(limit)
    if pending.empty:
        return report
    for column in ("email_consent", "sms_consent", "email_suppressed", "sms_suppressed"):
        pending[column] = pending[column].astype(bool)
    is_email = pending["channel"] == "email"
    allowed = (is_email & pending["email_consent"] & ~pending["email_suppressed"]) | (
        ~is_email & pending["sms_consent"] & pending["phone"].notna() & ~pending["sms_suppressed"]
    )
    blocked = pending.loc[~allowed, "key"].tolist()
    _mark(
        engine,
        [
            {"_key": k, "status": "suppressed", "provider_id": None, "error": "suppressed at send time"}
            for k in blocked
        ],
    )
    report.suppressed = len(blocked)
    pending = pending[allowed]

    for channel_name, channel in channels.items():
        rows = pending[pending["channel"] == channel_name].to_dict("records")
        for start in range(0, len(rows), BATCH):
            _deliver_batch(
                engine, renderer, channel, channel_name, rows[start : start + BATCH], context_for, report
            )
    return report


def _deliver_batch(
    engine: Engine,
    renderer: Renderer,
    channel: Any,
    channel_name: str,
    rows: Sequence[dict[str, Any]],
    context_for: ContextFor,
    report: DeliveryReport,
) -> None:
    keys = [row["key"] for row in rows]
    already = channel.reconcile(keys)
    if already:
        report.reconciled += len(already)
        _mark(engine, [_receipt_row(r) for r in already.values()])
    messages: list[OutboundEmail | OutboundSms] = []
    failures: list[dict[str, Any]] = []
    for row in rows:
        if row["key"] in already:
            continue
        try:
            context = context_for(row)
            messages.append(
                _email(row, context, renderer) if channel_name == "email" else _sms(row, context, renderer)
            )
        except TemplateProblem as exc:
            failures.append({"_key": row["key"], "status": "failed", "provider_id": None, "error": str(exc)})
    if failures:
        report.failed += len(failures)
        report.errors += [f"{f['_key']}: {f['error']}" for f in failures]
        _mark(engine, failures)
    if not messages:
        return
    receipts: list[Receipt] = channel.send(messages)
    rows_out = [_receipt_row(r) for r in receipts]
    _mark(engine, rows_out)
    for receipt in receipts:
        if receipt.status == "sent":
            report.sent[channel_name] += 1
        else:
            report.failed += 1
            report.errors.append(f"{receipt.key}: {receipt.error}")


def _receipt_row(receipt: Receipt) -> dict[str, Any]:
    return {
        "_key": receipt.key,
        "status": receipt.status,
        "provider_id": receipt.provider_id,
        "error": receipt.error,
    }


def _mark(engine: Engine, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Touch.__table__
    statement = (
        update(table)
        .where(table.c.key == bindparam("_key"), table.c.status == "pending")
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
        send_at=pd.Timestamp(row["send_at"]).tz_localize("UTC").to_pydatetime(),
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
        send_at=pd.Timestamp(row["send_at"]).tz_localize("UTC").to_pydatetime(),
    )
