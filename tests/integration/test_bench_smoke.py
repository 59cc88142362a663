"""`make bench` at a tiny scale, so that the benchmark code cannot rot (issue 14). No speed is
asserted here: goals live in the benchmark's table, never in a timed test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_benchmark_prints_its_table_and_writes_its_json(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--scale", "smoke", "--accounts", "600",
         "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "daily cycle, steady day" in done.stdout
    [written] = list(tmp_path.glob("*-smoke-sqlite-*.json"))
    document = json.loads(written.read_text(encoding="utf-8"))
    assert document["db"] == "sqlite" and document["accounts"] == 600
    assert {"cpus", "cpu_model", "ram_gb"} <= set(document["machine"])
    names = [m["name"] for m in document["measurements"]]
    assert any(n.startswith("render") for n in names) and "seed, 90 days" in names
    cycles = {k: document["phases"][k] for k in ("launch", "steady")}
    for phase in cycles.values():
        assert phase["floor_seconds"] > 0 and phase["peak_rss_mb"] > 0
    assert cycles["launch"]["messages"] > 0  # real sending: every message of the day was due
    assert cycles["launch"]["held"] == 0 and cycles["launch"]["failed"] == 0
