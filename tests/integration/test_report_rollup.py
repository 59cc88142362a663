"""Everyone's `/reports` numbers from the rollup the runs keep (techtouch.services.report_rollup).

The rollup is a faster way to the same numbers: after a refresh, the funnels, answer rates and CTA
workload it gives for any range equal those computed from the history by the queries
(techtouch.services.report_queries), on journeys played by the simulator (messages, feedback,
answers, CTAs worked by CSMs). A later refresh recomputes only what can still change.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, text, update

from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Account, Cta, Enrollment, ReportCohortDay, ReportFunnelDay, Touch
from techtouch.services import report_queries, report_rollup
from techtouch.services.app import App
from techtouch.services.report_queries import Period
from techtouch.services.seed import seed
from techtouch.services.simulate import ResponseModel, simulate_days
from tests.integration.test_cli import D0 as CLI_D0
from tests.integration.test_cli import cli_env, imported, techtouch  # noqa: F401  (fixtures)
from tests.integration.workspace_base import make_app

D0 = date(2026, 9, 1)
DAYS = 21
TODAY = D0 + timedelta(days=DAYS - 1)
EVERYONE = report_queries.Scope("all teams")


def played(engine: Engine, tmp_path: Path, days: int = DAYS) -> App:
    seed(engine, accounts=120, seed=3, days=90, as_of=D0)
    app = make_app(engine, tmp_path)
    simulate_days(
        app,
        list(app.catalog.values()),
        D0,
        days,
        ResponseModel(seed=7),
        in_place=True,
        workdir=tmp_path / "sim",
    )
    return app


def from_history(app: App, within: Period, today: date) -> dict[str, Any]:
    journeys = report_queries.ordered_journeys(app)
    offers = report_queries.template_offers(app, journeys)
    with app.engine.connect() as connection:
        return {
            "funnels": report_queries.funnels(connection, journeys, EVERYONE, within),
            "answers": report_queries.answer_rates(
                connection, offers, EVERYONE, within, [j.id for j in journeys], today
            ),
            "workload": report_queries.cta_workload(connection, EVERYONE, within, today),
        }


def from_rollup(app: App, within: Period) -> dict[str, Any]:
    journeys = report_queries.ordered_journeys(app)
    offers = report_queries.template_offers(app, journeys)
    with app.engine.connect() as connection:
        return {
            "funnels": report_rollup.funnels(connection, journeys, within),
            "answers": report_rollup.answer_rates(connection, offers, [j.id for j in journeys], within),
            "workload": report_rollup.workload(connection, within),
        }


RANGES = [
    Period(D0 - timedelta(days=10), TODAY),  # everything
    Period(D0 + timedelta(days=3), D0 + timedelta(days=9)),  # cohorts of a week, weeks cut by the range
    Period(TODAY + timedelta(days=5), TODAY + timedelta(days=30)),  # after the data: empty
]


def test_the_rollup_gives_the_numbers_computed_from_the_history(engine: Engine, tmp_path: Path) -> None:
    app = played(engine, tmp_path)
    done = report_rollup.refresh_for(app, TODAY)
    assert done.cohorts_from is None and done.weeks_from is None  # the first refresh: everything
    assert done.rows["funnel_days"] > 0 and done.rows["workload_weeks"] > 0

    for within in RANGES:
        rolled, computed = from_rollup(app, within), from_history(app, within, TODAY)
        for a, b in zip(rolled["funnels"], computed["funnels"], strict=True):
            assert a.rows == b.rows, [(x, y) for x, y in zip(a.rows, b.rows, strict=False) if x != y][:3]
        assert rolled == computed, within
    everything = from_rollup(app, RANGES[0])
    # Not vacuous: the simulation sent, got answers and CTAs worked.
    rows = [r for f in everything["funnels"] for r in f.rows]
    assert sum(r.sent for r in rows) > 0 and sum(r.escalated for r in rows) > 0
    assert any(a.asked and a.answered for a in everything["answers"])
    assert any(w.closed for w in everything["workload"].rows) and any(
        w.open_now for w in everything["workload"].rows
    )


def test_a_refresh_after_more_days_recomputes_what_can_change_only(engine: Engine, tmp_path: Path) -> None:
    app = played(engine, tmp_path, days=10)
    # An enrollment that ended long ago, with a touch: its cohort can no longer change.
    old_day = D0 - timedelta(days=200)
    account = str(engine.connect().execute(select(Account.id).order_by(Account.id).limit(1)).scalar_one())
    with engine.begin() as c:
        old = c.execute(
            insert(Enrollment)
            .values(
                account_id=account,
                journey="renewal",
                cycle=99,
                status="completed",
                milestone="announce",
                phase="active",
                step=1,
                entered_as_of=old_day,
                exited_as_of=old_day + timedelta(days=3),
                exit_reason="renewed",
                entry={},
            )
            .returning(Enrollment.id)
        ).scalar_one()
        c.execute(
            insert(Touch).values(
                key="old-touch",
                enrollment_id=old,
                account_id=account,
                journey="renewal",
                milestone="announce",
                rung="email",
                channel="email",
                status="sent",
                as_of=old_day,
            )
        )
    first_day = D0 + timedelta(days=9)
    report_rollup.refresh_for(app, first_day)

    later = TODAY
    more = first_day + timedelta(days=1)
    journeys = list(app.catalog.values())
    simulate_days(
        app, journeys, more, DAYS - 10, ResponseModel(seed=8), in_place=True, workdir=tmp_path / "sim"
    )
    with engine.begin() as c:  # history that can no longer change, changed: the refresh must not look
        c.execute(delete(Touch).where(Touch.key == "old-touch"))
        # Every CTA still open closed since, some of them of the first weeks: their weeks are recomputed.
        closed = c.execute(
            update(Cta)
            .where(Cta.status.in_(["open", "in_progress", "snoozed"]))
            .values(status="cancelled")
            .returning(Cta.created_as_of)
        ).all()
    assert closed
    done = report_rollup.refresh_for(app, later)

    with engine.connect() as c:
        lively = c.execute(
            select(func.min(Enrollment.entered_as_of)).where(
                (Enrollment.status == "active")
                | (Enrollment.exited_as_of >= first_day - timedelta(days=report_rollup.LATE_DAYS))
            )
        ).scalar_one()
        kept = c.execute(
            select(func.sum(ReportFunnelDay.entered)).where(ReportFunnelDay.entered_on == old_day)
        ).scalar_one()
    assert done.cohorts_from == lively and old_day < lively
    assert done.weeks_from is not None and done.weeks_from.weekday() == 0
    assert kept == 2  # the old cohort's milestone and rung rows, left as they were
    # Everything newer equals the history, including the weeks of the CTAs closed since.
    recent = Period(lively, later)
    assert from_rollup(app, recent) == from_history(app, recent, later)
    assert all(w.open_now == 0 for w in from_rollup(app, recent)["workload"].rows)

    report_rollup.refresh_for(app, later, full=True)  # recomputes the past too: the old cohort is gone
    with engine.connect() as c:
        assert c.execute(select(func.count()).where(ReportFunnelDay.entered_on == old_day)).scalar_one() == 0
        cohort = select(func.sum(ReportCohortDay.enrollments)).where(ReportCohortDay.entered_on == old_day)
        assert c.execute(cohort).scalar_one() == 1


def test_techtouch_run_refreshes_the_rollup_and_reports_refresh_says_what_it_did(
    cli_env: dict[str, str],  # noqa: F811
    imported: dict[str, str],  # noqa: F811
) -> None:
    day = CLI_D0.isoformat()
    assert techtouch(cli_env, "run", "--all", "--as-of", day).returncode == 0
    engine = make_engine(cli_env["TECHTOUCH_DATABASE_URL"])
    try:
        with engine.connect() as c:
            [(as_of, cohorts_from)] = c.execute(
                text("SELECT as_of, cohorts_from FROM report_refreshes")
            ).all()
            entered = c.execute(text("SELECT SUM(enrollments) FROM report_cohort_days")).scalar_one()
            enrollments = c.execute(text("SELECT COUNT(*) FROM enrollments")).scalar_one()
        assert str(as_of)[:10] == day and cohorts_from is None  # the first refresh: everything
        assert entered == enrollments > 0
    finally:
        engine.dispose()

    refreshed = techtouch(
        cli_env, "reports", "refresh", "--as-of", (CLI_D0 + timedelta(days=1)).isoformat(), "--json"
    )
    assert refreshed.returncode == 0, refreshed.stderr
    summary = json.loads(refreshed.stdout)
    assert summary["as_of"] == (CLI_D0 + timedelta(days=1)).isoformat() and summary["cohorts_from"] == day
    assert set(summary["rows"]) == {"funnel_days", "cohort_days", "survey_days", "workload_weeks"}
    told = techtouch(cli_env, "reports", "refresh", "--full")
    assert told.returncode == 0 and "the whole history" in told.stdout
    bad = techtouch(cli_env, "reports", "refresh", "--as-of", "yesterday")
    assert bad.returncode == 2 and "--as-of" in bad.stderr


def test_the_rollup_holds_no_contact_data(engine: Engine, tmp_path: Path) -> None:
    app = played(engine, tmp_path, days=5)
    report_rollup.refresh_for(app, D0 + timedelta(days=4))
    with engine.connect() as c:
        cells = " ".join(
            str(v)
            for name in (
                "report_funnel_days",
                "report_cohort_days",
                "report_survey_days",
                "report_workload_weeks",
            )
            for row in c.execute(text(f"SELECT * FROM {name}"))
            for v in row
        )
        contacts = c.execute(text("SELECT id, email, phone FROM contacts")).all()
    assert cells
    assert not [value for row in contacts for value in row if value and str(value) in cells]
