"""Everyone's `/reports` numbers, kept grouped per day of entry and per week by the runs.

Why: over 100,000 accounts the funnels, answer rates and workload of everyone read every touch of
the range, which takes seconds (SQLite sorts them all for its GROUP BY; benchmarks/workspace.py).
The same queries (techtouch.services.report_queries) grouped per day of entry (funnels, cohort
statuses, survey answers) and per week (CTA workload) give a few thousand rows, which a range
sums: the rollup tables keep them, and `/reports` for ops reads those.

Who brings them up to date: every run after recording and delivering (services.day.run_day, the
Prefect cycle), `techtouch reports refresh`, and the first visit to `/reports` if nothing did yet.
The page says when that was. A refresh recomputes only what can still change:

- cohorts from the earliest day of entry of an enrollment still active, or ended less than
  LATE_DAYS before the previous refresh (the opens, clicks and answers that follow the last
  message of an enrollment arrive within days; later ones are not counted);
- workload weeks from the earliest week holding a CTA still open, or one that changed (its
  history) since the day before the previous refresh;
- everything, the first time (`full`).

Rows of journeys that are no longer configured stay as they were (their history does not change).
A refresh computes in a read transaction, then swaps the rows in one short write transaction, so
the CSMs' changes never wait for the computation.
"""

from __future__ import annotations

import hashlib
import time as clock
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, insert, select, text

from techtouch.adapters.db.models import (
    Cta,
    CtaHistory,
    Enrollment,
    ReportCohortDay,
    ReportFunnelDay,
    ReportRefresh,
    ReportSurveyDay,
    ReportWorkloadWeek,
)
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.statuses import OPEN_CTA_STATUSES, EnrollmentStatus
from techtouch.services.app import App
from techtouch.services.report_queries import (
    CHANNEL_STRENGTH,
    FUNNEL_MEASURES,
    FunnelKey,
    JourneyFunnel,
    Period,
    Scope,
    SurveyRate,
    Workload,
    WorkloadRow,
    answer_counts,
    cohort_days,
    cta_workload,
    funnel_days,
    iso_week,
    journey_funnel,
    monday,
    ordered_journeys,
    rates_of,
    sorting_room,
    strongest_channel,
    survey_days,
    template_offers,
    user_names,
    whole_weeks,
)

NAME = "workspace"  # the one row of report_refreshes
LATE_DAYS = 30
EVERYONE = Scope("all teams")
COUNTS = (*FUNNEL_MEASURES, "messages")


@dataclass(frozen=True)
class Refreshed:
    """What a refresh did: from which day of entry and which week it recomputed (None: all)."""

    refreshed_at: datetime
    as_of: date
    cohorts_from: date | None
    weeks_from: date | None
    seconds: float
    rows: dict[str, int]


def _row(connection: Connection) -> Any:
    return connection.execute(select(ReportRefresh.__table__).where(ReportRefresh.name == NAME)).first()


def refreshed_at(connection: Connection) -> datetime | None:
    """When the rollup was last brought up to date (None: never)."""
    found = _row(connection)
    return None if found is None else found.refreshed_at


def _windows(connection: Connection, today: date, full: bool) -> tuple[date | None, date | None]:
    """(first day of entry, first week) to recompute; None: from the beginning."""
    previous = None if full else _row(connection)
    if previous is None:
        return None, None
    since = min(previous.as_of, today)
    cut = since - timedelta(days=LATE_DAYS)
    lively = connection.execute(
        select(func.min(Enrollment.entered_as_of)).where(
            (Enrollment.status == EnrollmentStatus.ACTIVE) | (Enrollment.exited_as_of >= cut)
        )
    ).scalar()
    cohorts_from = min(lively or today, today)
    changed_since = since - timedelta(days=1)
    open_ctas = connection.execute(
        select(func.min(Cta.created_as_of)).where(Cta.status.in_([str(s) for s in OPEN_CTA_STATUSES]))
    ).scalar()
    changed = connection.execute(
        select(func.min(Cta.created_as_of))
        .select_from(CtaHistory)
        .join(Cta, Cta.id == CtaHistory.cta_id)
        .where(CtaHistory.as_of >= changed_since)
    ).scalar()
    weeks_from = monday(min(d for d in (open_ctas, changed, changed_since) if d is not None))
    return cohorts_from, weeks_from


@dataclass
class _Computed:
    funnel: list[dict[str, Any]]
    cohorts: list[dict[str, Any]]
    surveys: list[dict[str, Any]]
    workload: list[dict[str, Any]]


def _compute(
    connection: Connection,
    journeys: Sequence[CompiledJourney],
    offers: Mapping[str, Iterable[str]],
    today: date,
    cohorts_from: date | None,
    weeks_from: date | None,
) -> _Computed:
    funnel = funnel_days(connection, [j.id for j in journeys], EVERYONE, cohorts_from, today)
    surveys = [
        {"journey": journey, "entered_on": day, "survey": survey, "asked": asked, "answered": answered}
        for journey, day, survey, asked, answered in survey_days(
            connection, [j.id for j in journeys], offers, EVERYONE, cohorts_from, today, today
        )
    ]
    cohorts = [
        {"journey": j, "entered_on": day, "status": status, "enrollments": n}
        for j, day, status, n in cohort_days(
            connection, [j.id for j in journeys], EVERYONE, cohorts_from, today
        )
    ]
    weeks = Period(weeks_from or date(1970, 1, 5), today)  # 5 January 1970: a Monday
    workload = [
        {
            "assignee": r.assignee,
            "week_start": r.week_start,
            "opened": r.opened,
            "open_now": r.open_now,
            "overdue_now": r.overdue_now,
            "closed": r.closed,
            "acted": r.acted,
            "joined": r.joined,
            "median_first_action_hours": r.median_first_action_hours,
            "outcomes": dict(r.outcomes),
        }
        for r in cta_workload(connection, EVERYONE, weeks, today).rows
    ]
    return _Computed(funnel, cohorts, surveys, workload)


def refresh(
    engine: Engine,
    journeys: Sequence[CompiledJourney],
    offers: Mapping[str, Iterable[str]],
    today: date,
    *,
    full: bool = False,
) -> Refreshed:
    """Bring the rollup up to date for `today` (module docstring); `full`: recompute everything."""
    started = clock.perf_counter()
    with engine.connect() as connection, connection.begin():
        cohorts_from, weeks_from = _windows(connection, today, full)
        with sorting_room(connection):
            computed = _compute(connection, journeys, offers, today, cohorts_from, weeks_from)
    ids = [j.id for j in journeys]
    with engine.connect().execution_options(immediate=True) as connection, connection.begin():
        _lock(connection)
        for model, rows in (
            (ReportFunnelDay, computed.funnel),
            (ReportCohortDay, computed.cohorts),
            (ReportSurveyDay, computed.surveys),
        ):
            stale = delete(model).where(model.journey.in_(ids))
            if cohorts_from is not None:
                stale = stale.where(model.entered_on >= cohorts_from)
            connection.execute(stale)
            if rows:
                connection.execute(insert(model), rows)
        stale_weeks = delete(ReportWorkloadWeek)
        if weeks_from is not None:
            stale_weeks = stale_weeks.where(ReportWorkloadWeek.week_start >= weeks_from)
        connection.execute(stale_weeks)
        if computed.workload:
            connection.execute(insert(ReportWorkloadWeek), computed.workload)
        seconds = round(clock.perf_counter() - started, 3)
        now = datetime.now(UTC)
        values = {
            "refreshed_at": now,
            "as_of": today,
            "cohorts_from": cohorts_from,
            "weeks_from": weeks_from,
            "seconds": seconds,
        }
        connection.execute(delete(ReportRefresh).where(ReportRefresh.name == NAME))
        connection.execute(insert(ReportRefresh).values(name=NAME, **values))
    written = {
        "funnel_days": len(computed.funnel),
        "cohort_days": len(computed.cohorts),
        "survey_days": len(computed.surveys),
        "workload_weeks": len(computed.workload),
    }
    return Refreshed(now, today, cohorts_from, weeks_from, seconds, written)


def refresh_for(app: App, today: date, *, full: bool = False) -> Refreshed:
    """`refresh` for every configured journey of `app` (whichever journeys a run ran)."""
    journeys = ordered_journeys(app)
    return refresh(app.engine, journeys, template_offers(app, journeys), today, full=full)


def _lock(connection: Connection) -> None:
    """Two refreshes swap their rows one after the other (SQLite: BEGIN IMMEDIATE already does)."""
    if connection.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(b"techtouch:report-rollup").digest()[:8], "big", signed=True)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# --- reading: a range summed -------------------------------------------------------------------


def funnels(
    connection: Connection, journeys: Sequence[CompiledJourney], within: Period
) -> list[JourneyFunnel]:
    """Everyone's funnels of the cohorts that entered in `within`, from the rollup."""
    if not journeys:
        return []
    ids = [j.id for j in journeys]
    in_range = (ReportFunnelDay.entered_on >= within.start) & (ReportFunnelDay.entered_on <= within.end)
    query = (
        select(
            ReportFunnelDay.journey,
            ReportFunnelDay.milestone,
            ReportFunnelDay.rung,
            *(
                func.max(case((ReportFunnelDay.channel == name, 1), else_=0)).label(name)
                for name in CHANNEL_STRENGTH
            ),
            *(func.sum(getattr(ReportFunnelDay, name)).label(name) for name in COUNTS),
        )
        .where(ReportFunnelDay.journey.in_(ids), in_range)
        .group_by(ReportFunnelDay.journey, ReportFunnelDay.milestone, ReportFunnelDay.rung)
    )
    counted: dict[FunnelKey, dict[str, Any]] = {}
    for row in connection.execute(query).mappings():
        counted[(row["journey"], row["milestone"], row["rung"] or None)] = {
            "channel": strongest_channel(*(name for name in CHANNEL_STRENGTH if row[name])),
            **{name: int(row[name] or 0) for name in COUNTS},
        }
    statuses = (
        select(ReportCohortDay.journey, ReportCohortDay.status, func.sum(ReportCohortDay.enrollments))
        .where(
            ReportCohortDay.journey.in_(ids),
            ReportCohortDay.entered_on >= within.start,
            ReportCohortDay.entered_on <= within.end,
        )
        .group_by(ReportCohortDay.journey, ReportCohortDay.status)
    )
    by_status: dict[str, dict[str, int]] = {}
    for journey_id, status, n in connection.execute(statuses):
        by_status.setdefault(journey_id, {})[status] = int(n or 0)
    return [journey_funnel(journey, counted, by_status.get(journey.id, {})) for journey in journeys]


def answer_rates(
    connection: Connection, offers: Mapping[str, Iterable[str]], journeys: Sequence[str], within: Period
) -> list[SurveyRate]:
    """Everyone's answer rates of the cohorts that entered in `within` (the answers of the range
    are counted from the events: one indexed pass over the range's answers)."""
    surveys = {survey for found in offers.values() for survey in found}
    if not surveys or not journeys:
        return []
    query = (
        select(ReportSurveyDay.survey, func.sum(ReportSurveyDay.asked), func.sum(ReportSurveyDay.answered))
        .where(
            ReportSurveyDay.journey.in_(list(journeys)),
            ReportSurveyDay.entered_on >= within.start,
            ReportSurveyDay.entered_on <= within.end,
        )
        .group_by(ReportSurveyDay.survey)
    )
    asked = {str(s): (int(n or 0), int(a or 0)) for s, n, a in connection.execute(query)}
    return rates_of(asked, answer_counts(connection, surveys, EVERYONE, within), surveys)


def workload(connection: Connection, within: Period) -> Workload:
    """Everyone's CTA workload of the weeks `within` touches, from the rollup."""
    weeks = whole_weeks(within)
    rows = connection.execute(
        select(ReportWorkloadWeek.__table__).where(
            ReportWorkloadWeek.week_start >= weeks.start, ReportWorkloadWeek.week_start <= weeks.end
        )
    ).all()
    names = user_names(connection, {r.assignee for r in rows})
    found = [
        WorkloadRow(
            assignee=r.assignee,
            name=names.get(r.assignee.lower(), r.assignee),
            week=iso_week(r.week_start),
            week_start=r.week_start,
            opened=r.opened,
            open_now=r.open_now,
            overdue_now=r.overdue_now,
            closed=r.closed,
            acted=r.acted,
            joined=r.joined,
            median_first_action_hours=r.median_first_action_hours,
            outcomes=dict(sorted((r.outcomes or {}).items())),
        )
        for r in rows
    ]
    found.sort(key=lambda r: (-r.week_start.toordinal(), -r.opened, r.assignee))
    return Workload(tuple(found), tuple(sorted({o for r in found for o in r.outcomes})))


__all__ = [
    "LATE_DAYS",
    "Refreshed",
    "answer_rates",
    "funnels",
    "refresh",
    "refresh_for",
    "refreshed_at",
    "workload",
]
