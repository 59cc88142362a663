"""`techtouch simulate`: replay days on a copy with a model of how customers respond.

Each simulated day: usage moves on (a week-ago copy, recovered accounts back to their
baseline), customers respond to yesterday's messages (open, click, answer a survey),
some configure, go live or sign their renewal, and then the real daily run decides.
Nothing is rendered or sent: pending touches are marked sent, so a year runs in minutes. With
`deliver` (the demo), each simulated day is delivered at its own due times instead.

The copy lives in a temporary folder that is removed when the simulation ends (it holds every
contact's data), whether it succeeds or raises, unless `keep` asks for it; a `workdir` given by
the caller, and the configured database of an `in_place` run (the demo), always stay.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Table, bindparam, select, text, update

from techtouch.adapters.db import migrate
from techtouch.adapters.db.bulk import insert_rows, upsert_rows
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Base, Event, Touch
from techtouch.domain.access import Actor, Role
from techtouch.domain.catalog import CompiledJourney
from techtouch.services import ctas
from techtouch.services.app import App
from techtouch.services.day import run_day
from techtouch.services.runner import run_journeys

ANSWERS: dict[str, tuple[list[str], list[float]]] = {
    "renewal": (["likely", "unsure", "not_likely"], [0.6, 0.25, 0.15]),
    "nps": ([str(i) for i in range(11)], [0.02, 0.01, 0.02, 0.03, 0.04, 0.05, 0.08, 0.12, 0.18, 0.2, 0.25]),
    "csat": (["1", "2", "3", "4", "5"], [0.05, 0.07, 0.18, 0.35, 0.35]),
    "advocate": (["yes", "no"], [0.4, 0.6]),
}
# One-click answers that ask for a person, per template that offers them: (survey, answer, share
# of the opened emails that click it). The journeys' `requests` turn them into CTAs.
REQUEST_ANSWERS: dict[str, list[tuple[str, str, float]]] = {
    "risk/report": [("talk_to_csm", "yes", 0.06)],
    "risk/content": [("talk_to_csm", "yes", 0.04)],
    "onboarding/training": [("live_training", "yes", 0.08)],
    "onboarding/configure_reminder": [("setup_help", "need_help", 0.15)],
    "advocacy/passive_followup": [("followup_call", "yes", 0.15)],
    "renewal/incentive": [("early_renewal", "talk_first", 0.3), ("early_renewal", "interested", 0.3)],
}
# How likely a CSM closes a CTA with each outcome (relative; any other outcome weighs 1).
OUTCOME_WEIGHTS: dict[str, float] = {
    "renewal_confirmed": 4.0,
    "training_booked": 4.0,
    "reached_resolved": 3.0,
    "configured_together": 3.0,
    "advocate_agreed": 3.0,
    "usage_plan_agreed": 2.0,
    "reached_at_risk": 1.5,
    "no_answer": 1.2,
    "churn_confirmed": 0.6,
}


@dataclass(frozen=True)
class ResponseModel:
    open_rate: float = 0.45
    click_rate: float = 0.15  # of all emails
    answer_rate: float = 0.25  # of survey emails
    configure_rate: float = 0.12  # per day, onboarding accounts not yet configured
    live_rate: float = 0.10  # per day, configured accounts not yet live
    recovery_rate: float = 0.08  # per day, accounts in the risk journey
    sign_rate: float = 0.04  # per day, accounts within 30 days of renewal
    # CSMs: the chance that an open CTA is worked on a given day (then mostly closed with an
    # outcome, sometimes started, or snoozed for a few days).
    work_rate: float = 0.35
    seed: int = 0


@dataclass
class SimulationResult:
    start: date
    days: int
    funnel: pd.DataFrame  # journey, milestone, rung, channel, touches
    cta_load: pd.DataFrame  # ISO week (rows, in time order: `week_order`) x assignee (sorted)
    exits: pd.DataFrame  # journey, exit_reason, count
    database: str | None  # the simulated database's URL; None once its temporary copy is removed
    outbox: str = ""
    kept: Path | None = None  # the temporary folder kept on request (`keep`); delete it when done
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "days": self.days,
            "funnel": self.funnel.to_dict("records"),
            "cta_load": self.cta_load.reset_index().to_dict("records"),
            "exits": self.exits.to_dict("records"),
            "database": self.database,
            "kept": None if self.kept is None else str(self.kept),
        }


def copy_database(source: Engine, target: Engine) -> None:
    """Every table, parents first, in chunks: works from PostgreSQL or SQLite into SQLite."""
    migrate.upgrade(target)
    with source.connect() as reader, target.begin() as writer:
        for table in Base.metadata.sorted_tables:
            result = reader.execution_options(yield_per=20_000).execute(select(table))
            for chunk in result.mappings().partitions(20_000):
                insert_rows(writer, table, [dict(row) for row in chunk])


def simulate_days(
    app: App,
    journeys: list[CompiledJourney],
    start: date,
    days: int,
    model: ResponseModel,
    *,
    accounts: int | None = None,
    workdir: Path | None = None,
    in_place: bool = False,
    deliver: bool = False,
    keep: bool = False,
    progress: Callable[[date], Any] | None = None,
) -> SimulationResult:
    """Replay `days` days from `start`; `in_place` runs on the configured database itself (the demo)
    and `deliver` renders and sends through the configured channels instead of marking touches sent.

    Without `workdir` or `in_place`, the simulated database is a temporary copy (or seeded base), removed
    at the end even on an error; `keep` keeps it and names its folder in `SimulationResult.kept`."""
    settings = app.settings
    temporary = workdir is None and not in_place
    folder = Path(tempfile.mkdtemp(prefix="techtouch-sim-")) if temporary else workdir
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        url = settings.database_url if in_place or folder is None else f"sqlite:///{folder / 'simulation.db'}"
        result = _simulate(
            app, journeys, start, days, model, url, folder, accounts, in_place, deliver, progress
        )
    finally:
        if temporary and not keep and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)  # every contact's data: never left behind
    if temporary:
        result.database, result.kept = (result.database, folder) if keep else (None, None)
    return result


def _simulate(
    app: App,
    journeys: list[CompiledJourney],
    start: date,
    days: int,
    model: ResponseModel,
    url: str,
    folder: Path | None,
    accounts: int | None,
    in_place: bool,
    deliver: bool,
    progress: Callable[[date], Any] | None,
) -> SimulationResult:
    settings = app.settings
    engine = make_engine(url)
    try:
        if in_place:
            migrate.upgrade(engine)
        elif accounts is not None:
            from techtouch.services.seed import seed

            migrate.upgrade(engine)
            seed(
                engine,
                accounts=accounts,
                seed=model.seed,
                days=90,
                as_of=start,
                high_touch_arr=settings.high_touch_arr,
            )
        else:
            assert folder is not None  # a copy needs a folder (simulate_days makes one)
            _copy_configured(settings.database_url, folder / "simulation.db", engine)
        sim_settings = settings.model_copy(update={"database_url": url})
        sim = app.on(engine, sim_settings)
        rng = np.random.default_rng(model.seed)
        for offset in range(days):
            day = start + timedelta(days=offset)
            advance_usage(engine, day)
            _respond(engine, day, model, rng)
            work_ctas(sim, day, model, rng)
            if deliver:
                # Each simulated day is delivered at its own times (the run, then every due time up
                # to the next day's run), never at today's: today would expire it all as too late.
                until = min(sim.instant(day + timedelta(days=1)), datetime.now(UTC))
                run_day(sim, journeys, day, now=sim.instant(day), play_until=until)
            else:
                run_journeys(engine, sim_settings, journeys, day, sim.instant(day))
                with engine.begin() as connection:
                    connection.execute(update(Touch).where(Touch.status == "pending").values(status="sent"))
            if progress:
                progress(day)
        return _summarize(engine, start, days, url, journeys)
    finally:
        engine.dispose()


def _copy_configured(source_url: str, path: Path, engine: Engine) -> None:
    """The configured database into `engine` (a SQLite file at `path`)."""
    if source_url.startswith("sqlite:///") and Path(source_url.removeprefix("sqlite:///")).is_file():
        # VACUUM INTO: a consistent copy even while a scheduled run writes; outside any transaction.
        source = make_engine(source_url)
        raw = source.raw_connection()
        try:
            raw.cursor().execute("VACUUM INTO ?", (str(path),))
        finally:
            raw.close()
            source.dispose()
        migrate.upgrade(engine)
    else:
        source = make_engine(source_url)
        try:
            copy_database(source, engine)
        finally:
            source.dispose()


def advance_usage(engine: Engine, day: date) -> None:
    """Yesterday's usage: a copy of the same weekday a week before (the seeded trajectories go on)."""
    yesterday = day - timedelta(days=1)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO usage_daily (account_id, date, active_users, logins, key_actions) "
                "SELECT account_id, :yesterday, active_users, logins, key_actions FROM usage_daily "
                "WHERE date = :week_before ON CONFLICT DO NOTHING"
            ),
            {"yesterday": yesterday, "week_before": yesterday - timedelta(days=7)},
        )


def _event_rows(
    frame: pd.DataFrame, when: datetime, kind: str, values: pd.Series | str
) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    values = values if isinstance(values, pd.Series) else pd.Series(values, index=frame.index)
    rows = []
    for (account, contact), value in zip(
        zip(frame["account_id"], frame["contact_id"], strict=True), values, strict=True
    ):
        key = hashlib.sha256(
            f"sim|{account}|{contact}|{when.isoformat()}|{kind}|{value}".encode()
        ).hexdigest()
        rows.append(
            {
                "key": key,
                "account_id": account,
                "contact_id": contact,
                "occurred_at": when,
                "type": kind,
                "value": value,
                "source": "simulation",
            }
        )
    return rows


def _respond(engine: Engine, day: date, model: ResponseModel, rng: np.random.Generator) -> None:
    yesterday = day - timedelta(days=1)
    when = datetime.combine(yesterday, time(14, 0), tzinfo=UTC)
    with engine.begin() as connection:
        sent = pd.read_sql_query(
            text(
                "SELECT key, account_id, contact_id, journey, milestone, template FROM touches "
                "WHERE as_of = :d AND channel = 'email' AND status = 'sent'"
            ),
            connection,
            params={"d": yesterday},
        )
        events: list[dict[str, Any]] = []
        if not sent.empty:
            draw = rng.random(len(sent))
            clicked = draw < model.click_rate
            opened = draw < model.open_rate
            for status, mask in (("opened", opened & ~clicked), ("clicked", clicked)):
                keys = sent.loc[mask, "key"].tolist()
                if keys:
                    connection.execute(update(Touch).where(Touch.key.in_(keys)).values(status=status))
            survey = sent["milestone"].map(
                {"announce": "renewal", "nps": "nps", "csat": "csat", "ask": "advocate"}
            )
            answering = sent[
                survey.notna() & opened & (rng.random(len(sent)) < model.answer_rate / model.open_rate)
            ]
            for name, group in answering.groupby(survey[answering.index]):
                choices, weights = ANSWERS[str(name)]
                picked = rng.choice(choices, size=len(group), p=weights)
                events += _event_rows(
                    group, when, "survey", pd.Series([f"{name}:{a}" for a in picked], group.index)
                )
            for template, offers in REQUEST_ANSWERS.items():
                offered = sent[(sent["template"] == template) & opened]
                for name, value, rate in offers:
                    asking = offered[rng.random(len(offered)) < rate]
                    events += _event_rows(asking, when, "survey", f"{name}:{value}")
        state = pd.read_sql_query(
            text(
                "SELECT e.account_id, e.journey, "
                "  EXISTS (SELECT 1 FROM events v WHERE v.account_id = e.account_id AND v.type = 'milestone' "
                "          AND v.value = 'configured') AS configured, "
                "  EXISTS (SELECT 1 FROM events v WHERE v.account_id = e.account_id AND v.type = 'milestone' "
                "          AND v.value = 'live') AS live "
                "FROM enrollments e WHERE e.status = 'active'"
            ),
            connection,
        )
        onboarding = state[state["journey"] == "onboarding"].assign(contact_id=None)
        configure = onboarding[
            ~onboarding["configured"].astype(bool) & (rng.random(len(onboarding)) < model.configure_rate)
        ]
        go_live = onboarding[
            onboarding["configured"].astype(bool)
            & ~onboarding["live"].astype(bool)
            & (rng.random(len(onboarding)) < model.live_rate)
        ]
        events += _event_rows(configure, when, "milestone", "configured")
        events += _event_rows(go_live, when, "milestone", "live")
        renewal = state[state["journey"] == "renewal"].assign(contact_id=None)
        events += _event_rows(renewal[rng.random(len(renewal)) < model.sign_rate], when, "renewal_signed", "")
        if events:
            upsert_rows(connection, cast(Table, Event.__table__), events, key=("key",), update=False)
        risk = state[state["journey"] == "risk"]
        recovering = risk[rng.random(len(risk)) < model.recovery_rate]["account_id"].tolist()
        if recovering:
            # Recovered: yesterday looks like the busiest day of their baseline month.
            connection.execute(
                text(
                    "UPDATE usage_daily SET key_actions = (SELECT MAX(u.key_actions) FROM usage_daily u "
                    "WHERE u.account_id = usage_daily.account_id AND u.date < :d30) * 2, logins = logins + 5 "
                    "WHERE date >= :d7 AND date < :d AND account_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"d30": day - timedelta(days=30), "d7": day - timedelta(days=7), "d": day, "ids": recovering},
            )


def work_ctas(app: App, day: date, model: ResponseModel, rng: np.random.Generator) -> int:
    """The CSMs' day, for the simulation: each open CTA assigned to a person is worked with
    `model.work_rate` (a CTA of the team queue waits for a manager): 70% closed with an outcome
    from its list (OUTCOME_WEIGHTS), 15% started, 15% snoozed 3 to 7 days. Through the lifecycle
    service, as the assignee, so history and the next run see exactly what a person's work gives."""
    with app.engine.connect() as connection:
        open_rows = connection.execute(
            text(
                "SELECT id, assignee, status FROM ctas WHERE status IN ('open', 'in_progress') "
                "AND created_as_of < :d ORDER BY id"
            ),
            {"d": day},
        ).all()
    at = datetime.combine(day - timedelta(days=1), time(15, 0), tzinfo=UTC)
    worked = 0
    for row in open_rows:
        if row.assignee.startswith("queue:") or rng.random() >= model.work_rate:
            continue
        actor = Actor(0, row.assignee, row.assignee, Role.CSM)
        draw = rng.random()
        try:
            if draw < 0.70 or row.status == "in_progress":
                with app.engine.connect() as connection:
                    outcomes = ctas.get(connection, row.id, actor).outcomes
                weights = np.array([OUTCOME_WEIGHTS.get(o, 1.0) for o in outcomes])
                outcome = str(rng.choice(list(outcomes), p=weights / weights.sum()))
                ctas.complete(app, row.id, actor, outcome, today=day - timedelta(days=1), at=at)
            elif draw < 0.85:
                ctas.start(app, row.id, actor, today=day - timedelta(days=1), at=at)
            else:
                until = day + timedelta(days=int(rng.integers(3, 8)))
                ctas.snooze(
                    app,
                    row.id,
                    actor,
                    until,
                    "Waiting for the customer",
                    today=day - timedelta(days=1),
                    at=at,
                )
            worked += 1
        except (ctas.CtaRuleError, ctas.UnknownCta):
            continue
    return worked


def _step_order(journeys: list[CompiledJourney]) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    """Funnel rows in the order a customer meets them: journey priority, milestone, rung."""
    order: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for ji, journey in enumerate(journeys):
        for mi, m in enumerate(journey.milestones):
            for ri, rung in enumerate(m.spec.ladder):
                order[(journey.id, m.spec.id, rung.id)] = (ji, mi, ri)
    return order


def _summarize(
    engine: Engine, start: date, days: int, url: str, journeys: list[CompiledJourney]
) -> SimulationResult:
    with engine.connect() as connection:
        touches = pd.read_sql_query(
            select(
                Touch.journey, Touch.milestone, Touch.rung, Touch.channel, Touch.status, Touch.as_of
            ).where(Touch.as_of >= start),
            connection,
        )
        ctas = pd.read_sql_query(
            text("SELECT assignee, created_as_of FROM ctas WHERE created_as_of >= :s"),
            connection,
            params={"s": start},
        )
        exits = pd.read_sql_query(
            text(
                "SELECT journey, exit_reason, COUNT(*) AS count FROM enrollments WHERE exited_as_of >= :s "
                "GROUP BY journey, exit_reason ORDER BY journey, count DESC"
            ),
            connection,
            params={"s": start},
        )
    funnel = (
        touches.assign(responded=touches["status"].isin(["opened", "clicked"]))
        .groupby(["journey", "milestone", "rung", "channel"], sort=False)
        .agg(
            touches=("status", "size"),
            skipped=("status", lambda s: int((s == "skipped").sum())),
            opened=("responded", "sum"),
        )
        .reset_index()
    )
    order = _step_order(journeys)
    journey_rank = {j.id: i for i, j in enumerate(journeys)}
    funnel["_order"] = [
        order.get((j, m, r), (journey_rank.get(j, 99), 98 if m == "goal" else 97, 99))
        for j, m, r in zip(funnel["journey"], funnel["milestone"], funnel["rung"], strict=True)
    ]
    funnel = funnel.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    return SimulationResult(
        start=start, days=days, funnel=funnel, cta_load=cta_load(ctas), exits=exits, database=url
    )


def cta_load(ctas: pd.DataFrame) -> pd.DataFrame:
    """CTAs created per ISO week (rows, in time order: `week_order`) and assignee (columns, sorted),
    from `assignee` and `created_as_of` columns; empty without CTAs."""
    if ctas.empty:
        return pd.DataFrame()
    created = pd.to_datetime(ctas["created_as_of"]).dt.date
    load = pd.crosstab(created.map(iso_week).rename("week"), ctas["assignee"].rename("assignee"))
    return load.reindex(index=week_order(created), columns=sorted(load.columns), fill_value=0)


def iso_week(day: date) -> str:
    """`2026-W53`: the ISO year and week of `day` (31 Dec 2025 is 2026-W01, 1 Jan 2027 2026-W53)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_order(days: Iterable[date]) -> list[str]:
    """The distinct ISO weeks of `days` (`iso_week` labels) in time order: a simulation across New
    Year lists 2026-W52 and 2026-W53 before 2027-W01, never W01 first as a bare `W%V` sort would."""
    weeks = {day.isocalendar()[:2] for day in days}
    return [f"{year}-W{week:02d}" for year, week in sorted(weeks)]
