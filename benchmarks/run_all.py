"""`make bench`: the daily cycle, render, import and seed, each against a floor measured in the same run.

    .venv/bin/python benchmarks/run_all.py [--scale smoke|100k|1m] [--db sqlite|postgresql]
                                           [--accounts N] [--results DIR] [--extras]

Prints one table and writes the same numbers to `benchmarks/results/<date>-<scale>-<db>-<commit>.json`
(with the commit, the machine and the date), and beside it `…-explain.md`: the steady day's
statements by time, the plans of the hottest, the indexes and their scans (benchmarks/explain.py). Every phase runs in a process of its own
(benchmarks/phases.py), so each has its own peak RSS. `make bench BENCH_SCALE=1m BENCH_DB=postgresql`
runs at 1M accounts on PostgreSQL (TECHTOUCH_BENCH_POSTGRES_URL, default the local server as
postgres): it creates its databases (`techtouch_bench_*`) and drops them at the end. `--extras` then
runs the other benchmarks of this folder (channels, webhooks, the Prefect flow, crash trials).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
EXTRAS = [
    "bench_flow.py",
    "bench_sendgrid.py",
    "bench_twilio.py",
    "bench_webhooks.py",
    "bench_crash_trials.py",
]


@dataclass(frozen=True)
class Scale:
    accounts: int
    import_rows: int
    render_messages: int
    steady_offset: int  # the steady day is this many days after the launch day
    rss_goal_mb: float
    shards: int = 1  # the cycle runs as this many shards in a row (see phases.py)


SCALES = {
    "smoke": Scale(
        accounts=3_000, import_rows=100_000, render_messages=5_000, steady_offset=7, rss_goal_mb=1024
    ),
    "100k": Scale(
        accounts=100_000, import_rows=1_000_000, render_messages=20_000, steady_offset=7, rss_goal_mb=1024
    ),
    "1m": Scale(
        accounts=1_000_000,
        import_rows=10_000_000,
        render_messages=20_000,
        steady_offset=7,
        rss_goal_mb=2048,
        shards=4,
    ),
}
# The goals of issue 14: a cycle as a multiple of the scan at most; messages rendered per core at least.
LAUNCH_GOAL, STEADY_GOAL, RENDER_GOAL = 5.0, 3.0, 3000.0
FIRST_MILESTONE_GOAL = 60.0  # seconds from a cycle's start to its first journey's touches


# --- databases: a SQLite file per phase, or a PostgreSQL database per phase (copied from a template)


class Databases:
    def __init__(self, kind: str, work: Path, keep: tuple[str, ...] = ()):
        self.kind, self.work, self.keep = kind, work, keep
        self.made: list[str] = []
        if kind == "postgresql":
            from sqlalchemy import create_engine

            self.server = os.environ.get("TECHTOUCH_BENCH_POSTGRES_URL", POSTGRES_URL)
            self.admin = create_engine(self.server, isolation_level="AUTOCOMMIT")

    def url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.work / f'{name}.db'}"
        from sqlalchemy.engine import make_url

        return (
            make_url(self.server)
            .set(database=f"techtouch_bench_{name}")
            .render_as_string(hide_password=False)
        )

    def fresh(self, name: str) -> str:
        self.drop(name)
        if self.kind == "postgresql":
            self._sql(f"CREATE DATABASE techtouch_bench_{name}")
            self.made.append(name)
        return self.url(name)

    def copy(self, source: str, name: str) -> str:
        self.drop(name)
        if self.kind == "sqlite":
            shutil.copy(self.work / f"{source}.db", self.work / f"{name}.db")
        else:
            self._sql(f"CREATE DATABASE techtouch_bench_{name} TEMPLATE techtouch_bench_{source}")
            self.made.append(name)
        return self.url(name)

    def drop(self, name: str) -> None:
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                (self.work / f"{name}.db{suffix}").unlink(missing_ok=True)
        else:
            self._sql(f"DROP DATABASE IF EXISTS techtouch_bench_{name} WITH (FORCE)")

    def exists(self, name: str) -> bool:
        if self.kind == "sqlite":
            return (self.work / f"{name}.db").exists()
        from sqlalchemy import text

        with self.admin.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": f"techtouch_bench_{name}"},
            )
            return found.first() is not None

    def analyze(self, name: str) -> None:
        """The planner's statistics of a database (PostgreSQL; SQLite plans without them)."""
        if self.kind != "postgresql":
            return
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(name), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
        engine.dispose()

    def close(self) -> None:
        for name in dict.fromkeys(self.made):
            if name not in self.keep:
                self.drop(name)
        if self.kind == "postgresql":
            self.admin.dispose()

    def _sql(self, statement: str) -> None:
        from sqlalchemy import text

        with self.admin.connect() as connection:
            connection.execute(text(statement))


# --- phases ----------------------------------------------------------------------------------------


def phase(name: str, db: str, work: Path, **options: Any) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "phases.py"), name, "--db", db, "--work", str(work)]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    print(f"   {name} {' '.join(command[5:]) if len(command) > 5 else ''}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"phase {name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    result["process_seconds"] = time.perf_counter() - started
    return result


def run(
    scale_name: str, scale: Scale, kind: str, work: Path, keep_seed: bool = False
) -> dict[str, dict[str, Any]]:
    """Every phase, each in its own process and database. With `keep_seed` (and `--work`), the
    seeded database and its seed measurement stay, and a later run with the same work folder reuses
    both: at 1M the seed takes a quarter of an hour, and it does not change with the cycle's code."""
    dbs = Databases(kind, work, keep=("seeded",) if keep_seed else ())
    try:
        results: dict[str, dict[str, Any]] = {}
        kept = work / f"seed-{scale.accounts}-{kind}.json"
        if keep_seed and kept.exists() and dbs.exists("seeded"):
            results["seed"] = json.loads(kept.read_text()) | {"reused": True}
            print(f"   seed reused: {kept} (measured {results['seed']['measured_at']})", flush=True)
            dbs.analyze("seeded")  # a database kept by an older seed may have no statistics
        else:
            kept.unlink(missing_ok=True)
            results["seed"] = phase("seed", dbs.fresh("seeded"), work, accounts=scale.accounts)
            results["seed"]["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            if keep_seed:
                kept.write_text(json.dumps(results["seed"], default=str))
        results["import"] = phase(
            "import",
            dbs.fresh("import"),
            work / "import",
            rows=scale.import_rows,
            accounts=min(scale.accounts, 10_000),
        )
        dbs.drop("import")
        results["render"] = phase(
            "render", dbs.copy("seeded", "render"), work / "render", messages=scale.render_messages
        )
        dbs.drop("render")
        run_db = dbs.copy("seeded", "run")
        results["launch"] = phase("cycle", run_db, work / "launch", offset=0, shards=scale.shards)
        results["warmup"] = phase("warmup", run_db, work / "warmup", offset=scale.steady_offset)
        results["steady"] = phase(
            "cycle",
            run_db,
            work / "steady",
            offset=scale.steady_offset,
            shards=scale.shards,
            explain=work / "steady-explain.md",
        )
        return results
    finally:
        dbs.close()


# --- the table and the JSON ------------------------------------------------------------------------


def measurements(scale: Scale, results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []

    def cycle(key: str, label: str, goal: float) -> None:
        r = results[key]
        ratio = r["seconds"] / r["floor_seconds"]
        parts = (
            (f"{r['shards']} shards in a row: " if r.get("shards", 1) > 1 else "")
            + f"load {r['load_seconds']:.1f} s, health {r['health_seconds']:.1f} s, "
            f"journeys {r['journeys_seconds']:.1f} s "
            f"({r['touches']:,} touches), delivery {r['delivery_seconds']:.1f} s ({r['messages']:,} messages)"
        )
        gap = None if ratio <= goal else f"{ratio / goal:.1f}x over: {largest_part(r)}"
        rows.append(
            row(label, r, "SQL scan: accounts ⋈ 60 d usage per account", ratio, f"≤ {goal:g}x the scan", gap)
            | {"detail": parts}
        )

    cycle("launch", "daily cycle, launch day", LAUNCH_GOAL)
    cycle("steady", f"daily cycle, steady day ({scale.steady_offset} days in)", STEADY_GOAL)
    r = results["steady"]
    first = r.get("first_milestone_seconds")
    if first is not None:
        rows.append(
            {
                "name": "first milestone, steady day",
                "seconds": round(first, 3),
                "floor": None,
                "floor_seconds": None,
                "ratio": None,
                "value": first,
                "goal": f"≤ {FIRST_MILESTONE_GOAL:g} s",
                "met": first <= FIRST_MILESTONE_GOAL,
                "gap": None
                if first <= FIRST_MILESTONE_GOAL
                else f"{first - FIRST_MILESTONE_GOAL:.1f} s over",
                "peak_rss_mb": r["peak_rss_mb"],
                "detail": "from the cycle's start to the first journey's touches recorded (load, health, "
                "the first journey in priority order"
                + (", of the first shard)" if r.get("shards", 1) > 1 else ")"),
            }
        )
    cycle_rss = max(results["launch"]["peak_rss_mb"], results["steady"]["peak_rss_mb"])
    rows.append(
        {
            "name": "peak RSS, daily cycle",
            "seconds": None,
            "floor": None,
            "floor_seconds": None,
            "ratio": None,
            "value": cycle_rss,
            "goal": f"≤ {scale.rss_goal_mb:,.0f} MB",
            "met": cycle_rss <= scale.rss_goal_mb,
            "gap": None
            if cycle_rss <= scale.rss_goal_mb
            else f"{cycle_rss - scale.rss_goal_mb:,.0f} MB over",
            "peak_rss_mb": cycle_rss,
            "detail": f"{cycle_rss:,.0f} MB",
        }
    )
    r = results["render"]
    per_core = r["messages"] / r["seconds"]
    rows.append(
        row(
            "render (context + Jinja + CSS inlining)",
            r,
            "Jinja alone, contexts made beforehand",
            r["seconds"] / r["floor_seconds"],
            f"≥ {RENDER_GOAL:,.0f} msg/s per core",
            None if per_core >= RENDER_GOAL else f"{RENDER_GOAL - per_core:,.0f} msg/s short",
        )
        | {
            "value": per_core,
            "detail": f"{r['messages']:,} messages, {per_core:,.0f} msg/s per core (CPU time)",
        }
    )
    r = results["import"]
    rows.append(
        row(
            "import usage CSV",
            r,
            "parse (pandas) + the database copying the rows",
            r["seconds"] / r["floor_seconds"],
            None,
            None,
        )
        | {"detail": f"{r['rows']:,} rows, {r['rows'] / r['seconds']:,.0f} rows/s"}
    )
    r = results["seed"]
    rows.append(
        row(
            "seed, 90 days",
            r,
            "the database copying the seeded rows",
            r["seconds"] / r["floor_seconds"],
            None,
            None,
        )
        | {
            "detail": f"{r['accounts']:,} accounts, {r['rows']:,} rows, {r['rows'] / r['seconds']:,.0f} rows/s"
            + (f" (seeded database reused; measured {r['measured_at']})" if r.get("reused") else "")
        }
    )
    return rows


def largest_part(r: dict[str, Any]) -> str:
    parts = {
        "load (accounts, signals, health, contacts)": r["load_seconds"],
        "health snapshot": r["health_seconds"],
        "journeys (load, decide, record)": r["journeys_seconds"],
        "delivery (render, write, mark)": r["delivery_seconds"],
    }
    name, seconds = max(parts.items(), key=lambda item: item[1])
    return f"{name} takes {seconds:.1f} s of {r['seconds']:.1f} s"


def row(
    name: str, r: dict[str, Any], floor: str, ratio: float, goal: str | None, gap: str | None
) -> dict[str, Any]:
    return {
        "name": name,
        "seconds": round(r["seconds"], 3),
        "floor": floor,
        "floor_seconds": round(r["floor_seconds"], 3),
        "ratio": round(ratio, 2),
        "value": None,
        "goal": goal,
        "met": None if goal is None else gap is None,
        "gap": gap,
        "peak_rss_mb": r["peak_rss_mb"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    header = ["measurement", "seconds", "floor s", "ratio", "goal", "result", "peak RSS", "detail"]
    lines = []
    for m in rows:
        result = "—" if m["met"] is None else ("met" if m["met"] else f"gap: {m['gap']}")
        lines.append(
            [
                m["name"],
                "—" if m["seconds"] is None else f"{m['seconds']:.2f}",
                "—" if m["floor_seconds"] is None else f"{m['floor_seconds']:.2f}",
                "—" if m["ratio"] is None else f"{m['ratio']:.1f}x",
                m["goal"] or "—",
                result,
                f"{m['peak_rss_mb']:,.0f} MB",
                m["detail"],
            ]
        )
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    out = [
        " | ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    ]
    out.insert(1, "-+-".join("-" * w for w in widths))
    floors = sorted({f"{m['name']}: {m['floor']}" for m in rows if m["floor"]})
    return "\n".join(out) + "\nfloors: " + "; ".join(floors)


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    memory = None
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(
            (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
            model,
        )
        memory = (
            int(
                next(
                    line.split()[1]
                    for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal")
                )
            )
            * 1024
        )
    except (OSError, StopIteration, ValueError):
        pass
    if memory is None and hasattr(os, "sysconf"):
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            memory = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": None if memory is None else round(memory / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("BENCH_SCALE") or "100k")
    parser.add_argument(
        "--db", choices=["sqlite", "postgresql"], default=os.environ.get("BENCH_DB") or "sqlite"
    )
    parser.add_argument("--accounts", type=int, help="override the scale's number of accounts")
    parser.add_argument(
        "--shards", type=int, help="override the scale's shards (the cycle runs them in a row)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument(
        "--work", type=Path, help="work here and keep the files (default: a temporary folder)"
    )
    parser.add_argument(
        "--keep-seed",
        action="store_true",
        help="with --work: keep the seeded database and reuse it (and its seed timing) on the next run",
    )
    parser.add_argument("--extras", action="store_true", help="then run the other benchmarks of this folder")
    args = parser.parse_args(argv)
    if args.keep_seed and args.work is None:
        parser.error("--keep-seed needs --work (the folder that remembers the seed)")
    scale = SCALES[args.scale]
    if args.accounts:
        scale = Scale(
            args.accounts,
            min(scale.import_rows, args.accounts * 30),
            scale.render_messages,
            scale.steady_offset,
            scale.rss_goal_mb,
            scale.shards,
        )

    if args.shards:
        scale = dataclasses.replace(scale, shards=args.shards)

    started = datetime.now(UTC)
    print(f"== make bench: {args.scale} ({scale.accounts:,} accounts) on {args.db}", flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="tt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = run(args.scale, scale, args.db, work, keep_seed=args.keep_seed)
        explained = (work / "steady-explain.md").read_text(encoding="utf-8")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    rows = measurements(scale, results)
    print(table(rows), flush=True)

    version = commit()
    document = {
        "commit": version["commit"],
        "dirty": version["dirty"],
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "scale": args.scale,
        "accounts": scale.accounts,
        "db": args.db,
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "measurements": rows,
        "phases": results,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    name = f"{started:%Y-%m-%dT%H%M%S}-{args.scale}-{args.db}-{(version['commit'] or 'nogit')[:8]}.json"
    path = args.results / name
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(f"written {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
    plans = path.with_name(path.stem + "-explain.md")
    plans.write_text(explained, encoding="utf-8")
    print(f"written {plans.relative_to(ROOT) if plans.is_relative_to(ROOT) else plans}", flush=True)

    failed = 0
    if args.extras:
        for extra in EXTRAS:
            print(f"== {extra}", flush=True)
            failed |= subprocess.run([sys.executable, str(HERE / extra)], cwd=ROOT, check=False).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main())
