"""What the workspace's CTA page (`/inbox/ctas/<id>`) and account page (`/accounts/<id>`) show,
as plain dataclasses: the account, its health and usage (with their charts), latest answers and
comments, contacts with their consent and suppressions, journeys and positions, CTAs, and one
timeline of everything that happened to it, newest first.

Why one service for both pages: a CSM opening a CTA needs the same context as on the account page
(why it fired, what was sent, health, ARR, renewal date), and both must stay fast on a large
database. So every query is bounded (the latest TIMELINE_LIMIT touches, events and CTA changes; 90
days of health; 13 weeks of usage) and goes through an index on the account (see
techtouch.adapters.db.account_story, shared with `techtouch accounts show`): about a dozen small
queries per page, whatever the account's age or the database's size.

Access: the CTA page goes through techtouch.services.ctas.get (Forbidden for someone else's CTA,
UnknownCta for no such CTA); the account page through techtouch.domain.access.can_view_account.
On either page, CTA changes in the timeline are shown only for CTAs the actor may see (a CSM does
not read the notes on a colleague's CTA), and the account's CTA list marks which ones the actor may
open.

Times: touches are placed at their send time (or their run's instant when they have none, as CTA
touches and skipped rungs); events at when they happened; a CTA change at its time, unless it was
recorded for another day than its wall-clock one (a run replaying past days, as `techtouch simulate`
and the demo do), then at the instant of that day's run, so that it sits next to the touches of
the same day.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from techtouch.adapters import charts
from techtouch.adapters.db import account_story as story
from techtouch.adapters.db.models import Account, User
from techtouch.domain.access import Actor, CtaScope, Forbidden, can_change_cta, can_view_account, can_view_cta
from techtouch.domain.cta_rules import PRIORITY_RANK, SYSTEM_ACTOR
from techtouch.domain.statuses import OPEN_CTA_STATUSES
from techtouch.services import ctas
from techtouch.services.app import App
from techtouch.services.ctas import CtaRecord, UnknownCta

__all__ = [
    "AccountContext",
    "AccountCta",
    "AccountFacts",
    "Answer",
    "ContactView",
    "CtaPage",
    "Forbidden",
    "HealthNow",
    "HistoryRow",
    "Position",
    "Suppressed",
    "TimelineItem",
    "TimelineKind",
    "UnknownAccount",
    "UnknownCta",
    "UsageWeek",
    "Why",
    "WhyAnswer",
    "account_page",
    "cta_page",
    "why_of",
]

# The timeline's length: the latest this many items of each source, merged, cut to this many.
TIMELINE_LIMIT = 200
HEALTH_DAYS = 90
USAGE_WEEKS = 13
ANSWER_LIMIT = 20
CTA_LIMIT = 100
CONTACT_LIMIT = 200

QUEUE_PREFIX = "queue:"


class UnknownAccount(LookupError):
    """No account with that id."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"no account with id {account_id!r}")
        self.account_id = account_id


class TimelineKind(StrEnum):
    TOUCH = "touch"  # a message or CTA a journey planned, sent or skipped
    ENGAGEMENT = "engagement"  # a provider's or link's report on a message: delivered, opened, bounced…
    ANSWER = "answer"  # a survey answer
    COMMENT = "comment"  # a comment on an answer
    CONSENT = "consent"  # unsubscribed, STOP, START, opt-out lifted
    MILESTONE = "milestone"  # a product milestone reached, a renewal signed
    CTA = "cta"  # a change of one of the account's CTAs
    EVENT = "event"  # anything else imported


@dataclass(frozen=True)
class AccountFacts:
    id: str
    name: str
    segment: str
    arr: float
    start_date: date
    renewal_date: date | None
    days_to_renewal: int | None
    csm_email: str | None
    csm_name: str | None  # from `users`; None when the CSM has no user (the email still works)
    csm_title: str | None
    timezone: str | None
    paused_until: date | None
    paused: bool  # paused_until is today or later: no automated touches
    is_advocate: bool


@dataclass(frozen=True)
class HealthNow:
    as_of: date
    score: float
    color: str
    usage_score: float
    engagement_score: float
    sentiment_score: float
    renewal_score: float
    usage_change_30d: float | None
    logins_14d: int


@dataclass(frozen=True)
class UsageWeek:
    start: date
    end: date
    key_actions: int
    logins: int
    active_users: float  # mean daily active users over the days with data
    days: int  # days with data


@dataclass(frozen=True)
class Answer:
    at: datetime
    kind: str  # "answer" or "comment"
    survey: str | None
    answer: str | None
    comment: str | None
    contact_id: str | None
    contact_name: str | None
    source: str


@dataclass(frozen=True)
class Suppressed:
    channel: str
    reason: str
    since: datetime


@dataclass(frozen=True)
class ContactView:
    id: str
    name: str
    role: str
    email: str
    phone: str | None
    email_consent: bool
    sms_consent: bool
    suppressions: tuple[Suppressed, ...]  # this contact's suppressed channels
    address_suppressed: Suppressed | None  # the email address is suppressed (for every contact with it)

    @property
    def can_email(self) -> bool:
        return (
            self.email_consent
            and self.address_suppressed is None
            and all(s.channel != "email" for s in self.suppressions)
        )

    @property
    def can_sms(self) -> bool:
        return self.sms_consent and bool(self.phone) and all(s.channel != "sms" for s in self.suppressions)


@dataclass(frozen=True)
class Position:
    """One enrollment: a journey (cycle) and where the account stands in it."""

    id: int
    journey: str
    cycle: int
    status: str
    milestone: str | None
    phase: str
    step: int
    next_due: date | None
    milestone_since: date | None
    entered_as_of: date
    exited_as_of: date | None
    exit_reason: str | None


@dataclass(frozen=True)
class AccountCta:
    id: int
    journey: str
    reason: str
    title: str
    priority: str
    assignee: str
    assignee_name: str | None
    status: str
    due_date: date
    created_as_of: date
    outcome: str | None
    snoozed_until: date | None
    is_open: bool
    overdue: bool
    visible: bool  # the actor may open it


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: TimelineKind
    headline: str
    journey: str | None = None
    where: str | None = None  # milestone and rung, or the CTA's title
    detail: str | None = None  # the template, the comment, the note
    who: str | None = None  # the contact, or who changed the CTA
    status: str | None = None
    cta_id: int | None = None


@dataclass(frozen=True)
class AccountContext:
    """Everything both pages show about one account."""

    facts: AccountFacts
    health: HealthNow | None
    health_trend: tuple[tuple[date, float, str], ...]  # (day, score, color), oldest first
    usage: tuple[UsageWeek, ...]  # oldest first
    health_chart: charts.Chart | None
    usage_chart: charts.Chart | None
    answers: tuple[Answer, ...]  # latest first
    contacts: tuple[ContactView, ...]
    positions: tuple[Position, ...]  # latest entered first
    ctas: tuple[AccountCta, ...]  # open first (by priority, then due date), then closed, newest first
    timeline: tuple[TimelineItem, ...]  # newest first
    timeline_cut: bool  # more happened than TIMELINE_LIMIT items show

    @property
    def open_ctas(self) -> int:
        return sum(1 for c in self.ctas if c.is_open)


@dataclass(frozen=True)
class WhyAnswer:
    survey: str | None
    value: str | None
    contact_id: str | None
    contact_name: str | None
    at: str | None
    comment: str | None


@dataclass(frozen=True)
class Why:
    """A CTA's `why`, read tolerantly: what is present, in the order a person reads it."""

    journey: str | None
    milestone: str | None
    rung: str | None
    branch: str | None
    kind: str | None
    condition: str | None
    values: tuple[tuple[str, str], ...]  # (name, value as text) of the names the condition used
    answer: WhyAnswer | None
    other: tuple[tuple[str, str], ...]  # keys this page does not know, as text

    @property
    def empty(self) -> bool:
        return not any(
            (self.journey, self.milestone, self.rung, self.branch, self.kind, self.condition)
        ) and not (self.values or self.answer or self.other)


@dataclass(frozen=True)
class HistoryRow:
    at: datetime
    as_of: date | None
    actor: str
    actor_name: str | None
    action: str
    from_status: str | None
    to_status: str | None
    from_assignee: str | None
    to_assignee: str | None
    outcome: str | None
    note: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class CtaPage:
    cta: CtaRecord
    assignee_name: str | None
    why: Why
    history: tuple[HistoryRow, ...]  # oldest first
    account: AccountContext
    can_change: bool  # the actor may act on it (not ops) and it is still open
    overdue: bool


# --- the pages ----------------------------------------------------------------------------------


def cta_page(app: App, cta_id: int, actor: Actor, *, today: date) -> CtaPage:
    """The CTA with its why and history, and its account's context; UnknownCta for no such CTA,
    Forbidden when the actor may not see it."""
    with app.engine.connect() as connection:
        cta = ctas.get(connection, cta_id, actor)
        history_rows = ctas.history(connection, cta_id)
        account = _account_row(connection, cta.account_id)
        if account is None:  # a foreign key makes this impossible; say so rather than crash
            raise UnknownAccount(cta.account_id)
        context = _context(connection, app, account, actor, today)
        emails = {cta.assignee} | {str(h["actor"]) for h in history_rows}
        emails |= {str(h["to_assignee"]) for h in history_rows if h["to_assignee"]}
        names = _names(connection, emails)
    history = tuple(_history_row(h, names) for h in history_rows)
    return CtaPage(
        cta=cta,
        assignee_name=_person(cta.assignee, names),
        why=why_of(cta.why),
        history=history,
        account=context,
        can_change=cta.is_open() and can_change_cta(actor, cta.scope),
        overdue=cta.overdue(today),
    )


def account_page(app: App, account_id: str, actor: Actor, *, today: date) -> AccountContext:
    """The account's context, journeys and CTAs; UnknownAccount for no such account, Forbidden
    when the actor may not see it (checked before anything else about it is read)."""
    with app.engine.connect() as connection:
        account = _account_row(connection, account_id)
        if account is None:
            raise UnknownAccount(account_id)
        return _context(connection, app, account, actor, today, check_access=True)


# --- building the context -----------------------------------------------------------------------


def _account_row(connection: Connection, account_id: str) -> dict[str, Any] | None:
    row = (
        connection.execute(
            select(
                Account.id,
                Account.name,
                Account.segment,
                Account.arr,
                Account.start_date,
                Account.renewal_date,
                Account.csm_email,
                Account.timezone,
                Account.paused_until,
                Account.is_advocate,
                User.name.label("csm_name"),
                User.title.label("csm_title"),
                User.team.label("csm_team"),
            )
            .outerjoin(User, User.email == Account.csm_email)
            .where(Account.id == account_id)
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def _context(
    connection: Connection,
    app: App,
    account: dict[str, Any],
    actor: Actor,
    today: date,
    *,
    check_access: bool = False,
) -> AccountContext:
    account_id = account["id"]
    cta_rows = story.ctas_with_scope(connection, account_id, limit=CTA_LIMIT)
    if check_access:
        holds = any(can_view_cta(actor, _scope(row)) for row in cta_rows)
        if not holds and len(cta_rows) == CTA_LIMIT:  # the one they hold may be an older one
            every = story.ctas_with_scope(connection, account_id, limit=None)
            holds = any(can_view_cta(actor, _scope(row)) for row in every)
        if not can_view_account(actor, account["csm_email"], holds, account["csm_team"]):
            raise Forbidden("not allowed to see this account")

    trend_rows = story.health_trend(
        connection, account_id, since=today - timedelta(days=HEALTH_DAYS - 1), until=today
    )
    usage_rows = story.usage(
        connection, account_id, since=today - timedelta(days=7 * USAGE_WEEKS - 1), until=today
    )
    contact_rows = story.contacts(connection, account_id, limit=CONTACT_LIMIT)
    suppression_rows = story.suppressions(connection, account_id)
    address_rows = story.address_suppressions(
        connection, {_address(c["email"]) for c in contact_rows if c["email"]}
    )
    answer_rows = story.survey_events(connection, account_id, limit=ANSWER_LIMIT)
    position_rows = story.enrollments(connection, account_id)
    touch_rows = story.touches(
        connection, account_id, limit=TIMELINE_LIMIT, fields=story.TIMELINE_TOUCH_FIELDS
    )
    event_rows = story.events(connection, account_id, limit=TIMELINE_LIMIT)
    change_rows = story.cta_history(connection, account_id, limit=TIMELINE_LIMIT)
    emails = {str(r["assignee"]) for r in cta_rows} | {str(r["actor"]) for r in change_rows}
    names = _names(connection, emails)

    contact_views = _contacts(contact_rows, suppression_rows, address_rows)
    contact_names = {c.id: c.name for c in contact_views}
    health_trend = tuple((r["as_of"], float(r["score"]), str(r["color"])) for r in trend_rows)
    usage = _usage_weeks(usage_rows, today, account["start_date"])
    model = app.settings.health
    timeline = _timeline(app, touch_rows, event_rows, change_rows, actor, contact_names, names)
    return AccountContext(
        facts=_facts(account, today),
        health=_health_now(trend_rows[-1]) if trend_rows else None,
        health_trend=health_trend,
        usage=usage,
        health_chart=charts.health_chart(
            [(day, score) for day, score, _ in health_trend], green=model.green, yellow=model.yellow
        ),
        usage_chart=_usage_chart(usage),
        answers=tuple(_answer(r, contact_names) for r in answer_rows),
        contacts=contact_views,
        positions=tuple(_position(r) for r in position_rows),
        ctas=_account_ctas(cta_rows, actor, today, names),
        timeline=tuple(timeline[:TIMELINE_LIMIT]),
        timeline_cut=len(timeline) > TIMELINE_LIMIT
        or TIMELINE_LIMIT in (len(touch_rows), len(event_rows), len(change_rows)),
    )


def _facts(account: Mapping[str, Any], today: date) -> AccountFacts:
    renewal = account["renewal_date"]
    paused_until = account["paused_until"]
    return AccountFacts(
        id=account["id"],
        name=account["name"],
        segment=account["segment"],
        arr=float(account["arr"]),
        start_date=account["start_date"],
        renewal_date=renewal,
        days_to_renewal=None if renewal is None else (renewal - today).days,
        csm_email=account["csm_email"],
        csm_name=account["csm_name"],
        csm_title=account["csm_title"],
        timezone=account["timezone"],
        paused_until=paused_until,
        paused=paused_until is not None and paused_until >= today,
        is_advocate=bool(account["is_advocate"]),
    )


def _health_now(row: Mapping[str, Any]) -> HealthNow:
    change = row["usage_change_30d"]
    return HealthNow(
        as_of=row["as_of"],
        score=float(row["score"]),
        color=str(row["color"]),
        usage_score=float(row["usage_score"]),
        engagement_score=float(row["engagement_score"]),
        sentiment_score=float(row["sentiment_score"]),
        renewal_score=float(row["renewal_score"]),
        usage_change_30d=None if change is None else float(change),
        logins_14d=int(row["logins_14d"]),
    )


def _usage_weeks(rows: list[dict[str, Any]], today: date, start_date: date) -> tuple[UsageWeek, ...]:
    """USAGE_WEEKS weeks ending today, oldest first; the weeks before the account started are left
    out, and so is everything when no usage was recorded in the window at all."""
    if not rows:
        return ()
    sums: dict[int, list[float]] = {}
    for row in rows:
        week = (today - row["date"]).days // 7
        bucket = sums.setdefault(week, [0, 0, 0, 0])
        bucket[0] += row["key_actions"]
        bucket[1] += row["logins"]
        bucket[2] += row["active_users"]
        bucket[3] += 1
    weeks = []
    for week in range(USAGE_WEEKS - 1, -1, -1):
        end = today - timedelta(days=7 * week)
        start = end - timedelta(days=6)
        if end < start_date:
            continue
        key_actions, logins, active, days = sums.get(week, [0, 0, 0, 0])
        weeks.append(
            UsageWeek(
                start=start,
                end=end,
                key_actions=int(key_actions),
                logins=int(logins),
                active_users=round(active / days, 1) if days else 0.0,
                days=int(days),
            )
        )
    return tuple(weeks)


def _usage_chart(weeks: tuple[UsageWeek, ...]) -> charts.Chart | None:
    if not weeks:
        return None
    return charts.usage_chart(
        [w.start.isoformat() for w in weeks],
        [
            charts.Series("key actions", [w.key_actions for w in weeks]),
            charts.Series("logins", [w.logins for w in weeks]),
            charts.Series("active users a day", [w.active_users for w in weeks], secondary=True),
        ],
        title=f"Usage per week, last {len(weeks)} week{'s' if len(weeks) != 1 else ''}",
    )


def _address(email: str) -> str:
    """The form email_suppressions keeps an address in (techtouch.services.importing.suppressions)."""
    return email.strip().lower()


def _contacts(
    rows: list[dict[str, Any]],
    suppressions: list[dict[str, Any]],
    addresses: list[dict[str, Any]],
) -> tuple[ContactView, ...]:
    by_contact: dict[str, list[Suppressed]] = {}
    for s in suppressions:
        by_contact.setdefault(s["contact_id"], []).append(Suppressed(s["channel"], s["reason"], s["since"]))
    by_address = {a["address"]: Suppressed("email", a["reason"], a["since"]) for a in addresses}
    return tuple(
        ContactView(
            id=c["id"],
            name=c["name"],
            role=c["role"],
            email=c["email"],
            phone=c["phone"],
            email_consent=bool(c["email_consent"]),
            sms_consent=bool(c["sms_consent"]),
            suppressions=tuple(sorted(by_contact.get(c["id"], []), key=lambda s: s.channel)),
            address_suppressed=by_address.get(_address(c["email"])) if c["email"] else None,
        )
        for c in rows
    )


def _answer(row: Mapping[str, Any], contact_names: Mapping[str, str]) -> Answer:
    """A `survey` event as an answer, a `survey_comment` as a comment on one (`<survey>:<answer>`
    in `value`, the text in `detail`; an imported comment may carry its text in `value` alone)."""
    survey, answer, comment = _survey_parts(row)
    contact = row["contact_id"]
    return Answer(
        at=row["occurred_at"],
        kind="comment" if row["type"] == "survey_comment" else "answer",
        survey=survey,
        answer=answer,
        comment=comment,
        contact_id=contact,
        contact_name=contact_names.get(contact) if contact else None,
        source=row["source"],
    )


def _survey_parts(row: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    value = row["value"] or ""
    survey, colon, answer = value.partition(":")
    comment = None
    if row["type"] == "survey_comment":
        comment = row["detail"]
        if comment is None and not colon:
            comment = value or None
    return (survey if colon else None), (answer if colon else None), comment


def _position(row: Mapping[str, Any]) -> Position:
    return Position(
        id=row["id"],
        journey=row["journey"],
        cycle=row["cycle"],
        status=row["status"],
        milestone=row["milestone"],
        phase=row["phase"],
        step=row["step"],
        next_due=row["next_due"],
        milestone_since=row["milestone_since"],
        entered_as_of=row["entered_as_of"],
        exited_as_of=row["exited_as_of"],
        exit_reason=row["exit_reason"],
    )


def _scope(row: Mapping[str, Any]) -> CtaScope:
    assignee = str(row["assignee"])
    return CtaScope(assignee, row["assignee_team"], assignee.startswith(QUEUE_PREFIX))


def _account_ctas(
    rows: list[dict[str, Any]], actor: Actor, today: date, names: Mapping[str, tuple[str, str | None]]
) -> tuple[AccountCta, ...]:
    items = [
        AccountCta(
            id=r["id"],
            journey=r["journey"],
            reason=r["reason"],
            title=r["title"],
            priority=r["priority"],
            assignee=r["assignee"],
            assignee_name=_person(r["assignee"], names),
            status=r["status"],
            due_date=r["due_date"],
            created_as_of=r["created_as_of"],
            outcome=r["outcome"],
            snoozed_until=r["snoozed_until"],
            is_open=r["status"] in OPEN_CTA_STATUSES,
            overdue=r["status"] in OPEN_CTA_STATUSES and r["due_date"] < today,
            visible=can_view_cta(actor, _scope(r)),
        )
        for r in rows
    ]
    open_ones = sorted(
        (c for c in items if c.is_open), key=lambda c: (PRIORITY_RANK.get(c.priority, 9), c.due_date, c.id)
    )
    closed = [c for c in items if not c.is_open]  # already newest first
    return (*open_ones, *closed)


def _names(connection: Connection, emails: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """email → (name, title) of the users among `emails` (one bounded query)."""
    wanted = sorted({e for e in emails if e and e != SYSTEM_ACTOR and not e.startswith(QUEUE_PREFIX)})
    if not wanted:
        return {}
    rows = connection.execute(select(User.email, User.name, User.title).where(User.email.in_(wanted)))
    return {r.email: (r.name, r.title) for r in rows}


def _person(email: str | None, names: Mapping[str, tuple[str, str | None]]) -> str | None:
    if email is None:
        return None
    found = names.get(email)
    return found[0] if found else None


def _history_row(row: Mapping[str, Any], names: Mapping[str, tuple[str, str | None]]) -> HistoryRow:
    return HistoryRow(
        at=row["at"],
        as_of=row["as_of"],
        actor=row["actor"],
        actor_name=_person(row["actor"], names),
        action=row["action"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        from_assignee=row["from_assignee"],
        to_assignee=row["to_assignee"],
        outcome=row["outcome"],
        note=row["note"],
        detail=dict(row["detail"] or {}),
    )


# --- the timeline -------------------------------------------------------------------------------

CHANNEL_NAMES = {"email": "Email", "sms": "SMS", "cta": "CTA"}
ENGAGEMENT_EVENTS = {
    "email_delivered": "Email delivered",
    "email_opened": "Email opened",
    "email_clicked": "Email clicked",
    "email_bounced": "Email bounced",
    "sms_delivered": "SMS delivered",
}
CONSENT_EVENTS = {
    "unsubscribed": "Unsubscribed from email",
    "sms_stop": "Texted STOP: no more SMS",
    "sms_start": "Texted START: SMS allowed again",
    "email_resubscribed": "Email opt-out lifted",
}
CTA_ACTIONS = {
    "created": "CTA raised",
    "started": "CTA started",
    "snoozed": "CTA snoozed",
    "woke": "CTA back from snooze",
    "done": "CTA done",
    "cancelled": "CTA cancelled",
    "assigned": "CTA reassigned",
    "escalated": "CTA escalated again",
    "auto_closed": "CTA closed: resolved by the customer",
    "noted": "Note on CTA",
}


def _timeline(
    app: App,
    touches: list[dict[str, Any]],
    events: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    actor: Actor,
    contact_names: Mapping[str, str],
    names: Mapping[str, tuple[str, str | None]],
) -> list[TimelineItem]:
    """Touches, events and CTA changes as one list, newest first (ties keep that source order)."""
    items: list[TimelineItem] = []
    templates = {t["key"]: t for t in touches}
    for t in touches:
        items.append(_touch_item(app, t, contact_names))
    for e in events:
        items.append(_event_item(e, templates, contact_names))
    for h in changes:
        if can_view_cta(actor, _scope(h)):
            items.append(_change_item(app, h, names))
    items.sort(key=lambda item: item.at, reverse=True)
    return items


def _contact(contact_id: str | None, contact_names: Mapping[str, str]) -> str | None:
    if contact_id is None:
        return None
    return contact_names.get(contact_id, contact_id)


def _touch_item(app: App, t: Mapping[str, Any], contact_names: Mapping[str, str]) -> TimelineItem:
    channel = CHANNEL_NAMES.get(t["channel"], t["channel"])
    status = t["status"] if not t["delivery_status"] else f"{t['status']}, {t['delivery_status']}"
    return TimelineItem(
        at=t["send_at"] or app.instant(t["as_of"]),
        kind=TimelineKind.TOUCH,
        headline=f"{channel} {t['status']}",
        journey=t["journey"],
        where=f"{t['milestone']} · {t['rung']}",
        detail=t["template"],
        who=_contact(t["contact_id"], contact_names),
        status=status,
    )


def _event_item(
    e: Mapping[str, Any], touches: Mapping[str, Mapping[str, Any]], contact_names: Mapping[str, str]
) -> TimelineItem:
    kind_of = e["type"]
    who = _contact(e["contact_id"], contact_names)
    at = e["occurred_at"]
    if kind_of in ENGAGEMENT_EVENTS:
        touch = touches.get(e["value"] or "")
        return TimelineItem(
            at=at,
            kind=TimelineKind.ENGAGEMENT,
            headline=ENGAGEMENT_EVENTS[kind_of],
            journey=touch["journey"] if touch else None,
            where=f"{touch['milestone']} · {touch['rung']}" if touch else None,
            detail=touch["template"] if touch else None,
            who=who,
            status=e["source"],
        )
    if kind_of in ("survey", "survey_comment"):
        survey, answer, comment = _survey_parts(e)
        if kind_of == "survey":
            headline = f"Answered {survey}: {answer}" if survey else f"Answered: {e['value']}"
            return TimelineItem(
                at=at, kind=TimelineKind.ANSWER, headline=headline, who=who, status=e["source"]
            )
        return TimelineItem(
            at=at,
            kind=TimelineKind.COMMENT,
            headline=f"Comment on {survey}: {answer}" if survey else "Comment",
            detail=comment,
            who=who,
            status=e["source"],
        )
    if kind_of in CONSENT_EVENTS:
        return TimelineItem(
            at=at, kind=TimelineKind.CONSENT, headline=CONSENT_EVENTS[kind_of], who=who, status=e["source"]
        )
    if kind_of == "milestone":
        return TimelineItem(
            at=at,
            kind=TimelineKind.MILESTONE,
            headline=f"Milestone reached: {e['value']}",
            status=e["source"],
        )
    if kind_of == "renewal_signed":
        return TimelineItem(at=at, kind=TimelineKind.MILESTONE, headline="Renewal signed", status=e["source"])
    return TimelineItem(
        at=at, kind=TimelineKind.EVENT, headline=kind_of, detail=e["value"], who=who, status=e["source"]
    )


def _change_item(app: App, h: Mapping[str, Any], names: Mapping[str, tuple[str, str | None]]) -> TimelineItem:
    action = h["action"]
    parts = []
    if h["from_status"] and h["to_status"] and h["from_status"] != h["to_status"]:
        parts.append(f"{h['from_status']} → {h['to_status']}")
    if h["outcome"]:
        parts.append(f"outcome {h['outcome']}")
    if h["to_assignee"] and action != "created":
        parts.append(f"to {_person(h['to_assignee'], names) or h['to_assignee']}")
    actor = h["actor"]
    who = "techtouch (a journey run)" if actor == SYSTEM_ACTOR else (_person(actor, names) or actor)
    return TimelineItem(
        at=_change_instant(app, h["at"], h["as_of"]),
        kind=TimelineKind.CTA,
        headline=CTA_ACTIONS.get(action, f"CTA {action}"),
        where=h["title"],
        detail=h["note"],
        who=who,
        status="; ".join(parts) or None,
        cta_id=h["cta_id"],
    )


def _change_instant(app: App, at: datetime, as_of: date | None) -> datetime:
    """When a CTA change goes on the timeline: its time, or the run instant of its day when it was
    recorded for another day (a replayed run): see the module docstring."""
    if as_of is None or at.astimezone(app.settings.zone).date() == as_of:
        return at
    return app.instant(as_of)


# --- why it fired -------------------------------------------------------------------------------

WHY_KEYS = ("journey", "milestone", "rung", "branch", "kind", "condition", "values", "answer")


def why_of(raw: Mapping[str, Any] | None) -> Why:
    """A CTA's stored `why` as a Why: missing keys are None (older CTAs have `{}`), odd types are
    shown as text rather than refused (the page must open whatever a run once wrote)."""
    data = dict(raw or {})
    values = data.get("values")
    answer = data.get("answer")
    return Why(
        journey=_text(data.get("journey")),
        milestone=_text(data.get("milestone")),
        rung=_text(data.get("rung")),
        branch=_text(data.get("branch")),
        kind=_text(data.get("kind")),
        condition=_text(data.get("condition")),
        values=tuple((str(k), _shown(v)) for k, v in values.items()) if isinstance(values, dict) else (),
        answer=_why_answer(answer) if isinstance(answer, dict) and answer else None,
        other=tuple((str(k), _shown(v)) for k, v in data.items() if k not in WHY_KEYS and v is not None),
    )


def _why_answer(answer: Mapping[str, Any]) -> WhyAnswer:
    return WhyAnswer(
        survey=_text(answer.get("survey")),
        value=_text(answer.get("value")),
        contact_id=_text(answer.get("contact_id")),
        contact_name=_text(answer.get("contact_name")),
        at=_text(answer.get("at")),
        comment=_text(answer.get("comment")),
    )


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else _shown(value)


def _shown(value: Any) -> str:
    """A value the condition saw, as a person reads it: text as is, missing as `missing`,
    numbers and lists as JSON (`84`, `["unsure", "not_likely"]`, `true`)."""
    if value is None:
        return "missing"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
