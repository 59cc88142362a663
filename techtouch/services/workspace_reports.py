"""`/reports` for a person: the reports of their scope, for a range, kept a few minutes, and as CSV.

The queries and the definitions are in techtouch.services.report_queries. Ops see everyone's
numbers: the funnels, answer rates and workload come from the rollup the runs keep
(techtouch.services.report_rollup: a range sums a few thousand rows), the NPS and the risk
recovery from one indexed query each. A manager's team is computed from its accounts' history
(a few hundred milliseconds over 100,000 accounts: benchmarks/workspace.py).
"""

from __future__ import annotations

import threading
import time as clock
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from techtouch.domain.access import Actor
from techtouch.domain.catalog import CompiledJourney
from techtouch.services import report_rollup
from techtouch.services.app import App
from techtouch.services.report_queries import (
    DEFAULT_DAYS,
    FUNNEL_MEASURES,
    REPORT_NAMES,
    FunnelRow,
    JourneyFunnel,
    Nps,
    Period,
    ReportError,
    RiskRecovery,
    Scope,
    SurveyRate,
    UnknownReport,
    Workload,
    WorkloadRow,
    WorkspaceReports,
    answer_rates,
    cta_workload,
    funnels,
    nps,
    nps_group,
    ordered_journeys,
    parse_day,
    period,
    risk_recovery,
    scope_for,
    sorting_room,
    template_offers,
)


class _Cache:
    """Computed reports for CACHE_SECONDS, per database, scope, range, day and rollup refresh (a
    few, most recent).

    Why: a manager's reports take a few hundred milliseconds, everyone's NPS and risk recovery
    tens; the numbers are about weeks of history and move when a run or the day's feedback lands.
    So a person reloading the page, a colleague with the same scope and every CSV download of the
    page's range get the numbers computed a moment ago. The page says when they were computed.
    Access is checked on every request, before the cache.
    """

    def __init__(self, seconds: float, size: int) -> None:
        self.seconds, self.size = seconds, size
        self._entries: OrderedDict[Hashable, tuple[float, WorkspaceReports]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> WorkspaceReports | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or clock.monotonic() - found[0] > self.seconds:
                self._entries.pop(key, None)
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: Hashable, value: WorkspaceReports) -> None:
        with self._lock:
            self._entries[key] = (clock.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE_SECONDS = 300.0
_CACHE = _Cache(CACHE_SECONDS, size=32)


def clear_cache() -> None:
    """Forget every computed report (tests, benchmarks: the next build computes)."""
    _CACHE.clear()


def _cache_key(
    app: App, scope: Scope, within: Period, today: date, journeys: Sequence[str], refreshed: datetime | None
) -> Hashable:
    url = app.engine.url.render_as_string(hide_password=True)
    return (url, scope.members, within, today, tuple(journeys), refreshed if scope.everyone else None)


def build(app: App, actor: Actor, within: Period, today: date, *, cached: bool = True) -> WorkspaceReports:
    """Every report for `actor` (Forbidden unless ops or a manager), or the same reports computed
    less than CACHE_SECONDS ago for the same scope (`cached=False`: compute).

    Everyone's come from the rollup, brought up to date here if no run did yet."""
    journeys = ordered_journeys(app)
    with app.engine.connect() as connection:
        scope = scope_for(connection, actor)
        refreshed = report_rollup.refreshed_at(connection) if scope.everyone else None
    key = _cache_key(app, scope, within, today, [j.id for j in journeys], refreshed)
    found = _CACHE.get(key) if cached else None
    if found is not None:
        return found
    offers = template_offers(app, journeys)
    if scope.everyone and refreshed is None:
        refreshed = report_rollup.refresh(app.engine, journeys, offers, today).refreshed_at
    with app.engine.connect() as connection, sorting_room(connection):
        found = _compute(connection, journeys, offers, scope, within, today, refreshed)
    _CACHE.put(_cache_key(app, scope, within, today, [j.id for j in journeys], refreshed), found)
    return found


def _compute(
    connection: Connection,
    journeys: Sequence[CompiledJourney],
    offers: Mapping[str, Iterable[str]],
    scope: Scope,
    within: Period,
    today: date,
    refreshed: datetime | None = None,
) -> WorkspaceReports:
    """The reports of `scope`; with `refreshed` (everyone's only) the funnels, answer rates and
    workload are summed from the rollup refreshed then, else computed from the history."""
    ids = [j.id for j in journeys]
    if refreshed is not None:
        journey_funnels, rates, workload = (
            report_rollup.funnels(connection, journeys, within),
            report_rollup.answer_rates(connection, offers, ids, within),
            report_rollup.workload(connection, within),
        )
    else:
        journey_funnels, rates, workload = (
            funnels(connection, journeys, scope, within),
            answer_rates(connection, offers, scope, within, ids, today),
            cta_workload(connection, scope, within, today),
        )
    return WorkspaceReports(
        period=within,
        scope=scope,
        today=today,
        funnels=tuple(journey_funnels),
        answer_rates=tuple(rates),
        nps=nps(connection, scope, within),
        risk=risk_recovery(connection, scope, within),
        workload=workload,
        refreshed_at=refreshed,
    )


@dataclass(frozen=True)
class Table:
    """A report as rows for CSV: a header and plain values (str, int, float or None)."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def table(app: App, actor: Actor, name: str, within: Period, today: date) -> Table:
    """One report as a table (`REPORT_NAMES`, or `funnel-<journey>`): the page's numbers (everyone's,
    or kept a moment ago), else a manager's one report computed alone.

    UnknownReport for another name; Forbidden unless the actor may see reports."""
    journeys = ordered_journeys(app)
    if name.startswith("funnel-"):
        wanted = name.removeprefix("funnel-")
        journeys = [j for j in journeys if j.id == wanted]
        if not journeys:
            raise UnknownReport(name)
    elif name not in REPORT_NAMES:
        raise UnknownReport(name)
    with app.engine.connect() as connection:
        scope = scope_for(connection, actor)
    key = _cache_key(app, scope, within, today, [j.id for j in ordered_journeys(app)], None)
    computed = None if scope.everyone else _CACHE.get(key)
    if scope.everyone or computed is not None:
        return _table_of(computed or build(app, actor, within, today), name)
    offers = template_offers(app, journeys) if name == "answer-rates" else {}
    with app.engine.connect() as connection, sorting_room(connection):
        return _table_of(_compute_one(connection, name, journeys, offers, scope, within, today), name)


def _compute_one(
    connection: Connection,
    name: str,
    journeys: Sequence[CompiledJourney],
    offers: Mapping[str, Iterable[str]],
    scope: Scope,
    within: Period,
    today: date,
) -> WorkspaceReports:
    """The reports with only `name` computed (the others empty): what one CSV needs."""
    empty = WorkspaceReports(within, scope, today, (), (), Nps(dict.fromkeys(range(11), 0)), RiskRecovery({}),
                             Workload((), ()))  # fmt: skip
    if name.startswith("funnel"):
        return replace(empty, funnels=tuple(funnels(connection, journeys, scope, within)))
    if name == "answer-rates":
        found = answer_rates(connection, offers, scope, within, [j.id for j in journeys], today)
        return replace(empty, answer_rates=tuple(found))
    if name == "nps":
        return replace(empty, nps=nps(connection, scope, within))
    if name == "risk-recovery":
        return replace(empty, risk=risk_recovery(connection, scope, within))
    return replace(empty, workload=cta_workload(connection, scope, within, today))


def _table_of(found: WorkspaceReports, name: str) -> Table:
    if name == "funnel":
        return funnel_table(name, found.funnels)
    if name.startswith("funnel-"):
        return funnel_table(name, [f for f in found.funnels if f"funnel-{f.journey}" == name])
    if name == "answer-rates":
        return answer_rates_table(found.answer_rates)
    if name == "nps":
        return nps_table(found.nps)
    if name == "risk-recovery":
        return risk_table(found.risk)
    return workload_table(found.workload)


def _ratio(part: int, whole: int) -> float | None:
    return None if not whole else round(part / whole, 4)


def funnel_table(name: str, found: Sequence[JourneyFunnel]) -> Table:
    header = (
        "journey",
        "milestone",
        "milestone_title",
        "rung",
        "kind",
        "channel",
        *FUNNEL_MEASURES,
        "messages",
    )
    rows = tuple(
        (
            r.journey,
            r.milestone,
            r.milestone_title,
            r.rung or "",
            r.kind,
            r.channel or "",
            *r.measures().values(),
            r.messages,
        )
        for f in found
        for r in f.rows
    )
    return Table(name, header, rows)


def answer_rates_table(found: Sequence[SurveyRate]) -> Table:
    return Table(
        "answer-rates",
        ("survey", "asked", "answered", "answer_rate", "answers"),
        tuple((r.survey, r.asked, r.answered, _ratio(r.answered, r.asked), r.answers) for r in found),
    )


def nps_table(found: Nps) -> Table:
    rows = [(score, nps_group(score), n) for score, n in found.counts.items()]
    return Table("nps", ("score", "group", "responses"), tuple(rows))


def risk_table(found: RiskRecovery) -> Table:
    return Table(
        "risk-recovery",
        ("exit_reason", "enrollments", "share"),
        tuple((reason, n, _ratio(n, found.ended)) for reason, n in found.by_reason.items()),
    )


def workload_table(found: Workload) -> Table:
    header = (
        "week",
        "week_start",
        "assignee",
        "name",
        "opened",
        "open_now",
        "overdue_now",
        "closed",
        "joined",
        "acted",
        "median_hours_to_first_action",
        *(f"outcome_{o}" for o in found.outcomes),
    )
    rows = tuple(
        (
            r.week,
            r.week_start.isoformat(),
            r.assignee,
            r.name,
            r.opened,
            r.open_now,
            r.overdue_now,
            r.closed,
            r.joined,
            r.acted,
            r.median_first_action_hours,
            *(r.outcomes.get(o, 0) for o in found.outcomes),
        )
        for r in found.rows
    )
    return Table("cta-workload", header, rows)


__all__ = [
    "DEFAULT_DAYS",
    "FUNNEL_MEASURES",
    "REPORT_NAMES",
    "FunnelRow",
    "JourneyFunnel",
    "Nps",
    "Period",
    "ReportError",
    "RiskRecovery",
    "Scope",
    "SurveyRate",
    "Table",
    "UnknownReport",
    "Workload",
    "WorkloadRow",
    "WorkspaceReports",
    "answer_rates",
    "build",
    "clear_cache",
    "cta_workload",
    "funnels",
    "nps",
    "ordered_journeys",
    "parse_day",
    "period",
    "risk_recovery",
    "scope_for",
    "sorting_room",
    "table",
    "template_offers",
]
