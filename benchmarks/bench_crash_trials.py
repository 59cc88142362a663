"""Crash trials at volume: SIGKILL delivery at random points, recover, count duplicates and losses.

The same trials as tests/integration/test_crash_safety.py (which runs 50 in CI), as many as asked.
Usage: python benchmarks/bench_crash_trials.py [--trials 500] [--accounts 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fakes and trial harness

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from tests.crash_trials import build_base, run_trials
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.twilio_api import FakeTwilio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='tt-crash-')) / 'crash.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    touches = build_base(engine, args.accounts)
    engine.dispose()
    started = time.perf_counter()
    with FakeSendGrid() as sendgrid, FakeTwilio(latency=0.003) as twilio:
        result = run_trials(url, sendgrid, twilio, args.trials, seed_value=args.seed)
    print(
        f"{result.trials} trials over {touches} touches in {time.perf_counter() - started:.0f} s: "
        f"{result.killed_before_any_send} killed before any send, {result.killed_mid_delivery} mid-delivery, "
        f"{result.finished_before_kill} finished first; {result.ambiguous_recovered} ambiguous touches "
        f"reconciled; duplicates {result.duplicates}, lost {result.lost}"
    )
    for problem in result.problems[:20]:
        print("  ", problem)
    sys.exit(1 if result.problems else 0)


if __name__ == "__main__":
    main()
