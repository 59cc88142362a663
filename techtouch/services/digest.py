"""The CSM digest: each morning, one email per CSM with their new, due and overdue CTAs.

CTAs of accounts without a CSM sit in the team queue; its digest goes to `queue_owner` (a queue
owner who is also a CSM gets two: their own and the queue's). Exactly-once like customer mail: a
`digests` row (one per assignee and day) is claimed before the email goes out and marked with
the provider's id after.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from techtouch.adapters.channels.base import OutboundEmail, Receipt
from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import OPEN_CTA_STATUSES, Account, Cta, Digest
from techtouch.adapters.render.context import csm_name
from techtouch.adapters.render.renderer import Renderer
from techtouch.domain.clock import run_instant
from techtouch.settings import Settings

log = logging.getLogger(__name__)
TEMPLATE = "digest/csm"
SECTIONS = ("overdue", "due", "new")


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
    """Open CTAs, grouped by recipient: overdue (due before today), due today, new since the last digest."""
    since = previous_digest_day(as_of)
    ctas = Cta.__table__
    rows = connection.execute(
        select(ctas, Account.name.label("account_name"))
        .join(Account, Account.id == ctas.c.account_id)
        .where(Cta.status.in_(OPEN_CTA_STATUSES), Cta.created_as_of <= as_of)
        .order_by(Cta.priority.desc(), Cta.due_date, Cta.id)
    ).all()
    public = settings.public_url.rstrip("/")
    by_assignee: dict[str, CsmDigest] = {}
    unrouted = 0
    for cta in rows:
        if cta.due_date < as_of:
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
    digests = sorted(by_assignee.values(), key=lambda d: d.assignee)
    return DigestReport(as_of, digests, unrouted)


def render(renderer: Renderer, settings: Settings, digest: CsmDigest) -> OutboundEmail:
    sender = settings.senders["success"]
    is_queue = "@" not in digest.assignee
    context = {
        "as_of": digest.as_of,
        "recipient_name": csm_name(digest.recipient) or "there",
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
        to_name=context["recipient_name"],
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

    Like customer mail: a digest is claimed (`pending` -> `sending`, compare-and-set) before the
    provider call. One left `sending` (a crash, a timeout) is resent only when the channel can
    say it does not have it (the outbox); with SendGrid it stays for a person to check, since
    a CSM missing one digest costs less than a CSM getting two.
    """
    with engine.connect() as connection:
        report = collect(connection, settings, as_of)
    messages = {d.key: render(renderer, settings, d) for d in report.digests}  # a template error stops all
    if dry_run or not messages:
        return report
    digests = Digest.__table__
    with engine.begin() as connection:
        upsert_rows(
            connection,
            digests,
            [
                {"key": d.key, "recipient": d.recipient, "as_of": as_of, "status": "pending"}
                | {"counts": d.counts}
                for d in report.digests
            ],
            ["key"],
            update=False,
        )
        query = select(digests.c.key, digests.c.status).where(digests.c.key.in_(list(messages)))
        states: dict[str, str] = {key: status for key, status in connection.execute(query)}
    report.already_sent = sum(1 for s in states.values() if s in ("sent", "failed"))
    ambiguous = [messages[k] for k, s in states.items() if s == "sending"]
    if ambiguous:
        found = email_channel.reconcile(ambiguous, datetime.now(UTC) - timedelta(days=1))
        _mark(engine, list(found.values()), report, "sending")
        if not getattr(email_channel, "reconcile_is_authoritative", False):
            report.unsettled = len(ambiguous) - len(found)
            if report.unsettled:
                log.warning(
                    "%d digests for %s may or may not have gone out: not resent", report.unsettled, as_of
                )
        else:
            _reset(engine, [m.key for m in ambiguous if m.key not in found])
            states |= {m.key: "pending" for m in ambiguous if m.key not in found}
    with engine.begin() as connection:
        claimed = set(
            connection.scalars(
                update(digests)
                .where(digests.c.key.in_([k for k, s in states.items() if s == "pending"]))
                .where(digests.c.status == "pending")
                .values(status="sending")
                .returning(digests.c.key)
            )
        )
    batch = [m for k, m in messages.items() if k in claimed]
    if batch:
        try:
            receipts = email_channel.send(batch)
        except Exception as exc:  # a configuration error part-way: keep what was settled
            _mark(engine, list(getattr(exc, "receipts", [])), report, "sending")
            raise
        _mark(engine, receipts, report, "sending")
    log.info(
        "digests for %s: %d sent, %d already sent, %d failed",
        as_of,
        report.sent,
        report.already_sent,
        report.failed,
    )
    return report


def _mark(engine: Engine, receipts: list[Receipt], report: DigestReport, current: str) -> None:
    """`unknown` (ambiguous) and `opted_out` stay `sending`: see send_digests."""
    labels = report.digests_by_key()
    with engine.begin() as connection:
        for receipt in receipts:
            if receipt.status not in ("sent", "failed"):
                continue
            connection.execute(
                update(Digest)
                .where(Digest.key == receipt.key, Digest.status == current)
                .values(status=receipt.status, provider_id=receipt.provider_id, error=receipt.error)
            )
            if receipt.status == "sent":
                report.sent += 1
            else:
                report.failed += 1
                report.errors.append(f"digest {labels.get(receipt.key, '?')}: {receipt.error}")


def _reset(engine: Engine, keys: list[str]) -> None:
    if keys:
        with engine.begin() as connection:
            connection.execute(
                update(Digest)
                .where(Digest.key.in_(keys), Digest.status == "sending")
                .values(status="pending")
            )
