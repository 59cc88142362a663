"""`GET /reports` (ops and managers): funnels, answer rates, NPS, risk recovery, CTA workload, each
as a chart, a table and a CSV download; `GET /reports/<name>.csv` for one of them.

The numbers come from techtouch.services.workspace_reports (aggregated by the database, scoped to
the person: ops see every account, a manager their team's); the charts from
techtouch.adapters.report_charts. Both routes take the same `start` and `end` (a GET form:
`YYYY-MM-DD`, by default the last 90 days up to the team's today) and the same access rule:
anyone else gets the 403 page, logged without PII.

CSV: written with the csv module (RFC 4180 quoting), UTF-8, as an attachment. A text cell that a
spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a tab or carriage return first) gets a
leading apostrophe (OWASP's CSV-injection advice): milestone, survey and outcome names come from
files and answers that ops do not fully control. Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from techtouch.adapters import report_charts
from techtouch.domain.access import can_see_reports
from techtouch.domain.decide import GOAL_MILESTONE, REQUEST_MILESTONE
from techtouch.entrypoints.web.auth import SignedIn
from techtouch.entrypoints.web.deps import state_of
from techtouch.entrypoints.web.workspace import WORKSPACE_HEADERS, forbidden, message, render, today
from techtouch.services import workspace_reports as reports

router = APIRouter()

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
WORKLOAD_ROWS_SHOWN = 300  # rows of the workload table on the page; the CSV has them all
STYLESHEET = "/static/reports.css"
NONE = "\N{EN DASH}"  # a rate of nothing, a median of no action


def neutralize(value: Any) -> Any:
    """A cell as written to CSV: a string a spreadsheet would run as a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return "" if value is None else value


def csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralize(h) for h in header])
    for row in rows:
        writer.writerow([neutralize(v) for v in row])
    return out.getvalue()


def _period(request: Request, start: str | None, end: str | None) -> reports.Period:
    return reports.period(reports.parse_day(start, "start"), reports.parse_day(end, "end"), today(request))


@router.get("/reports", response_model=None)
def reports_page(
    request: Request, actor: SignedIn, start: str | None = None, end: str | None = None
) -> Response:
    if not can_see_reports(actor):
        return forbidden(request, actor)
    day = today(request)
    error = None
    try:
        within = _period(request, start, end)
    except reports.ReportError as exc:
        error = str(exc)
        within = reports.period(None, None, day)
    found = reports.build(state_of(request).tt, actor, within, day)
    return render(
        request,
        actor,
        "reports.html",
        status=400 if error else 200,
        title="Reports",
        stylesheet=STYLESHEET,
        error=error,
        form={
            "start": start if error else within.start.isoformat(),
            "end": end if error else within.end.isoformat(),
        },
        query=f"start={within.start.isoformat()}&end={within.end.isoformat()}",
        r=found,
        charts=_charts_for(found),
        workload_rows=found.workload.rows[:WORKLOAD_ROWS_SHOWN],
        workload_more=max(len(found.workload.rows) - WORKLOAD_ROWS_SHOWN, 0),
        measures=reports.FUNNEL_MEASURES,
        cache_minutes=round(reports.CACHE_SECONDS / 60),
        percent=_percent,
        hours=_hours,
    )


@router.get("/reports/{name}.csv", response_model=None)
def report_csv(
    request: Request, actor: SignedIn, name: str, start: str | None = None, end: str | None = None
) -> Response:
    if not can_see_reports(actor):
        return forbidden(request, actor)
    try:
        within = _period(request, start, end)
    except reports.ReportError as exc:
        return message(request, actor, 400, "Not a date range", str(exc))
    try:
        found = reports.table(state_of(request).tt, actor, name, within, today(request))
    except reports.UnknownReport:
        return message(request, actor, 404, "Not found", "There is no such report.")
    filename = f"{found.name}_{within.start.isoformat()}_{within.end.isoformat()}.csv"
    headers = {key: value for key, value in WORKSPACE_HEADERS.items() if key != "Content-Security-Policy"} | {
        "Content-Disposition": f'attachment; filename="{filename}"'
    }
    return Response(csv_text(found.header, found.rows), media_type="text/csv; charset=utf-8", headers=headers)


@dataclass(frozen=True)
class Charts:
    funnels: dict[str, report_charts.Chart]
    nps: report_charts.Chart
    answers: report_charts.Chart
    workload: report_charts.Chart


_CHARTS: OrderedDict[int, tuple[reports.WorkspaceReports, Charts]] = OrderedDict()
_CHARTS_LOCK = threading.Lock()
CHARTS_KEPT = 16


def _charts_for(found: reports.WorkspaceReports) -> Charts:
    """The charts of these reports, drawn once per computed reports (the service keeps those a few
    minutes: a reload draws nothing again; pygal takes ~10-20 ms a chart)."""
    with _CHARTS_LOCK:
        kept = _CHARTS.get(id(found))
        if kept is not None and kept[0] is found:
            return kept[1]
    charts = Charts(
        funnels={f.journey: _funnel_chart(f) for f in found.funnels},
        nps=report_charts.nps_chart(found.nps.counts, found.nps.score),
        answers=report_charts.answer_rates_chart(
            [a.survey for a in found.answer_rates], [a.rate for a in found.answer_rates]
        ),
        workload=_workload_chart(found.workload),
    )
    with _CHARTS_LOCK:
        _CHARTS[id(found)] = (found, charts)  # the reports object is held, so its id stays its own
        while len(_CHARTS) > CHARTS_KEPT:
            _CHARTS.popitem(last=False)
    return charts


def _funnel_chart(funnel: reports.JourneyFunnel) -> report_charts.Chart:
    names = {GOAL_MILESTONE: "goal reached", REQUEST_MILESTONE: "requests"}
    steps = [names.get(row.milestone, row.milestone) for row in funnel.milestones]
    measures = {name: [row.measures()[name] for row in funnel.milestones] for name in reports.FUNNEL_MEASURES}
    return report_charts.funnel_chart(funnel.name, steps, measures)


def _workload_chart(workload: reports.Workload) -> report_charts.Chart:
    """CTAs opened per week and person, a person shown by name (by address when two share one)."""
    names = {row.assignee: row.name for row in workload.rows}
    shared = {name for name, n in Counter(names.values()).items() if n > 1}
    opened: dict[str, dict[str, int]] = {}
    for row in workload.rows:
        if row.opened:
            label = row.assignee if row.name in shared else row.name
            opened.setdefault(label, {})[row.week] = row.opened
    return report_charts.workload_chart(workload.weeks(), opened)


def _percent(part: int, whole: int) -> str:
    return NONE if not whole else f"{part / whole:.0%}"


def _hours(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d"
