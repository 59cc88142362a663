"""`GET /inbox`: the signed-in person's CTAs, most urgent first, with counts, filters and the bulk bar.

A CSM (and a manager: their own; the team's are on /queue) sees the CTAs assigned to them, by
priority (high, medium, low), then due date; by default the ones to work (open and in progress:
a snoozed CTA comes back by itself when the run of its date reopens it). Overdue rows (due before
the team's today) are highlighted. Ops see every CTA, read-only, with its assignee.

Filters are a GET form (status, journey, reason, overdue only), so a filtered inbox is a link.
Every row has a checkbox for the bulk bar (done with an outcome, snooze, reassign, start:
POST /inbox/bulk, cta_actions.py); /static/workspace.js adds keyboard triage, documented on the
page, and everything works without it.

Fast for a full inbox: one query for the page of rows (accounts joined for the name, no query per
row), one for the counts, one for the filter choices; PAGE_SIZE rows a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection, Select, and_, case, distinct, func, select

from techtouch.adapters.db.models import Account, Cta, User
from techtouch.domain import cta_rules
from techtouch.domain.access import Actor, Role
from techtouch.domain.statuses import CtaStatus
from techtouch.entrypoints.web.auth import SignedIn
from techtouch.entrypoints.web.deps import state_of
from techtouch.entrypoints.web.workspace import render, today

router = APIRouter()

PAGE_SIZE = 100
ACTIVE = (CtaStatus.OPEN, CtaStatus.IN_PROGRESS)
# The status filter's choices: value → (label, statuses).
STATUS_FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "active": ("Open and in progress", ACTIVE),
    "open": ("Open", (CtaStatus.OPEN,)),
    "in_progress": ("In progress", (CtaStatus.IN_PROGRESS,)),
    "snoozed": ("Snoozed", (CtaStatus.SNOOZED,)),
    "done": ("Done", (CtaStatus.DONE,)),
    "cancelled": ("Cancelled", (CtaStatus.CANCELLED,)),
    "all": ("All", tuple(CtaStatus)),
}

PRIORITY_ORDER = case(
    {p: rank for p, rank in cta_rules.PRIORITY_RANK.items()},
    value=Cta.priority,
    else_=len(cta_rules.PRIORITIES),
)


@dataclass(frozen=True)
class Row:
    """One line of a CTA list: what the table shows, nothing fetched per row."""

    id: int
    title: str
    account_id: str
    account_name: str
    journey: str
    reason: str
    priority: str
    due_date: date
    status: str
    assignee: str
    snoozed_until: date | None
    outcomes: tuple[str, ...]
    overdue: bool
    due_today: bool


def cta_rows(connection: Connection, query: Select[Any], day: date) -> list[Row]:
    """The rows of a CTA select built by `cta_select` (already filtered, ordered and limited)."""
    rows = []
    for r in connection.execute(query):
        active = r.status in ACTIVE
        outcomes = tuple(
            o for o in (r.outcomes or cta_rules.outcomes_for(r.reason)) if o != cta_rules.RESOLVED_BY_CUSTOMER
        )
        rows.append(
            Row(
                id=r.id,
                title=r.title,
                account_id=r.account_id,
                account_name=r.account_name,
                journey=r.journey,
                reason=r.reason,
                priority=r.priority,
                due_date=r.due_date,
                status=r.status,
                assignee=r.assignee,
                snoozed_until=r.snoozed_until,
                outcomes=outcomes,
                overdue=active and r.due_date < day,
                due_today=active and r.due_date == day,
            )
        )
    return rows


def cta_select(*where: Any) -> Select[Any]:
    """CTAs with their account's name, most urgent first: priority, due date, then id (stable pages)."""
    return (
        select(
            Cta.id,
            Cta.title,
            Cta.account_id,
            Account.name.label("account_name"),
            Cta.journey,
            Cta.reason,
            Cta.priority,
            Cta.due_date,
            Cta.status,
            Cta.assignee,
            Cta.snoozed_until,
            Cta.outcomes,
        )
        .join(Account, Account.id == Cta.account_id)
        .where(*where)
        .order_by(PRIORITY_ORDER, Cta.due_date, Cta.id)
    )


def colleagues(connection: Connection, actor: Actor) -> list[dict[str, str]]:
    """Who `actor` may hand CTAs to: the enabled CSMs and managers of their team (themselves included)."""
    if actor.team is None:
        return []
    rows = connection.execute(
        select(User.email, User.name, User.role)
        .where(User.team == actor.team, User.disabled.is_(False), User.role.in_((Role.CSM, Role.MANAGER)))
        .order_by(User.name, User.email)
    )
    return [{"email": r.email, "name": r.name, "role": r.role} for r in rows]


def names_of(connection: Connection, emails: set[str]) -> dict[str, str]:
    """email → name of the users among `emails` (an assignee without a user shows as its address)."""
    if not emails:
        return {}
    rows = connection.execute(select(User.email, User.name).where(User.email.in_(sorted(emails))))
    return {r.email: r.name for r in rows}


def _counts(connection: Connection, mine: list[Any], day: date) -> dict[str, int]:
    active = Cta.status.in_(ACTIVE)

    def count_if(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = connection.execute(
        select(
            count_if(Cta.status == CtaStatus.OPEN).label("open"),
            count_if(Cta.status == CtaStatus.IN_PROGRESS).label("in_progress"),
            count_if(and_(active, Cta.due_date < day)).label("overdue"),
            count_if(and_(active, Cta.due_date == day)).label("due_today"),
            count_if(Cta.status == CtaStatus.SNOOZED).label("snoozed"),
        ).where(*mine)
    ).one()
    return {key: int(value) for key, value in row._mapping.items()}


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(value or default), low), high)
    except ValueError:
        return default


@router.get("/inbox", response_model=None)
def inbox(request: Request, actor: SignedIn) -> Response:
    params = request.query_params
    status = params.get("status", "active")
    if status not in STATUS_FILTERS:
        status = "active"
    journey = params.get("journey", "").strip()
    reason = params.get("reason", "").strip()
    overdue_only = params.get("overdue") in ("1", "on", "true")
    page = _int(params.get("page"), 1, 1, 10_000)
    day = today(request)
    read_only = actor.role is Role.OPS

    mine: list[Any] = [] if read_only else [Cta.assignee == actor.email]
    where = [*mine, Cta.status.in_(STATUS_FILTERS[status][1])]
    if journey:
        where.append(Cta.journey == journey)
    if reason:
        where.append(Cta.reason == reason)
    if overdue_only:
        where += [Cta.status.in_(ACTIVE), Cta.due_date < day]

    with state_of(request).tt.engine.connect() as connection:
        query = cta_select(*where).limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)
        rows = cta_rows(connection, query, day)
        counts = _counts(connection, mine, day)
        kinds = connection.execute(select(distinct(Cta.journey), Cta.reason).where(*mine)).all()
        people = [] if read_only else colleagues(connection, actor)
        names = names_of(connection, {r.assignee for r in rows}) if read_only else {}
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    outcomes = sorted({o for row in rows if row.status in ACTIVE for o in row.outcomes})

    def page_link(number: int) -> str:
        query = {k: v for k, v in params.items() if k != "page"}
        query["page"] = str(number)
        return "/inbox?" + urlencode(query)

    return render(
        request,
        actor,
        "inbox.html",
        title="All CTAs" if read_only else "Inbox",
        rows=rows,
        counts=counts,
        read_only=read_only,
        status_filter=status,
        status_filters=[(value, name) for value, (name, _) in STATUS_FILTERS.items()],
        journey=journey,
        reason=reason,
        overdue_only=overdue_only,
        journeys=sorted({k[0] for k in kinds}),
        reasons=sorted({k[1] for k in kinds}),
        outcomes=outcomes,
        people=[p for p in people if p["email"] != actor.email or actor.role is Role.MANAGER],
        page=page,
        prev_link=page_link(page - 1) if page > 1 else None,
        next_link=page_link(page + 1) if more else None,
        page_size=PAGE_SIZE,
        filtered=bool(journey or reason or overdue_only or status != "active"),
        tomorrow=date.fromordinal(day.toordinal() + 1),
        names=names,
    )
