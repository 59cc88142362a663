"""Seed a fresh SQLite file and print how long it took, rows per table, rows/s and peak RSS.

.venv/bin/python benchmarks/bench_seed.py [--accounts 100000] [--days 90] [--seed 0]

SQLite runs in this process, so the CPU-time rate is the one to compare on a busy machine.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.services.seed import seed

AS_OF = date(2027, 3, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_seed_") as directory:
        path = Path(directory) / "techtouch.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        written: Counter[str] = Counter()
        started, cpu = time.perf_counter(), time.process_time()
        summary = seed(
            engine,
            accounts=args.accounts,
            seed=args.seed,
            days=args.days,
            as_of=AS_OF,
            progress=lambda stage, n: written.update({stage: n}),
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
        size_mb = sum(p.stat().st_size for p in Path(directory).iterdir()) / 1e6

    total = sum(written.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"seed: {args.accounts:,} accounts x {args.days} days into SQLite (as_of {AS_OF})")
    for stage, rows in written.items():
        print(f"  {stage:<13} {rows:>12,} rows")
    print(f"  {'total':<13} {total:>12,} rows")
    print(f"seconds:   {seconds:.1f} (summary {summary.seconds:.1f})")
    print(f"rows/s:    {total / seconds:,.0f}")
    print(f"CPU rows/s: {total / cpu:,.0f} ({cpu:.1f} CPU seconds)")
    print(f"peak RSS:  {peak_mb:,.0f} MB")
    print(f"db size:   {size_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
