"""The phases of `make bench` (benchmarks/run_all.py), one per process so each has its own peak RSS.

    .venv/bin/python benchmarks/phases.py PHASE --db URL [options]

Each phase prints one line `RESULT {json}` last: `seconds` (what is measured), `floor_seconds`
(the floor measured in the same process, on the same data), `peak_rss_mb` and its counts.

- seed: `techtouch seed` of N accounts x 90 days. Floor: the database copying the same rows
  (`CREATE TABLE .. AS SELECT *` of every seeded table): the writes without generating them.
- import: a usage CSV through `techtouch import`. Floor: pandas parsing the same file plus the
  database copying the imported rows (as above).
- cycle: the daily cycle on a launch or a steady day, as the `daily` flow runs it: the accounts'
  state loaded once (signals from the last snapshot's window sums, health), the health snapshot,
  the four journeys, delivery to the outbox. Business hours are all day, every day, and delivery
  runs at the run's instant, so every message the day decides is due and is really rendered and
  written (the hourly delivery's share of a real day is inside the measured run). Floor: one SQL
  scan of the same columns (accounts joined with their 60 days of usage aggregated per account),
  measured just before, warm.
  With --shards N, the cycle runs as N shards one after the other in the process (as one worker
  runs the N shard flow runs of a fanned-out `daily`): its peak RSS is one shard's.
- warmup: days pass between the launch day and the steady day (health snapshots and journeys
  recorded, delivery stood in by marking pending messages sent). Not a measurement.
- render: the messages of a launch day (of a shard of about RENDER_ACCOUNTS accounts) rendered as
  delivery renders them (context per message from the run state, the HTML CSS-inlined), timed in
  CPU seconds: messages/s per core. Floor: bare Jinja rendering of the same template files with
  the same contexts (no inlining, contexts built beforehand). Then the same messages in
  delivery's batches through render_batches, in the process and in a pool of --workers render
  workers (wall clock, workers' start included): `workers_speedup`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from explain import Recorder  # benchmarks/explain.py
from sqlalchemy import Engine, text

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.render.context import context_builder
from techtouch.bootstrap import load_journeys
from techtouch.domain.clock import run_instant
from techtouch.domain.shards import Shard
from techtouch.services.day import load_state, run_day
from techtouch.services.delivery import BATCH, due_sql, render_batches
from techtouch.services.health import health_of_run, store_health
from techtouch.services.runner import load_run_state, ordered, run_journeys
from techtouch.services.seed import STAGES as SEEDED_TABLES
from techtouch.services.seed import seed
from techtouch.services.simulate import advance_usage
from techtouch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2027, 3, 1)  # a Monday
RENDER_ACCOUNTS = 50_000  # render: the launch day of a shard of about this many accounts
ALL_DAY = {"business_start": "00:00", "business_end": "23:59", "business_days": [0, 1, 2, 3, 4, 5, 6]}


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def emit(**result: Any) -> None:
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print("RESULT " + json.dumps(result, default=str), flush=True)


def scan_sql(engine: Engine) -> str:
    """Accounts joined with their 60 days of usage aggregated per account: the floor of a cycle."""
    # SQLite: `+date` keeps the planner on the table's clustered order (see adapters/db/signals.py).
    day = "+u.date" if engine.dialect.name == "sqlite" else "u.date"
    return (
        "SELECT a.id, a.name, a.segment, a.arr, a.start_date, a.renewal_date, a.csm_email, a.timezone, "
        "a.paused_until, a.is_advocate, u.key_actions, u.logins, u.active_users, u.days "
        "FROM accounts a LEFT JOIN ("
        "SELECT u.account_id, SUM(u.key_actions) AS key_actions, SUM(u.logins) AS logins, "
        "SUM(u.active_users) AS active_users, COUNT(*) AS days FROM usage_daily u "
        f"WHERE {day} >= :d60 AND {day} < :d GROUP BY u.account_id) u ON u.account_id = a.id"
    )


def scan(engine: Engine, day: date) -> tuple[float, int]:
    """The floor, warm: run once to warm the cache as a daily run would find it, then timed."""
    sql, params = text(scan_sql(engine)), {"d60": day - timedelta(days=60), "d": day}
    with engine.connect() as connection:
        connection.execute(sql, params).fetchall()
    started = time.perf_counter()
    with engine.connect() as connection:
        rows = len(connection.execute(sql, params).fetchall())
    return time.perf_counter() - started, rows


def copy_tables(engine: Engine, tables: tuple[str, ...]) -> tuple[float, int]:
    """The database writing the rows of `tables` again (CREATE TABLE AS SELECT), then dropped."""
    started = time.perf_counter()
    rows = 0
    with engine.begin() as connection:
        for table in tables:
            connection.execute(text(f"CREATE TABLE floor_{table} AS SELECT * FROM {table}"))
            rows += int(connection.execute(text(f"SELECT COUNT(*) FROM floor_{table}")).scalar_one())
    seconds = time.perf_counter() - started
    with engine.begin() as connection:
        for table in tables:
            connection.execute(text(f"DROP TABLE floor_{table}"))
    return seconds, rows


def settings_for(url: str, work: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=url, outbox_dir=work / "outbox", timezone="Europe/Paris", delivery=ALL_DAY, **extra
    )


def journeys_of(settings: Settings) -> tuple[dict[str, Any], list[Any]]:
    catalog = load_journeys(settings, [ROOT / "config" / "journeys"])
    return catalog, ordered(catalog, settings)


def phase_seed(args: argparse.Namespace) -> None:
    engine = make_engine(args.db)
    migrate.upgrade(engine)
    started = time.perf_counter()
    summary = seed(engine, accounts=args.accounts, seed=1, days=args.days, as_of=AS_OF)
    seconds = time.perf_counter() - started
    floor, rows = copy_tables(engine, SEEDED_TABLES)
    engine.dispose()
    emit(seconds=seconds, floor_seconds=floor, rows=rows, accounts=args.accounts, summary=str(summary)[:300])


def phase_import(args: argparse.Namespace) -> None:
    from bench_import import write_accounts, write_usage  # the generator of bench_import.py

    from techtouch.services.importing import import_csv

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    accounts_csv, usage_csv = work / "accounts.csv", work / "usage.csv"
    accounts = min(args.accounts, args.rows)
    write_accounts(accounts_csv, accounts)
    write_usage(usage_csv, args.rows, accounts)
    engine = make_engine(args.db)
    migrate.upgrade(engine)
    import_csv(engine, "accounts", accounts_csv)
    started = time.perf_counter()
    result = import_csv(engine, "usage", usage_csv)
    seconds = time.perf_counter() - started
    assert result.rows == args.rows, (result.rows, args.rows)
    started = time.perf_counter()
    parsed = len(pd.read_csv(usage_csv))
    parse = time.perf_counter() - started
    copy, _ = copy_tables(engine, ("usage_daily",))
    engine.dispose()
    emit(seconds=seconds, floor_seconds=parse + copy, rows=result.rows, parse_seconds=parse, parsed=parsed)


def phase_cycle(args: argparse.Namespace) -> None:
    work = Path(args.work)
    settings = settings_for(args.db, work)
    engine = make_engine(args.db)
    catalog, journeys = journeys_of(settings)
    app = bootstrap.build(settings, engine=engine, catalog=catalog)
    day = AS_OF + timedelta(days=args.offset)
    if args.offset:
        advance_usage(engine, day)  # yesterday's usage arrived (the simulator's model)
    floor, scanned = scan(engine, day)
    instant = app.instant(day)
    recorder = Recorder(engine) if args.explain else None
    totals: dict[str, float] = dict.fromkeys(
        ("load", "health", "journeys", "delivery", "touches", "messages", "held", "expired", "failed"), 0
    )
    first = None
    started = time.perf_counter()
    # --shards N: the shards one after the other in this process, as one worker runs N shard flow
    # runs in a row; each holds only its accounts (the peak RSS is one shard's).
    for index in range(args.shards):
        shard = Shard(index, args.shards)
        begun = time.perf_counter()
        state = load_state(app, day, shard)  # as the daily flow: signals and health read once
        loaded = time.perf_counter()
        store_health(engine, day, health_of_run(state.accounts))
        totals["load"] += loaded - begun
        totals["health"] += time.perf_counter() - loaded
        report = run_day(app, journeys, day, now=instant, state=state)
        del state
        if index == 0 and report.journeys:  # the first journey's touches exist (and may go out)
            first = loaded - started + totals["health"] + report.journeys[0].seconds
        totals["journeys"] += sum(j.seconds for j in report.journeys)
        totals["delivery"] += report.delivery_seconds
        totals["touches"] += sum(int(j.steps["count"].sum()) for j in report.journeys if len(j.steps))
        delivery = report.delivery
        if delivery is not None:
            totals["messages"] += sum(delivery.sent.values())
            totals["held"] += delivery.held
            totals["expired"] += delivery.expired
            totals["failed"] += delivery.failed
    seconds = time.perf_counter() - started
    if recorder is not None:  # after the measured run: EXPLAIN ANALYZE runs the statements again
        title = f"Hot queries of the daily cycle of {day} ({scanned:,} accounts, {engine.dialect.name})"
        Path(args.explain).write_text(recorder.report(title), encoding="utf-8")
    emit(
        seconds=seconds,
        floor_seconds=floor,
        scanned=scanned,
        day=day.isoformat(),
        shards=args.shards,
        first_milestone_seconds=first,
        load_seconds=totals["load"],
        health_seconds=totals["health"],
        journeys_seconds=totals["journeys"],
        delivery_seconds=totals["delivery"],
        **{k: int(totals[k]) for k in ("touches", "messages", "held", "expired", "failed")},
    )


def phase_warmup(args: argparse.Namespace) -> None:
    settings = settings_for(args.db, Path(args.work))
    engine = make_engine(args.db)
    _, journeys = journeys_of(settings)
    started = time.perf_counter()
    for offset in range(1, args.offset):
        day = AS_OF + timedelta(days=offset)
        advance_usage(engine, day)
        state = load_run_state(engine, settings, day, run_instant(day, settings.zone, settings.run_time))
        store_health(engine, day, health_of_run(state.accounts))  # as the daily flow does
        run_journeys(engine, settings, journeys, day, state.run_at, state=state)
        with engine.begin() as connection:  # delivery stood in: what was decided went out
            connection.execute(text("UPDATE touches SET status = 'sent' WHERE status = 'pending'"))
    emit(seconds=time.perf_counter() - started, floor_seconds=None, days=max(args.offset - 1, 0))


def phase_render(args: argparse.Namespace) -> None:
    settings = settings_for(args.db, Path(args.work))
    engine = make_engine(args.db)
    catalog, journeys = journeys_of(settings)
    app = bootstrap.build(settings, engine=engine, catalog=catalog)
    # The launch day of a shard of about RENDER_ACCOUNTS accounts: enough messages to render (a launch
    # day writes about one per account), without recording all of a 1M launch day first.
    with engine.connect() as connection:
        accounts = int(connection.execute(text("SELECT COUNT(*) FROM accounts")).scalar_one())
    shard = Shard(0, max(1, accounts // RENDER_ACCOUNTS))
    state = load_state(app, AS_OF, shard)
    run_journeys(engine, settings, journeys, AS_OF, app.instant(AS_OF), state=state)
    with engine.connect() as connection:
        due = pd.read_sql_query(due_sql(shard), connection)
    rows = [{str(k): v for k, v in row.items()} for row in due.head(args.messages).to_dict("records")]
    renderer = app.renderer
    build = context_builder(settings, state.accounts, catalog, app.link_secret)
    for row in rows[:50]:  # the first use of each template compiles it: not per-message work
        _render_one(renderer, row, build(row))
    renderer = bootstrap.build(settings, engine=engine, catalog=catalog).renderer  # a fresh renderer
    build = context_builder(settings, state.accounts, catalog, app.link_secret)  # and a fresh cache
    started, cpu = time.perf_counter(), time.process_time()
    for row in rows:
        _render_one(renderer, row, build(row))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu

    contexts = [build(row) for row in rows]  # the floor: Jinja alone, contexts made beforehand
    environment = renderer.environment
    parts = {"email": ("subject.txt", "email.html", "email.txt"), "sms": ("sms.txt",)}
    floor_cpu = time.process_time()
    for row, context in zip(rows, contexts, strict=True):
        for suffix in parts[row["channel"]]:
            environment.get_template(f"{row['template']}.{suffix}").render(context)
    floor_cpu = time.process_time() - floor_cpu

    # Render workers (`render_workers`): the same messages in delivery's batches, rendered as delivery
    # renders them, in this process and then in a pool of --workers processes. Wall clock, since the
    # pool's CPU is spread over processes; the pool's time includes starting its workers.
    batches = [
        (channel, rows_[start : start + BATCH[channel]])
        for channel in ("email", "sms")
        if (rows_ := [r for r in rows if r["channel"] == channel])
        for start in range(0, len(rows_), BATCH[channel])
    ]
    pool_walls: dict[int, float] = {}
    for workers in (1, args.workers):
        renderer = bootstrap.build(settings, engine=engine, catalog=catalog).renderer
        build = context_builder(settings, state.accounts, catalog, app.link_secret)
        started = time.perf_counter()
        rendered = sum(len(m) + len(f) for m, f in render_batches(renderer, build, batches, workers))
        pool_walls[workers] = time.perf_counter() - started
        assert rendered == len(rows), (rendered, len(rows))
    emit(
        seconds=cpu,
        floor_seconds=floor_cpu,
        wall_seconds=seconds,
        messages=len(rows),
        emails=int(sum(1 for r in rows if r["channel"] == "email")),
        per_core=len(rows) / cpu if cpu else None,
        in_process_wall_seconds=pool_walls[1],
        workers=args.workers,
        workers_wall_seconds=pool_walls[args.workers],
        workers_speedup=pool_walls[1] / pool_walls[args.workers],
    )


def _render_one(renderer: Any, row: dict[str, Any], context: dict[str, Any]) -> None:
    if row["channel"] == "email":
        renderer.email(row["template"], context)
    else:
        renderer.sms(row["template"], context)


PHASES = {
    "seed": phase_seed,
    "import": phase_import,
    "cycle": phase_cycle,
    "warmup": phase_warmup,
    "render": phase_render,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the phase's database")
    parser.add_argument("--work", default=".", help="a folder for files (outbox, CSVs)")
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--days", type=int, default=90, help="days of usage seeded")
    parser.add_argument("--rows", type=int, default=100_000, help="usage rows imported")
    parser.add_argument("--offset", type=int, default=0, help="cycle: days after the launch day")
    parser.add_argument("--messages", type=int, default=20_000, help="render: messages rendered at most")
    parser.add_argument("--workers", type=int, default=2, help="render: the render workers' pool compared")
    parser.add_argument("--shards", type=int, default=1, help="cycle: run it as this many shards in a row")
    parser.add_argument("--explain", help="cycle: write its hot queries and their plans here (markdown)")
    args = parser.parse_args(argv)
    PHASES[args.phase](args)


if __name__ == "__main__":
    main()
