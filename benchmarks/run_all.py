"""`make bench`: every benchmark, one after the other, printing their numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    "bench_import.py",
    "bench_seed.py",
    "bench_engine.py",
    "bench_flow.py",
    "bench_sendgrid.py",
    "bench_twilio.py",
    "bench_webhooks.py",
    "bench_crash_trials.py",
]

if __name__ == "__main__":
    failed = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        failed |= subprocess.run([sys.executable, str(HERE / name)], check=False).returncode
    sys.exit(failed)
