"""Import a generated usage CSV (default 1,000,000 rows) into a fresh SQLite file; print rows/s and peak RSS.

    .venv/bin/python benchmarks/bench_import.py [--rows N] [--accounts N] [--chunksize N] [--keep DIR]

Rows are ordered day by day (every account for day 1, then day 2, ...), as a daily export appended
to a file would be. Accounts are created first by importing an accounts CSV, so both paths run.
SQLite runs in this process, so the CPU-time rate is the one to compare on a busy machine.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import UsageDaily
from techtouch.services.importing import import_csv


def write_accounts(path: Path, accounts: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            [
                "account_id",
                "name",
                "segment",
                "arr",
                "start_date",
                "renewal_date",
                "csm_email",
                "timezone",
                "paused_until",
            ]
        )
        for i in range(accounts):
            writer.writerow(
                [f"acc-{i:06d}", f"Account {i}", "tech_touch", 12000, "2025-01-01", "2026-12-31", "", "", ""]
            )


def write_usage(path: Path, rows: int, accounts: int) -> None:
    rng = random.Random(42)
    days = -(-rows // accounts)
    start = date(2026, 1, 1)
    written = 0
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["account_id", "date", "active_users", "logins", "key_actions"])
        for day in range(days):
            iso = (start + timedelta(days=day)).isoformat()
            batch = min(accounts, rows - written)
            writer.writerows(
                (f"acc-{i:06d}", iso, rng.randrange(50), rng.randrange(200), rng.randrange(2000))
                for i in range(batch)
            )
            written += batch


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--chunksize", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the files")
    args = parser.parse_args()
    accounts = min(args.accounts, args.rows)

    with tempfile.TemporaryDirectory() as temp:
        work = args.keep or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        accounts_csv, usage_csv, database = work / "accounts.csv", work / "usage.csv", work / "bench.db"
        for stale in (database, work / "bench.db-wal", work / "bench.db-shm"):
            stale.unlink(missing_ok=True)
        started = time.perf_counter()
        write_accounts(accounts_csv, accounts)
        write_usage(usage_csv, args.rows, accounts)
        print(
            f"generated {args.rows:,} usage rows ({usage_csv.stat().st_size / 1e6:.1f} MB) "
            f"and {accounts:,} accounts in {time.perf_counter() - started:.1f} s"
        )
        print(f"peak RSS after generating: {peak_rss_mb():.0f} MB")

        engine = make_engine(f"sqlite:///{database}")
        migrate.upgrade(engine)
        started = time.perf_counter()
        import_csv(engine, "accounts", accounts_csv)
        print(f"accounts: {accounts:,} rows in {time.perf_counter() - started:.2f} s")

        started, cpu = time.perf_counter(), time.process_time()
        result = import_csv(engine, "usage", usage_csv, chunksize=args.chunksize)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        with engine.connect() as connection:
            stored = connection.scalar(select(func.count()).select_from(UsageDaily))
        engine.dispose()
        assert result.rows == stored == args.rows, (result.rows, stored, args.rows)
        print(f"usage: {result.rows:,} rows in {elapsed:.2f} s = {result.rows / elapsed:,.0f} rows/s")
        print(f"usage CPU time: {cpu:.2f} s = {result.rows / cpu:,.0f} rows/s")
        print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
