"""The CSM digest: each morning, one email per CSM with their new, due and overdue CTAs.

CTAs of accounts without a CSM sit in the team queue; its digest goes to `queue_owner` (a queue
owner who is also a CSM gets two: their own and the queue's). Exactly-once like customer mail: a
`digests` row (one per assignee and day) runs the same claim -> send -> mark machine as touches
(techtouch.services.claims), claimed before the email goes out and marked with the provider's id
after.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from techtouch.adapters.channels.base import OutboundEmail, Receipt
from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import Account, Cta, CtaHistory
from techtouch.adapters.render.context import csm_name
from techtouch.adapters.render.renderer import Renderer
from techtouch.domain.clock import run_instant
from techtouch.domain.statuses import (
    FINAL_DIGEST_STATUSES,
    OPEN_CTA_STATUSES,
    CtaAction,
    CtaStatus,
    DigestStatus,
    ReceiptStatus,
)
from techtouch.services import claims
from techtouch.services.claims import DIGESTS
from techtouch.services.users import people
from techtouch.settings import Settings

log = logging.getLogger(__name__)
TEMPLATE = "digest/csm"
# "escalated": an escalation for the account and reason joined a CTA that was already open, since
# the last digest (techtouch.services.ctas.join_escalations): the CSM hears of it, it is not dropped.
SECTIONS = ("escalated", "overdue", "due", "new")


@dataclass
class DigestItem:
    cta_id: int
    account_id: str
    account_name: str
    title: str
    priority: str
    journey: str
    due_date: date
    created_as_of: date
    status: str
    context: dict[str, Any]
    url: str


@dataclass
class CsmDigest:
    assignee: str  # a CSM's email or the team queue
    recipient: str  # who gets the email
    as_of: date
    sections: dict[str, list[DigestItem]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    recipient_name: str | None = None  # the user's name (`techtouch users`), when there is one

    @property
    def key(self) -> str:
        """One digest per assignee and day; a hash, so that no address travels in provider metadata."""
        assignee = hashlib.sha256(self.assignee.encode()).hexdigest()[:16]
        return f"digest/{assignee}/{self.as_of.isoformat()}"

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(items) for name, items in self.sections.items()}


@dataclass
class DigestReport:
    as_of: date
    digests: list[CsmDigest]
    unrouted: int = 0  # queue CTAs with no queue_owner configured
    sent: int = 0
    already_sent: int = 0
    failed: int = 0
    unsettled: int = 0  # left `sending` by an earlier attempt the channel cannot look up
    errors: list[str] = field(default_factory=list)

    def digests_by_key(self) -> dict[str, str]:
        """Digest key → the assignee's handle, for reports that must not carry addresses."""
        from techtouch.services.summary import assignee_label

        return {d.key: assignee_label(d.assignee) for d in self.digests}


def previous_digest_day(as_of: date) -> date:
    """Digests go out on weekdays: Monday's "new" covers the weekend."""
    back = 3 if as_of.weekday() == 0 else 1
    return as_of - timedelta(days=back)


def collect(connection: Connection, settings: Settings, as_of: date) -> DigestReport:
    """Open CTAs (not snoozed), grouped by recipient: escalated again since the last digest, overdue
    (due before today), due today, new since the last digest."""
    since = previous_digest_day(as_of)
    ctas = Cta.__table__
    rows = connection.execute(
        select(ctas, Account.name.label("account_name"))
        .join(Account, Account.id == ctas.c.account_id)
        .where(
            Cta.status.in_([s for s in OPEN_CTA_STATUSES if s != CtaStatus.SNOOZED]),
            Cta.created_as_of <= as_of,
        )
        .order_by(Cta.priority.desc(), Cta.due_date, Cta.id)
    ).all()
    escalated = set(
        connection.execute(
            select(CtaHistory.cta_id).where(
                CtaHistory.action == CtaAction.ESCALATED, CtaHistory.as_of > since, CtaHistory.as_of <= as_of
            )
        ).scalars()
    )
    public = settings.public_url.rstrip("/")
    by_assignee: dict[str, CsmDigest] = {}
    unrouted = 0
    for cta in rows:
        if cta.id in escalated:
            section = "escalated"
        elif cta.due_date < as_of:
            section = "overdue"
        elif cta.due_date == as_of:
            section = "due"
        elif cta.created_as_of > since:
            section = "new"
        else:
            continue
        recipient = cta.assignee if "@" in cta.assignee else settings.queue_owner
        if recipient is None:
            unrouted += 1
            continue
        digest = by_assignee.setdefault(cta.assignee, CsmDigest(cta.assignee, recipient, as_of))
        digest.sections[section].append(
            DigestItem(
                cta_id=cta.id,
                account_id=cta.account_id,
                account_name=cta.account_name,
                title=cta.title,
                priority=cta.priority,
                journey=cta.journey,
                due_date=cta.due_date,
                created_as_of=cta.created_as_of,
                status=cta.status,
                context=dict(cta.context or {}),
                url=f"{public}/inbox/ctas/{cta.id}",
            )
        )
    _order = {"high": 0, "medium": 1, "low": 2}
    for digest in by_assignee.values():
        for items in digest.sections.values():
            items.sort(key=lambda i: (_order.get(i.priority, 3), i.due_date, i.cta_id))
    names = {email: name for email, (name, _) in people(connection).items()}
    for digest in by_assignee.values():
        digest.recipient_name = names.get(digest.recipient)
    digests = sorted(by_assignee.values(), key=lambda d: d.assignee)
    return DigestReport(as_of, digests, unrouted)


def render(renderer: Renderer, settings: Settings, digest: CsmDigest) -> OutboundEmail:
    sender = settings.senders["success"]
    is_queue = "@" not in digest.assignee
    context = {
        "as_of": digest.as_of,
        "recipient_name": digest.recipient_name or csm_name(digest.recipient) or "there",
        "queue": digest.assignee if is_queue else None,
        "sections": digest.sections,
        "counts": digest.counts,
        "inbox_url": f"{settings.public_url.rstrip('/')}/inbox",
        "sender": {"name": sender.name, "email": sender.email, "title": sender.title},
    }
    rendered = renderer.email(TEMPLATE, context)
    return OutboundEmail(
        key=digest.key,
        to_email=digest.recipient,
        to_name=str(context["recipient_name"]),
        from_email=sender.email,
        from_name=sender.name,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        send_at=run_instant(digest.as_of, settings.zone, settings.run_time),
        categories=("csm_digest",),
        custom_args={"digest_key": digest.key},
    )


def send_digests(
    engine: Engine,
    settings: Settings,
    renderer: Renderer,
    email_channel: Any,
    as_of: date,
    *,
    dry_run: bool = False,
) -> DigestReport:
    """Record each digest, claim the unsent ones, send, mark; a rerun of the day sends nothing.

    The claims machine with no lease and no grace period: a digest left `sending` (a crash, a
    timeout) is resent only when the channel can say it does not have it (the outbox); with
    SendGrid it stays for a person to check, since a CSM missing one digest costs less than a
    CSM getting two.
    """
    with engine.connect() as connection:
        report = collect(connection, settings, as_of)
    messages = {d.key: render(renderer, settings, d) for d in report.digests}  # a template error stops all
    if dry_run or not messages:
        return report
    table = DIGESTS.table
    seen = datetime.now(UTC)  # a resend takes only an attempt stamped before the states were read
    with engine.begin() as connection:
        upsert_rows(
            connection,
            table,
            [
                {"key": d.key, "recipient": d.recipient, "as_of": as_of, "status": DigestStatus.PENDING}
                | {"counts": d.counts}
                for d in report.digests
            ],
            ["key"],
            update=False,
        )
        query = select(table.c.key, table.c.status).where(table.c.key.in_(list(messages)))
        states: dict[str, str] = {key: status for key, status in connection.execute(query)}
    report.already_sent = sum(1 for s in states.values() if s in FINAL_DIGEST_STATUSES)
    ambiguous = [messages[k] for k, s in states.items() if s == DigestStatus.SENDING]
    resend: list[str] = []
    if ambiguous:
        verdict = claims.judge(email_channel, ambiguous, seen - timedelta(days=1), now=seen, grace=None)
        _settle(engine, list(verdict.found.values()), report)
        resend = verdict.resend
        report.unsettled = len(verdict.waiting)
        if report.unsettled:
            log.warning("%d digests for %s may or may not have gone out: not resent", report.unsettled, as_of)
    fresh = [k for k, s in states.items() if s == DigestStatus.PENDING]
    at = datetime.now(UTC)
    with engine.begin() as connection:
        claimed = claims.claim(connection, DIGESTS, fresh, at)
        claimed |= claims.reclaim(connection, DIGESTS, resend, at, stale_before=seen)
    batch = [m for k, m in messages.items() if k in claimed]
    if batch:
        claims.send(email_channel, batch, lambda receipts: _settle(engine, receipts, report))
    log.info(
        "digests for %s: %d sent, %d already sent, %d failed",
        as_of,
        report.sent,
        report.already_sent,
        report.failed,
    )
    return report


def _settle(engine: Engine, receipts: list[Receipt], report: DigestReport) -> None:
    """Mark sent and failed digests; `unknown` (ambiguous) and `opted_out` stay `sending`: see
    send_digests."""
    labels = report.digests_by_key()
    marks = []
    for receipt in receipts:
        settled = DIGESTS.outcome(receipt)
        if settled is None:
            continue
        marks.append(settled)
        if claims.receipt_status(receipt) == ReceiptStatus.SENT:
            report.sent += 1
        else:
            report.failed += 1
            report.errors.append(f"digest {labels.get(receipt.key, '?')}: {receipt.error}")
    with engine.begin() as connection:
        claims.mark(connection, DIGESTS, marks)
