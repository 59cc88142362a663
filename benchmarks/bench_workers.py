"""Shards across Prefect workers: the daily cycle fanned out over 2 shards, on 1 worker then on 2.

On PostgreSQL (TECHTOUCH_BENCH_POSTGRES_URL, default the local server as postgres): a seeded base
(kept as a template database with --keep), a Prefect server of its own (a temporary PREFECT_HOME),
the two work pools, `prefect deploy --all`, then for 1 and for 2 workers of the shards' pool
(`--limit 1`: one shard at a time each) a `daily/morning` run with `shards=2` on a fresh copy of
the base. Prints each run's wall time (the parent flow run's start to end, from the API) and the
speedup: the goal (issue 14) is ≥ 1.7x on 2 cores. Both runs must record the same touches.

    .venv/bin/python benchmarks/bench_workers.py [--accounts 100000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.services.seed import seed

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
SERVER = os.environ.get(
    "TECHTOUCH_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
AS_OF = date(2027, 3, 1)
DELIVER_AT = "2027-03-01T14:00:00+00:00"
TEMPLATE = "techtouch_bench_workers_seeded"


def database(name: str) -> str:
    return make_url(SERVER).set(database=name).render_as_string(hide_password=False)


def admin(statement: str) -> None:
    engine = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


def exists(name: str) -> bool:
    engine = create_engine(SERVER)
    with engine.connect() as connection:
        found = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
    engine.dispose()
    return found is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(env: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{env['PREFECT_API_URL']}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def prefect(env: dict[str, str], *args: str, timeout: float = 3600) -> str:
    done = subprocess.run(
        [PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        sys.exit(f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env=env,
        cwd=log.parent,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"{what}: not ready after {timeout} s")


def seconds_between(run: dict[str, Any]) -> float:
    start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_time", "end_time"))
    return (end - start).total_seconds()


def trial(env: dict[str, str], work: Path, workers: int) -> dict[str, Any]:
    """A fresh copy of the base, `workers` shard workers, one fanned-out daily run."""
    name = f"techtouch_bench_workers_{workers}"
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    url = database(name)
    run_env = env | {"TECHTOUCH_DATABASE_URL": url, "TECHTOUCH_OUTBOX_DIR": str(work / f"outbox-{workers}")}
    folder = work / f"workers-{workers}"
    folder.mkdir(exist_ok=True)
    processes = [
        start([PREFECT, "worker", "start", "--pool", "techtouch-process"], run_env, folder / "main.log")
    ]
    for n in range(workers):
        log = folder / f"shards-{n}.log"
        processes.append(
            start([PREFECT, "worker", "start", "--pool", "techtouch-shards", "--limit", "1"], run_env, log)
        )
    try:
        time.sleep(8)  # the workers poll the API every few seconds
        params = json.dumps(
            {"as_of": AS_OF.isoformat(), "deliver_at": DELIVER_AT, "shards": 2, "shard": None}
        )
        started = time.perf_counter()
        prefect(run_env, "deployment", "run", "daily/morning", "--params", params, "--watch")
        wall = time.perf_counter() - started
    finally:
        for process in processes:
            stop(process)
    # Newest first: this trial's runs come before the previous trial's.
    runs = api(
        env, "/flow_runs/filter", {"flow_runs": {"name": {"like_": "daily"}}, "sort": "START_TIME_DESC"}
    )
    parent = next(r for r in runs if r["name"] == f"daily {AS_OF}" and r["state_type"] == "COMPLETED")
    shards = [r for r in runs if r["name"].startswith(f"daily {AS_OF} shard")][:2]
    engine = make_engine(url)
    with engine.connect() as connection:
        touches = int(connection.execute(text("SELECT COUNT(*) FROM touches")).scalar_one())
    engine.dispose()
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return {
        "workers": workers,
        "wall": wall,
        "run": seconds_between(parent),
        "shards": sorted(round(seconds_between(r), 1) for r in shards),
        "touches": touches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument(
        "--keep", action="store_true", help=f"keep (and reuse) the seeded template {TEMPLATE}"
    )
    args = parser.parse_args()
    if not (args.keep and exists(TEMPLATE)):
        admin(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        admin(f"CREATE DATABASE {TEMPLATE}")
        engine = make_engine(database(TEMPLATE))
        migrate.upgrade(engine)
        started = time.perf_counter()
        seed(engine, accounts=args.accounts, seed=1, days=90, as_of=AS_OF)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
        engine.dispose()
        print(f"seeded {args.accounts:,} accounts in {time.perf_counter() - started:.0f} s", flush=True)
    else:
        migrate.upgrade(make_engine(database(TEMPLATE)))

    work = Path(tempfile.mkdtemp(prefix="tt-bench-workers-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TECHTOUCH_", "PREFECT_"))} | {
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "TECHTOUCH_TIMEZONE": "Europe/Paris",
        "TECHTOUCH_DELIVERY__BUSINESS_START": "00:00",
        "TECHTOUCH_DELIVERY__BUSINESS_END": "23:59",
        "TECHTOUCH_DELIVERY__BUSINESS_DAYS": "[0,1,2,3,4,5,6]",
    }
    server = start(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, work / "server.log"
    )
    try:
        wait_for(
            lambda: urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=2).status == 200,
            120,
            "server",
        )
        for pool in ("techtouch-process", "techtouch-shards"):
            prefect(env, "work-pool", "create", pool, "--type", "process")
        prefect(env, "--no-prompt", "deploy", "--all")
        one = trial(env, work, 1)
        print(
            f"1 worker : {one['run']:6.1f} s (shards {one['shards']} s), {one['touches']:,} touches",
            flush=True,
        )
        two = trial(env, work, 2)
        print(
            f"2 workers: {two['run']:6.1f} s (shards {two['shards']} s), {two['touches']:,} touches",
            flush=True,
        )
    finally:
        stop(server)
        if not args.keep:
            admin(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    if one["touches"] != two["touches"]:
        sys.exit("1 and 2 workers recorded different work")
    speedup = one["run"] / two["run"]
    verdict = "met" if speedup >= 1.7 else "not met"
    print(
        f"speedup, {args.accounts:,} accounts in 2 shards: {speedup:.2f}x with 2 workers (goal >= 1.7x: {verdict})"
    )


if __name__ == "__main__":
    main()
