"""The daily cycle at scale: the `daily` Prefect flow against the same work from the CLI.

Both start from a copy of the same seeded SQLite base and do the same day: health snapshot,
the four journeys, delivery to the outbox. Prints wall time for each (process start included),
the flow run's own duration, the Prefect overhead, and checks both recorded the same touches.
Usage: python benchmarks/bench_flow.py [--accounts 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.services.seed import seed

AS_OF = date(2027, 3, 1)
ROOT = Path(__file__).resolve().parents[1]

FLOW = """
import time
from datetime import date
t0 = time.perf_counter()
from prefect.client.orchestration import get_client
from flows.daily import daily
with get_client(sync_client=True) as client:  # starts the ephemeral API
    client.hello()
t1 = time.perf_counter()
result = daily(as_of=date.fromisoformat("{day}"))
print("API_SECONDS", t1 - t0, "FLOW_SECONDS", time.perf_counter() - t1)
"""


def copy_base(seeded: Path, target: Path) -> str:
    for stale in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copy(seeded, target)
    return f"sqlite:///{target}"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def touches(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    with engine.connect() as connection:
        total = connection.execute(text("SELECT COUNT(*) FROM touches")).scalar_one()
        sent = connection.execute(text("SELECT COUNT(*) FROM touches WHERE status = 'sent'")).scalar_one()
    engine.dispose()
    return int(total), int(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="reuse/keep the seeded database in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="tt-bench-flow-"))
    folder.mkdir(parents=True, exist_ok=True)
    seeded = folder / f"seeded-{args.accounts}.db"  # the same name as bench_engine: --keep shares it
    if not seeded.exists():
        engine = make_engine(f"sqlite:///{seeded}")
        migrate.upgrade(engine)
        started = time.perf_counter()
        seed(engine, accounts=args.accounts, seed=1, days=90, as_of=AS_OF)
        engine.dispose()
        print(f"seeded {args.accounts:,} accounts in {time.perf_counter() - started:.1f} s")
    else:
        migrate.upgrade(make_engine(f"sqlite:///{seeded}"))

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TECHTOUCH_", "PREFECT_"))}
    base_env |= {
        "TECHTOUCH_TIMEZONE": "Europe/Paris",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    python = sys.executable
    day = AS_OF.isoformat()

    cli_url = copy_base(seeded, folder / "cli.db")
    cli_env = base_env | {
        "TECHTOUCH_DATABASE_URL": cli_url,
        "TECHTOUCH_OUTBOX_DIR": str(folder / "cli-outbox"),
    }
    shutil.rmtree(folder / "cli-outbox", ignore_errors=True)
    health_s, _ = timed([python, "-m", "techtouch", "health", "--as-of", day], cli_env)
    run_s, _ = timed([python, "-m", "techtouch", "run", "--all", "--as-of", day, "--json"], cli_env)
    cli_s = health_s + run_s
    print(f"CLI   health {health_s:6.1f} s + run --all {run_s:6.1f} s = {cli_s:6.1f} s")

    flow_url = copy_base(seeded, folder / "flow.db")
    flow_env = base_env | {
        "TECHTOUCH_DATABASE_URL": flow_url,
        "TECHTOUCH_OUTBOX_DIR": str(folder / "flow-outbox"),
        "PREFECT_HOME": str(folder / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    shutil.rmtree(folder / "flow-outbox", ignore_errors=True)
    shutil.rmtree(folder / "prefect", ignore_errors=True)
    flow_total, out = timed([python, "-c", FLOW.format(day=day)], flow_env)
    api_s = float(out.split("API_SECONDS", 1)[1].split()[0])
    flow_run = float(out.split("FLOW_SECONDS", 1)[1].split()[0])
    print(
        f"flow  daily, process wall {flow_total:6.1f} s: ephemeral API start {api_s:5.1f} s "
        f"(a fresh PREFECT_HOME), flow run {flow_run:6.1f} s"
    )
    cli_touches, flow_touches = touches(cli_url), touches(flow_url)
    print(f"touches recorded / sent: CLI {cli_touches}, flow {flow_touches}")
    if cli_touches != flow_touches:
        sys.exit("the flow and the CLI recorded different work")
    print(
        f"Prefect overhead for {args.accounts:,} accounts: flow run vs CLI {flow_run - cli_s:+.1f} s "
        f"({(flow_run / cli_s - 1) * 100:+.1f} %); whole process {flow_total - cli_s:+.1f} s "
        "(a deployed flow on a running server pays no API start)"
    )


if __name__ == "__main__":
    main()
