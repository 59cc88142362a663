"""`make bench-workspace`: server time of the CSM workspace's pages over a large customer base.

    .venv/bin/python benchmarks/workspace.py [--accounts N] [--db sqlite|postgresql] [--days D]
                                             [--run-days K] [--requests R] [--results DIR]
                                             [--work DIR [--keep] [--reuse]]

Builds a database of N accounts (default 100,000: `techtouch seed`, 90 days of usage), gives it D
days (default 90) of journey history, creates the people (an ops user, a manager per team of 8
CSMs, a user per seeded CSM) and one CSM with 500 open CTAs, then measures, R times each (default
20, after one warm-up request), the median and the 95th percentile of:

- `/reports` for ops (every account) and for a manager (one team): the service alone (the SQL
  aggregates), the page in process (service + charts + template, the route called with a request),
  and the whole request through FastAPI's TestClient (signed in through the real form);
- `/inbox` of the CSM with 500 open CTAs and a CTA page (`/inbox/ctas/<id>`): in process and through
  the TestClient.

History: by default synthetic, written in bulk (`--run-days 0`): enrollments of every journey of
config/journeys entered on random days, their ladders' touches rung by rung (statuses, provider
verdicts, engagement events), CTAs with a lifecycle (first actions, outcomes, snoozes) and their
history, shaped like what 90 days of daily runs leave (about 8 touches per account). `--run-days K`
runs the real journeys day by day for the last K days instead (techtouch's simulator, answers and
CSM work simulated; slow: about a minute per day at 100,000 accounts). The output says which.

`/reports` is measured twice: *computed* (the reports cache emptied before each request, as on a
first visit) and *kept* (a reload within the cache's 5 minutes, techtouch.services.workspace_reports).
Everyone's reports read the rollup the runs keep (techtouch.services.report_rollup): its refresh is
measured first, once over the whole history (the first refresh) and three times as a run does it
(only what can still change), and everyone's reports computed from the history without it, three
times, for comparison.

Prints a table and writes `benchmarks/results/workspace-<scale>-<db>.json`. PostgreSQL
(TECHTOUCH_BENCH_POSTGRES_URL, default the local server as postgres) gets its own database,
`techtouch_bench_workspace`, dropped at the end (`--keep` keeps it). `--reuse` measures again the
database an earlier run built (`--work` holds what it built: the SQLite file, `build.json`).
No goal is asserted anywhere: this prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from fastapi.testclient import TestClient  # noqa: E402
from run_all import POSTGRES_URL, commit, machine  # noqa: E402
from sqlalchemy import Engine, create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from starlette.requests import Request  # noqa: E402

from techtouch import bootstrap  # noqa: E402
from techtouch.adapters import passwords  # noqa: E402
from techtouch.adapters.db import migrate  # noqa: E402
from techtouch.adapters.db.bulk import load_rows  # noqa: E402
from techtouch.adapters.db.engine import make_engine  # noqa: E402
from techtouch.adapters.db.models import Base, Cta  # noqa: E402
from techtouch.domain.catalog import CompiledJourney  # noqa: E402
from techtouch.entrypoints.web import create_app, reports_page  # noqa: E402
from techtouch.services import report_rollup, users, workspace_reports  # noqa: E402
from techtouch.services.app import App  # noqa: E402
from techtouch.services.runner import ordered  # noqa: E402
from techtouch.services.seed import seed  # noqa: E402
from techtouch.settings import Settings  # noqa: E402

RESULTS = HERE / "results"
PUBLIC_URL = "https://tt.example"
SECRET = "bench-workspace-secret-0123456789abcdef"
PASSWORD = "bench workspace password 42"
OPS = "ops@vendor.example"
BENCH_CSM = "bench.csm@vendor.example"
BENCH_OPEN_CTAS = 500
TEAM_SIZE = 8
# Goals of issue 12 (server time): shown in the table, never asserted.
GOALS_MS = {"reports": 1000.0, "inbox": 100.0, "cta": 100.0}

# The synthetic history: who enters each journey, how far ladders go, what became of messages.
ENTER = {"risk": 0.6, "renewal": 0.6, "advocacy": 0.7, "onboarding": 0.1}
REENTER = {"risk": 0.5}
NEXT_RUNG = 0.6  # the milestone was not done: the next rung goes out
NEXT_MILESTONE = 0.7  # done (or the ladder ran out) and the journey moved on
BRANCH = 0.2
EMAIL_STATUS = (("sent", 0.9), ("skipped", 0.04), ("suppressed", 0.03), ("failed", 0.01), ("expired", 0.02))
VERDICT = ((None, 0.13), ("delivered", 0.55), ("opened", 0.22), ("clicked", 0.08), ("bounced", 0.02))
CTA_STATUS = (("open", 0.35), ("in_progress", 0.08), ("snoozed", 0.04), ("done", 0.45), ("cancelled", 0.08))
OUTCOMES = ("reached_resolved", "reached_at_risk", "no_answer", "renewal_confirmed", "churn_confirmed")


def pick(rng: random.Random, choices: tuple[tuple[Any, float], ...]) -> Any:
    x, total = rng.random(), 0.0
    for value, weight in choices:
        total += weight
        if x < total:
            return value
    return choices[-1][0]


def day_text(day: date) -> str:
    return day.isoformat()


def instant_text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


# --- the database -----------------------------------------------------------------------------------


class Database:
    """A SQLite file in the work folder, or a PostgreSQL database of its own (dropped at the end)."""

    NAME = "techtouch_bench_workspace"

    def __init__(self, kind: str, work: Path, reuse: bool = False) -> None:
        self.kind = kind
        if kind == "sqlite":
            path = work / "workspace.db"
            if not reuse:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            self.url = f"sqlite:///{path}"
            return
        server = os.environ.get("TECHTOUCH_BENCH_POSTGRES_URL", POSTGRES_URL)
        self.admin = create_engine(server, isolation_level="AUTOCOMMIT")
        if not reuse:
            self._sql(f"DROP DATABASE IF EXISTS {self.NAME} WITH (FORCE)")
            self._sql(f"CREATE DATABASE {self.NAME}")
        self.url = make_url(server).set(database=self.NAME).render_as_string(hide_password=False)

    def _sql(self, statement: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(statement))

    def close(self, keep: bool = False) -> None:
        if self.kind == "postgresql":
            if not keep:
                self._sql(f"DROP DATABASE IF EXISTS {self.NAME} WITH (FORCE)")
            self.admin.dispose()


# --- the history ------------------------------------------------------------------------------------


class History:
    """Rows of enrollments, touches, events, CTAs and CTA history, generated journey by journey."""

    def __init__(
        self, rng: random.Random, today: date, days: int, first_cta: int = 1, first_history: int = 1
    ) -> None:
        self.rng, self.today, self.days = rng, today, days
        self.first_cta, self.first_history = first_cta, first_history
        self.enrollments: list[tuple[Any, ...]] = []
        self.touches: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.ctas: list[tuple[Any, ...]] = []
        self.history: list[tuple[Any, ...]] = []
        self.open_reasons: set[tuple[str, str]] = set()

    def journey(
        self,
        journey: CompiledJourney,
        accounts: list[tuple[str, str | None]],
        contacts: dict[str, list[str]],
    ) -> None:
        rng = self.rng
        share = ENTER.get(journey.id, 0.3)
        for account_id, csm in accounts:
            if rng.random() >= share:
                continue
            cycles = 2 if rng.random() < REENTER.get(journey.id, 0.0) else 1
            start = self.today - timedelta(days=rng.randrange(self.days))
            for cycle in range(1, cycles + 1):
                start = self._enrollment(journey, account_id, csm, contacts.get(account_id, []), cycle, start)
                if start is None or start >= self.today:
                    break

    def _enrollment(
        self,
        journey: CompiledJourney,
        account_id: str,
        csm: str | None,
        people: list[str],
        cycle: int,
        entered: date,
    ) -> date | None:
        rng = self.rng
        enrollment_id = len(self.enrollments) + 1
        recipients = people[: 2 if len(journey.spec.recipients) > 1 and rng.random() < 0.5 else 1]
        day = entered
        reached = 0
        finished = False
        for mi, milestone in enumerate(journey.milestones):
            reached = mi
            day += timedelta(days=milestone.spec.after)
            for ri, rung in enumerate(milestone.spec.ladder):
                if ri and rng.random() >= NEXT_RUNG:
                    break
                day += timedelta(days=rung.after)
                if day > self.today:
                    break
                self._touch(enrollment_id, journey.id, account_id, csm, cycle, milestone.spec.id, rung.id,
                            rung.channel, rung.template, rung.reason, recipients, day)  # fmt: skip
            if day > self.today:
                break
            if milestone.branches and rng.random() < BRANCH:
                branch, _ = rng.choice(milestone.branches)
                message = branch.message
                channel = "cta" if branch.cta or message is None else message.channel
                template = None if channel == "cta" or message is None else message.template
                reason = branch.cta.reason if branch.cta else None
                self._touch(enrollment_id, journey.id, account_id, csm, cycle, milestone.spec.id,
                            f"branch_{branch.id}", channel, template, reason, recipients, day)  # fmt: skip
            if rng.random() >= NEXT_MILESTONE:
                break
            finished = mi == len(journey.milestones) - 1
        if finished:
            status, reason = "completed", "finished"
        else:
            x = rng.random()
            if x < 0.5 or day >= self.today:
                status, reason = "active", None
            elif x < 0.75 or not journey.goals:
                status, reason = "exited", "timeout"
            else:
                status, reason = "completed", journey.goals[0][0].id
        ended = min(day, self.today) if status != "active" else None
        self.enrollments.append(
            (enrollment_id, account_id, journey.id, cycle, status, day_text(entered),
             day_text(ended) if ended else None, reason, journey.milestones[reached].spec.id, "active", 1,
             None, day_text(entered), day_text(min(day, self.today)), "{}")
        )  # fmt: skip
        return None if status == "active" else (ended or self.today) + timedelta(days=31)

    def _touch(
        self,
        enrollment_id: int,
        journey: str,
        account_id: str,
        csm: str | None,
        cycle: int,
        milestone: str,
        rung: str,
        channel: str,
        template: str | None,
        reason: str | None,
        recipients: list[str],
        day: date,
    ) -> None:
        rng = self.rng
        prefix = f"{journey}/{account_id}/{cycle}/{milestone}/{rung}"
        if channel == "cta":
            reason = reason or f"{journey}.{milestone}.{rung}"
            status = "deduplicated" if (account_id, reason) in self.open_reasons else "created"
            self._row(prefix + "/", enrollment_id, account_id, None, journey, milestone, rung, channel, None,
                      status, None, day)  # fmt: skip
            if status == "created":
                self._cta(enrollment_id, account_id, csm, journey, reason, prefix + "/", day)
            return
        for contact_id in recipients:
            key = f"{prefix}/{contact_id}"
            if channel == "sms":
                status, verdict = ("sent", "delivered") if rng.random() < 0.35 else ("skipped", None)
            else:
                status = pick(rng, EMAIL_STATUS)
                verdict = pick(rng, VERDICT) if status == "sent" else None
            if day == self.today and status == "sent":
                status, verdict = "pending", None
            self._row(key, enrollment_id, account_id, contact_id, journey, milestone, rung, channel, template,
                      status, verdict, day)  # fmt: skip
            if verdict in ("opened", "clicked") and rng.random() < 0.3:  # an imported engagement event
                kind = "email_clicked" if verdict == "clicked" else "email_opened"
                at = instant_text(
                    datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=15)
                )
                self.events.append(
                    (
                        f"bench-{len(self.events)}-{key}"[:64],
                        account_id,
                        contact_id,
                        at,
                        kind,
                        key[:200],
                        "bench",
                    )
                )

    def _row(
        self,
        key: str,
        enrollment_id: int,
        account_id: str,
        contact_id: str | None,
        journey: str,
        milestone: str,
        rung: str,
        channel: str,
        template: str | None,
        status: str,
        verdict: str | None,
        day: date,
    ) -> None:
        at = instant_text(datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8))
        self.touches.append(
            (len(self.touches) + 1, key[:200], enrollment_id, account_id, contact_id, journey, milestone, rung,
             channel, template, status, day_text(day), at if channel != "cta" else None, verdict, at, at)
        )  # fmt: skip

    def _cta(
        self,
        enrollment_id: int | None,
        account_id: str,
        assignee: str | None,
        journey: str,
        reason: str,
        touch_key: str | None,
        day: date,
        status: str | None = None,
    ) -> int:
        rng = self.rng
        cta_id = self.first_cta + len(self.ctas)
        assignee = assignee or "queue:cs"
        age = (self.today - day).days
        if status is None:
            status = pick(rng, CTA_STATUS)
            if age > 21 and status in ("open", "in_progress", "snoozed") and rng.random() < 0.9:
                status = "done"
        if status in ("open", "in_progress", "snoozed"):
            if (account_id, reason) in self.open_reasons:
                status = "done"
            else:
                self.open_reasons.add((account_id, reason))
        created = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8)
        acted = None
        if status != "open" or rng.random() < 0.3:
            acted = created + timedelta(hours=min(rng.lognormvariate(3.0, 1.0), 24.0 * max(age, 1)))
        outcome = rng.choice(OUTCOMES) if status == "done" else None
        closed = acted if status in ("done", "cancelled") else None
        due = day + timedelta(days=rng.choice((2, 3, 5, 7)))
        snoozed = day_text(self.today + timedelta(days=rng.randint(1, 9))) if status == "snoozed" else None
        self.ctas.append(
            (cta_id, account_id, enrollment_id, touch_key, journey, reason, f"{reason} ({account_id})",
             rng.choice(("high", "medium", "low")), assignee, status, day_text(due), day_text(day), "{}",
             outcome, "{}", "[]", snoozed, "bench" if snoozed else None,
             instant_text(acted) if acted else None, day_text(closed.date()) if closed else None,
             instant_text(closed) if closed else None, instant_text(created), instant_text(created))
        )  # fmt: skip
        self._history(cta_id, created, "created", None, "open", assignee)
        if acted is not None:
            action = {
                "in_progress": "started",
                "snoozed": "snoozed",
                "done": "done",
                "cancelled": "cancelled",
            }
            if status in action:
                self._history(cta_id, acted, action[status], "open", status, None, outcome)
            else:
                self._history(cta_id, acted, "noted", "open", "open", None)
        if rng.random() < 0.1 and age > 3:
            self._history(cta_id, created + timedelta(days=3), "escalated", None, None, None)
        return cta_id

    def _history(
        self,
        cta_id: int,
        at: datetime,
        action: str,
        before: str | None,
        after: str | None,
        assignee: str | None,
        outcome: str | None = None,
    ) -> None:
        actor = "techtouch" if action in ("created", "escalated") else "csm"
        self.history.append(
            (self.first_history + len(self.history), cta_id, instant_text(at), day_text(at.date()), actor, action, before, after,
             None, assignee, outcome, None, "{}")
        )  # fmt: skip


ENROLLMENT_COLUMNS = ("id", "account_id", "journey", "cycle", "status", "entered_as_of", "exited_as_of",
                      "exit_reason", "milestone", "phase", "step", "next_due", "milestone_since",
                      "last_touch_as_of", "entry")  # fmt: skip
TOUCH_COLUMNS = ("id", "key", "enrollment_id", "account_id", "contact_id", "journey", "milestone", "rung",
                 "channel", "template", "status", "as_of", "send_at", "delivery_status", "created_at",
                 "updated_at")  # fmt: skip
EVENT_COLUMNS = ("key", "account_id", "contact_id", "occurred_at", "type", "value", "source")
CTA_COLUMNS = ("id", "account_id", "enrollment_id", "touch_key", "journey", "reason", "title", "priority",
               "assignee", "status", "due_date", "created_as_of", "context", "outcome", "why", "outcomes",
               "snoozed_until", "snooze_reason", "first_action_at", "closed_as_of", "closed_at", "created_at",
               "updated_at")  # fmt: skip
HISTORY_COLUMNS = ("id", "cta_id", "at", "as_of", "actor", "action", "from_status", "to_status",
                   "from_assignee", "to_assignee", "outcome", "note", "detail")  # fmt: skip


def synthetic_history(engine: Engine, app: App, today: date, days: int, rng: random.Random) -> dict[str, int]:
    with engine.connect() as connection:
        accounts = [
            (str(a), c) for a, c in connection.execute(text("SELECT id, csm_email FROM accounts ORDER BY id"))
        ]
        contacts: dict[str, list[str]] = {}
        rows = connection.execute(
            text(
                "SELECT account_id, id FROM contacts WHERE role IN ('admin', 'champion') ORDER BY account_id, role, id"
            )
        )
        for account_id, contact_id in rows:
            contacts.setdefault(str(account_id), []).append(str(contact_id))
    history = History(rng, today, days)
    for journey in ordered(app.catalog, app.settings):
        history.journey(journey, accounts, contacts)
    bench_accounts = rng.sample(accounts, min(BENCH_OPEN_CTAS, len(accounts)))
    for i in range(BENCH_OPEN_CTAS):  # the CSM with 500 open CTAs
        account_id = bench_accounts[i % len(bench_accounts)][0]
        history._cta(None, account_id, BENCH_CSM, "renewal", f"bench_{i}", None,
                     today - timedelta(days=rng.randrange(14)), status="open")  # fmt: skip
    tables = Base.metadata.tables
    with engine.begin() as connection:
        load_rows(connection, tables["enrollments"], ENROLLMENT_COLUMNS, history.enrollments)
        load_rows(connection, tables["touches"], TOUCH_COLUMNS, history.touches)
        load_rows(connection, tables["events"], EVENT_COLUMNS, history.events)
        load_rows(connection, tables["ctas"], CTA_COLUMNS, history.ctas)
        load_rows(connection, tables["cta_history"], HISTORY_COLUMNS, history.history)
        if connection.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("enrollments", "touches", "ctas", "cta_history"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                    )
                )
    return {"enrollments": len(history.enrollments), "touches": len(history.touches),
            "engagement_events": len(history.events), "ctas": len(history.ctas),
            "cta_history": len(history.history)}  # fmt: skip


def journeys_run(app: App, today: date, days: int) -> dict[str, int]:
    from techtouch.services.simulate import ResponseModel, simulate_days

    started = time.perf_counter()
    simulate_days(app, ordered(app.catalog, app.settings), today - timedelta(days=days), days,
                  ResponseModel(seed=1), in_place=True,
                  progress=lambda day: print(f"   ran {day} ({time.perf_counter() - started:.0f} s)", flush=True))  # fmt: skip
    rng = random.Random(2)
    with app.engine.connect() as connection:
        last_cta = int(connection.execute(text("SELECT COALESCE(MAX(id), 0) FROM ctas")).scalar_one())
        last_history = int(
            connection.execute(text("SELECT COALESCE(MAX(id), 0) FROM cta_history")).scalar_one()
        )
        all_accounts = [str(a) for a in connection.execute(text("SELECT id FROM accounts")).scalars()]
    history = History(rng, today, days, first_cta=last_cta + 1, first_history=last_history + 1)
    targets = rng.sample(all_accounts, min(BENCH_OPEN_CTAS, len(all_accounts)))
    for i in range(BENCH_OPEN_CTAS):
        history._cta(None, targets[i % len(targets)], BENCH_CSM, "renewal", f"bench_{i}", None,
                     today - timedelta(days=rng.randrange(14)), status="open")  # fmt: skip
    tables = Base.metadata.tables
    with app.engine.begin() as connection:
        load_rows(connection, tables["ctas"], CTA_COLUMNS, history.ctas)
        load_rows(connection, tables["cta_history"], HISTORY_COLUMNS, history.history)
        if connection.dialect.name == "postgresql":
            for table in ("ctas", "cta_history"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                    )
                )
        counts = {
            table: int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
            for table in ("enrollments", "touches", "ctas", "cta_history")
        }
    return counts


def create_people(engine: Engine) -> dict[str, Any]:
    """ops, a manager per team of TEAM_SIZE CSMs, a user per seeded CSM, the bench CSM (team 1)."""
    hashed = passwords.hash_password(PASSWORD)  # once: every bench user signs in with it
    with engine.connect() as connection:
        csms = sorted(
            str(e)
            for e in connection.execute(
                text("SELECT DISTINCT csm_email FROM accounts WHERE csm_email IS NOT NULL")
            ).scalars()
        )
    now = instant_text(datetime.now(UTC))
    teams = [csms[i : i + TEAM_SIZE] for i in range(0, len(csms), TEAM_SIZE)] or [[]]
    rows: list[tuple[Any, ...]] = [(OPS, "Olive Ops", "ops", None, None)]
    for t, members in enumerate(teams, start=1):
        team = f"team-{t:02d}"
        rows.append((f"manager-{t:02d}@vendor.example", f"Manager {t:02d}", "manager", "CS Manager", team))
        rows += [
            (email, f"CSM {email.split('@')[0]}", "csm", "Customer Success Manager", team)
            for email in members
        ]
    rows.append((BENCH_CSM, "Bench CSM", "csm", "Customer Success Manager", "team-01"))
    with engine.begin() as connection:
        load_rows(
            connection,
            Base.metadata.tables["users"],
            (
                "email",
                "name",
                "role",
                "title",
                "team",
                "password_hash",
                "disabled",
                "created_at",
                "updated_at",
            ),
            [(*row, hashed, 0 if engine.dialect.name == "sqlite" else False, now, now) for row in rows],
        )
    return {"users": len(rows), "teams": len(teams), "manager": "manager-01@vendor.example"}


# --- the measurements -------------------------------------------------------------------------------


def sign_in(client: TestClient, email: str) -> None:
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
    assert token, "no CSRF token on /login"
    done = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert done.status_code == 303, (done.status_code, done.text[:300])


def request_for(fastapi_app: Any, path: str, query: str = "") -> Request:
    """A request as FastAPI hands it to a route: enough for the page functions called in process."""
    return Request(
        {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "https",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(b"host", b"tt.example")],
            "client": ("127.0.0.1", 50000),
            "server": ("tt.example", 443),
            "app": fastapi_app,
            "state": {},
        }
    )


def timed(run: Callable[[], Any], repeats: int) -> dict[str, Any]:
    run()  # warm-up: templates compiled, caches of the database filled
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000.0)
    samples.sort()
    p95 = samples[min(len(samples) - 1, max(0, round(0.95 * len(samples)) - 1))]
    return {
        "median_ms": round(statistics.median(samples), 1),
        "p95_ms": round(p95, 1),
        "samples": len(samples),
    }


def ok(response: Any) -> Any:
    status = getattr(response, "status_code", 200)
    assert status == 200, (status, getattr(response, "text", "")[:300])
    return response


def measure(app: App, repeats: int, manager: str) -> list[dict[str, Any]]:
    fastapi_app = create_app(app)
    from techtouch.entrypoints.web import cta_page, inbox  # the routes of the inbox and CTA pages

    with app.engine.connect() as connection:
        actors = {email: users.actor_for(connection, email) for email in (OPS, manager, BENCH_CSM)}
        cta_id = connection.execute(
            select(Cta.id).where(Cta.assignee == BENCH_CSM, Cta.status == "open").order_by(Cta.id).limit(1)
        ).scalar_one()
        open_ctas = connection.execute(
            text("SELECT COUNT(*) FROM ctas WHERE assignee = :a AND status = 'open'"), {"a": BENCH_CSM}
        ).scalar_one()
    clients = {}
    for email in actors:
        clients[email] = TestClient(fastapi_app, base_url=PUBLIC_URL, follow_redirects=False)
        sign_in(clients[email], email)
    today = datetime.now(app.settings.zone).date()
    within = workspace_reports.period(None, None, today)
    rows: list[dict[str, Any]] = []

    def add(
        name: str, goal: str | None, how: str, run: Callable[[], Any], detail: str = "", times: int = 0
    ) -> None:
        print(f"   {name} ({how})", flush=True)
        result = timed(run, times or repeats)
        goal_ms = GOALS_MS.get(goal or "")
        met = None if goal_ms is None else result["median_ms"] <= goal_ms
        rows.append({"name": name, "how": how, **result, "goal_ms": goal_ms, "met": met, "detail": detail})

    def computed(run: Callable[[], Any]) -> Callable[[], Any]:
        """`run` with the reports cache emptied first: the numbers computed, as on a first visit."""

        def cold() -> Any:
            workspace_reports.clear_cache()
            return run()

        return cold

    full = report_rollup.refresh_for(app, today, full=True)
    rows.append({"name": "reports rollup refresh", "how": "first: the whole history", "median_ms": round(full.seconds * 1000.0, 1),
                 "p95_ms": round(full.seconds * 1000.0, 1), "samples": 1, "goal_ms": None, "met": None,
                 "detail": ", ".join(f"{n} {k}" for k, n in full.rows.items())})  # fmt: skip
    print(f"   reports rollup refresh (first: the whole history): {full.seconds:.1f} s", flush=True)
    add("reports rollup refresh", None, "as after a run: what can still change",
        lambda: report_rollup.refresh_for(app, today), times=3)  # fmt: skip
    ops_scope = workspace_reports.Scope("all teams")
    journeys = workspace_reports.ordered_journeys(app)
    offers = workspace_reports.template_offers(app, journeys)

    def from_history() -> Any:
        with app.engine.connect() as connection, workspace_reports.sorting_room(connection):
            return workspace_reports._compute(connection, journeys, offers, ops_scope, within, today)

    add(
        "/reports, ops, every account",
        None,
        "service: computed from the history (no rollup)",
        from_history,
        times=3,
    )
    for who, email in (("ops, every account", OPS), ("manager, one team", manager)):
        actor = actors[email]
        page = lambda actor=actor: ok(reports_page.reports_page(request_for(fastapi_app, "/reports"), actor))  # noqa: E731
        add(f"/reports, {who}", "reports", "service: computed (ops: from the rollup)",
            lambda actor=actor: workspace_reports.build(app, actor, within, today, cached=False))  # fmt: skip
        add(f"/reports, {who}", "reports", "in process, computed (service + charts + template)",
            computed(page))  # fmt: skip
        add(f"/reports, {who}", "reports", "TestClient, computed (whole request)",
            computed(lambda email=email: ok(clients[email].get("/reports"))))  # fmt: skip
        add(f"/reports, {who}", "reports", f"TestClient, kept (a reload within {workspace_reports.CACHE_SECONDS / 60:.0f} min)",
            lambda email=email: ok(clients[email].get("/reports")))  # fmt: skip
    add("/reports/funnel.csv, ops", None, "TestClient, computed (whole request)",
        computed(lambda: ok(clients[OPS].get("/reports/funnel.csv"))))  # fmt: skip
    csm = actors[BENCH_CSM]
    detail = f"{open_ctas} open CTAs"
    add("/inbox, CSM with 500 open CTAs", "inbox", "in process (route + template)",
        lambda: ok(inbox.inbox(request_for(fastapi_app, "/inbox"), csm)), detail)  # fmt: skip
    add("/inbox, CSM with 500 open CTAs", "inbox", "TestClient (whole request)",
        lambda: ok(clients[BENCH_CSM].get("/inbox")), detail)  # fmt: skip
    path = f"/inbox/ctas/{cta_id}"
    add("CTA page", "cta", "in process (route + template)",
        lambda: ok(cta_page.cta_page(request_for(fastapi_app, path), csm, cta_id)), path)  # fmt: skip
    add("CTA page", "cta", "TestClient (whole request)", lambda: ok(clients[BENCH_CSM].get(path)), path)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    header = ["measurement", "how", "median ms", "p95 ms", "goal", "result", "detail"]
    lines = [
        [
            r["name"],
            r["how"],
            f"{r['median_ms']:,.1f}",
            f"{r['p95_ms']:,.1f}",
            "—" if r["goal_ms"] is None else f"≤ {r['goal_ms']:,.0f} ms",
            "—"
            if r["met"] is None
            else ("met" if r["met"] else f"gap: {r['median_ms'] / r['goal_ms']:.1f}x over"),
            r["detail"],
        ]
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    out = [
        " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    ]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def scale_name(accounts: int) -> str:
    if accounts % 1_000_000 == 0:
        return f"{accounts // 1_000_000}m"
    if accounts % 1_000 == 0:
        return f"{accounts // 1_000}k"
    return str(accounts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument(
        "--db", choices=["sqlite", "postgresql"], default=os.environ.get("BENCH_DB") or "sqlite"
    )
    parser.add_argument("--days", type=int, default=90, help="days of synthetic journey history")
    parser.add_argument(
        "--run-days", type=int, default=0, help="run the real journeys for the last K days instead"
    )
    parser.add_argument("--requests", type=int, default=20, help="timed requests per measurement")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--work", type=Path, help="work here and keep the files (default: a temporary folder)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="measure the database an earlier run (with --work, --keep) left"
    )
    parser.add_argument("--keep", action="store_true", help="PostgreSQL: keep the database for --reuse")
    args = parser.parse_args(argv)
    if args.reuse and args.work is None:
        parser.error("--reuse needs the --work folder of the run that built the database")

    started = datetime.now(UTC)
    work = args.work or Path(tempfile.mkdtemp(prefix="tt-bench-workspace-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"== bench-workspace: {args.accounts:,} accounts on {args.db}", flush=True)
    built = work / "build.json"
    reuse = args.reuse and built.exists()
    database = Database(args.db, work, reuse=reuse)
    try:
        settings = Settings(
            database_url=database.url,
            outbox_dir=work / "outbox",
            public_url=PUBLIC_URL,
            secret_key=SECRET,
            timezone="Europe/Paris",
        )
        engine = make_engine(database.url)
        migrate.upgrade(engine)
        app = bootstrap.build(settings, engine=engine)
        today = datetime.now(settings.zone).date()
        if reuse:
            earlier = json.loads(built.read_text(encoding="utf-8"))
            history_kind, counts, people, timings = (
                earlier["history"],
                earlier["rows"],
                earlier["people"],
                earlier["timings"],
            )
            print(f"   reusing {database.url} ({history_kind}): {counts}", flush=True)
        else:
            t0 = time.perf_counter()
            seed(engine, accounts=args.accounts, seed=1, days=90, as_of=today - timedelta(days=args.run_days))
            timings = {"seed_s": round(time.perf_counter() - t0, 1)}
            print(f"   seeded in {timings['seed_s']} s", flush=True)
            t0 = time.perf_counter()
            if args.run_days:
                history_kind = (
                    f"journeys run: the real journeys over the last {args.run_days} days (simulated answers)"
                )
                counts = journeys_run(app, today, args.run_days)
            else:
                history_kind = (
                    f"synthetic: {args.days} days of journey history written in bulk from config/journeys"
                )
                counts = synthetic_history(engine, app, today, args.days, random.Random(1))
            timings["history_s"] = round(time.perf_counter() - t0, 1)
            people = create_people(engine)
            if args.db == "postgresql":
                with engine.connect() as connection:
                    connection.execute(text("ANALYZE"))
                    connection.commit()
            print(f"   history ({history_kind}) in {timings['history_s']} s: {counts}", flush=True)
            built.write_text(
                json.dumps({"history": history_kind, "rows": counts, "people": people, "timings": timings}),
                encoding="utf-8",
            )
        rows = measure(app, args.requests, people["manager"])
        engine.dispose()
    finally:
        database.close(keep=args.keep)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"history: {history_kind}; {counts}")
    print(table(rows), flush=True)
    version = commit()
    document = {
        "commit": version["commit"],
        "dirty": version["dirty"],
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "accounts": args.accounts,
        "db": args.db,
        "history": history_kind,
        "rows": counts,
        "people": people,
        "timings": timings,
        "requests": args.requests,
        "measurements": rows,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"workspace-{scale_name(args.accounts)}-{args.db}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(f"written {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
