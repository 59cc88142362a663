"""One daily run of the four journeys over a seeded base on SQLite, against a plain SQL scan.

Prints: seconds for the run (decide + record, and delivery through the outbox), the same
for the next day (steady state), a plain SQL scan of the columns the run reads, their
ratio, and peak memory. Usage: python benchmarks/bench_engine.py [--accounts 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.bootstrap import load_journeys
from techtouch.domain.clock import run_instant
from techtouch.services.day import run_day
from techtouch.services.runner import ordered, run_journeys
from techtouch.services.seed import seed
from techtouch.services.simulate import advance_usage
from techtouch.settings import Settings

AS_OF = date(2027, 3, 1)

SCAN = [
    "SELECT id, name, segment, arr, start_date, renewal_date, csm_email, timezone, paused_until, is_advocate "
    "FROM accounts",
    "SELECT account_id, SUM(key_actions), SUM(logins), SUM(active_users), COUNT(*) FROM usage_daily "
    "WHERE +date >= :d60 AND +date < :d GROUP BY account_id",  # the clustered scan (see signals.py)
    "SELECT account_id, type, value, MAX(occurred_at) FROM events GROUP BY account_id, type, value",
    "SELECT c.id, c.account_id, c.role, c.email_consent, c.sms_consent, c.phone, s.channel FROM contacts c "
    "LEFT JOIN suppressions s ON s.contact_id = c.id",
    "SELECT * FROM enrollments",
]


def _app(engine, settings, catalog):  # type: ignore[no-untyped-def]
    return bootstrap.build(settings, engine=engine, catalog=catalog)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=6, help="days to run before the measured day")
    parser.add_argument("--keep", type=Path, help="reuse/keep the seeded database in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="tt-bench-engine-"))
    folder.mkdir(parents=True, exist_ok=True)
    seeded = folder / f"seeded-{args.accounts}.db"
    if not seeded.exists():
        engine = make_engine(f"sqlite:///{seeded}")
        migrate.upgrade(engine)
        started = time.perf_counter()
        seed(engine, accounts=args.accounts, seed=1, days=90, as_of=AS_OF)
        engine.dispose()
        print(f"seeded {args.accounts:,} accounts in {time.perf_counter() - started:.1f} s")
    work = folder / "run.db"
    for stale in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):  # a killed run leaves its WAL behind
        stale.unlink(missing_ok=True)
    shutil.copy(seeded, work)
    url = f"sqlite:///{work}"
    settings = Settings(database_url=url, outbox_dir=folder / "outbox", timezone="Europe/Paris")
    shutil.rmtree(settings.outbox_dir, ignore_errors=True)
    engine = make_engine(url)
    catalog = load_journeys(settings, [Path(__file__).parents[1] / "config" / "journeys"])
    journeys = ordered(catalog, settings)

    with engine.connect() as connection:  # warm the page cache like a daily run would find it
        connection.execute(text("SELECT COUNT(*) FROM usage_daily")).scalar()
    started = time.perf_counter()
    with engine.connect() as connection:
        for sql in SCAN:
            connection.execute(text(sql), {"d60": AS_OF - timedelta(days=60), "d": AS_OF}).fetchall()
    scan = time.perf_counter() - started

    # Launch day: every eligible account enters at once (the whole base is new to techtouch).
    started = time.perf_counter()
    report = run_journeys(
        engine, settings, journeys, AS_OF, run_instant(AS_OF, settings.zone, settings.run_time)
    )
    decided = time.perf_counter() - started
    touches = sum(int(j.steps["count"].sum()) for j in report.journeys if len(j.steps))
    print(
        f"launch day: load, decide and record {touches:,} touches over {args.accounts:,} accounts: {decided:.2f} s"
    )
    for journey in report.journeys:
        print(f"    {journey.journey:<11} {journey.seconds:5.2f} s  entered {journey.entered:>6,}")
    started = time.perf_counter()
    delivered = run_day(_app(engine, settings, catalog), journeys, AS_OF).delivery
    seconds = time.perf_counter() - started
    sent = sum(delivered.sent.values()) if delivered else 0
    print(
        f"launch day: render + deliver {sent:,} messages to the outbox: {seconds:.1f} s = {sent / seconds:,.0f}/s"
    )

    # Warm-up: days pass (delivery stood in by marking sent), so that a day looks like any other.
    for offset in range(1, args.warmup + 1):
        day = AS_OF + timedelta(days=offset)
        advance_usage(engine, day)  # usage goes on as it did (the simulator's model)
        run_journeys(engine, settings, journeys, day, run_instant(day, settings.zone, settings.run_time))
        with engine.begin() as connection:
            connection.execute(text("UPDATE touches SET status = 'sent' WHERE status = 'pending'"))

    day = AS_OF + timedelta(days=args.warmup + 1)
    advance_usage(engine, day)
    started = time.perf_counter()
    report = run_day(_app(engine, settings, catalog), journeys, day)
    total = time.perf_counter() - started
    decided = sum(j.seconds for j in report.journeys)
    touches = sum(int(j.steps["count"].sum()) for j in report.journeys if len(j.steps))
    sent = sum(report.delivery.sent.values()) if report.delivery else 0
    print(
        f"steady day ({args.warmup + 1} days in): one daily run of 4 journeys over {args.accounts:,} accounts: "
        f"{total:.2f} s = {total / scan:.1f}x the plain scan; per journey {decided:.2f} s for {touches:,} touches; "
        f"render + deliver {sent:,} messages {report.delivery_seconds:.2f} s"
    )
    for journey in report.journeys:
        print(
            f"    {journey.journey:<11} {journey.seconds:5.2f} s  entered {journey.entered:>6,}  "
            f"active {journey.active:>6,}"
        )
    print(f"plain SQL scan of the same columns: {scan:.2f} s")
    print(f"peak RSS: {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
