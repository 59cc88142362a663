"""The daily cycle at scale: the `daily` Prefect flow against the same work from the CLI.

Both start from a copy of the same seeded base and do the same day: health snapshot,
the four journeys, delivery to the outbox. Prints wall time for each (process start included),
the flow run's own duration, the Prefect overhead, and checks both recorded the same touches.

    python benchmarks/bench_flow.py [--accounts 100000] [--keep DIR]
    python benchmarks/bench_flow.py --db postgresql [--template techtouch_bench_seeded]

On PostgreSQL (TECHTOUCH_BENCH_POSTGRES_URL, default the local server) the two copies are
databases made from a template: `--template` names a seeded one (`make bench ... --keep-seed`
keeps `techtouch_bench_seeded`, 1M accounts), else one is seeded with --accounts and dropped at the
end. The copies are dropped at the end.
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

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.services.seed import seed

AS_OF = date(2027, 3, 1)
ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

FLOW = """
import time
from datetime import date, datetime
t0 = time.perf_counter()
from prefect.client.orchestration import get_client
from flows.daily import daily
with get_client(sync_client=True) as client:  # starts the ephemeral API
    client.hello()
t1 = time.perf_counter()
result = daily(as_of=date.fromisoformat("{day}"), deliver_at=datetime.fromisoformat("{at}"))
flow_seconds = time.perf_counter() - t1
with get_client(sync_client=True) as client:
    task_runs = len(client.read_task_runs())
print("API_SECONDS", t1 - t0, "FLOW_SECONDS", flow_seconds, "TASK_RUNS", task_runs)
"""


class SqliteBases:
    """The seeded base and its copies as SQLite files in `folder`."""

    def __init__(self, folder: Path, accounts: int):
        self.folder = folder
        self.seeded = folder / f"seeded-{accounts}.db"  # the same name as bench_engine: --keep shares it
        if not self.seeded.exists():
            seed_base(f"sqlite:///{self.seeded}", accounts)
        else:
            migrate.upgrade(make_engine(f"sqlite:///{self.seeded}"))

    def copy(self, name: str) -> str:
        target = self.folder / f"{name}.db"
        for stale in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            stale.unlink(missing_ok=True)
        shutil.copy(self.seeded, target)
        return f"sqlite:///{target}"

    def close(self) -> None:
        pass


class PostgresBases:
    """The seeded base (a database given by name, or one seeded here) and its copies, made with
    CREATE DATABASE … TEMPLATE and dropped at the end."""

    def __init__(self, accounts: int, template: str | None):
        self.server = os.environ.get("TECHTOUCH_BENCH_POSTGRES_URL", POSTGRES_URL)
        self.admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
        self.made: list[str] = []
        if template is None:
            template = "techtouch_bench_flow_seeded"
            self._sql(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
            self._sql(f"CREATE DATABASE {template}")
            self.made.append(template)
            seed_base(self.url(template), accounts)
        else:
            engine = make_engine(self.url(template))
            migrate.upgrade(engine)
            engine.dispose()  # a pooled connection to the template forbids CREATE DATABASE … TEMPLATE
        self.template = template

    def url(self, database: str) -> str:
        return make_url(self.server).set(database=database).render_as_string(hide_password=False)

    def copy(self, name: str) -> str:
        database = f"techtouch_bench_flow_{name}"
        self._sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        self._sql(f"CREATE DATABASE {database} TEMPLATE {self.template}")
        self.made.insert(0, database)
        return self.url(database)

    def close(self) -> None:
        for database in self.made:
            self._sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        self.admin.dispose()

    def _sql(self, statement: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(statement))


def seed_base(url: str, accounts: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    started = time.perf_counter()
    seed(engine, accounts=accounts, seed=1, days=90, as_of=AS_OF)
    engine.dispose()
    print(f"seeded {accounts:,} accounts in {time.perf_counter() - started:.1f} s", flush=True)


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
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--template", help="PostgreSQL: a seeded database to copy (seeds one if not given)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="tt-bench-flow-"))
    folder.mkdir(parents=True, exist_ok=True)
    bases: SqliteBases | PostgresBases = (
        PostgresBases(args.accounts, args.template)
        if args.db == "postgresql"
        else SqliteBases(folder, args.accounts)
    )
    try:
        compare(bases, folder, args.accounts)
    finally:
        bases.close()


def compare(bases: SqliteBases | PostgresBases, folder: Path, accounts: int) -> None:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TECHTOUCH_", "PREFECT_"))}
    base_env |= {
        "TECHTOUCH_TIMEZONE": "Europe/Paris",
        # Every message of the day is due at AT and inside business hours: both deliver all of it.
        "TECHTOUCH_DELIVERY__BUSINESS_START": "00:00",
        "TECHTOUCH_DELIVERY__BUSINESS_END": "23:59",
        "TECHTOUCH_DELIVERY__BUSINESS_DAYS": "[0, 1, 2, 3, 4, 5, 6]",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    python = sys.executable
    day = AS_OF.isoformat()
    at = f"{day}T12:00:00+01:00"  # the day's delivery, after its run (the outbox delivers what is due)

    cli_url = bases.copy("cli")
    cli_env = base_env | {
        "TECHTOUCH_DATABASE_URL": cli_url,
        "TECHTOUCH_OUTBOX_DIR": str(folder / "cli-outbox"),
    }
    shutil.rmtree(folder / "cli-outbox", ignore_errors=True)
    health_s, _ = timed([python, "-m", "techtouch", "health", "--as-of", day], cli_env)
    run_s, _ = timed(
        [python, "-m", "techtouch", "run", "--all", "--as-of", day, "--deliver-at", at, "--json"], cli_env
    )
    cli_s = health_s + run_s
    print(f"CLI   health {health_s:6.1f} s + run --all {run_s:6.1f} s = {cli_s:6.1f} s")

    flow_url = bases.copy("flow")
    flow_env = base_env | {
        "TECHTOUCH_DATABASE_URL": flow_url,
        "TECHTOUCH_OUTBOX_DIR": str(folder / "flow-outbox"),
        "PREFECT_HOME": str(folder / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    shutil.rmtree(folder / "flow-outbox", ignore_errors=True)
    shutil.rmtree(folder / "prefect", ignore_errors=True)
    flow_total, out = timed([python, "-c", FLOW.format(day=day, at=at)], flow_env)
    api_s = float(out.split("API_SECONDS", 1)[1].split()[0])
    flow_run = float(out.split("FLOW_SECONDS", 1)[1].split()[0])
    task_runs = int(out.split("TASK_RUNS", 1)[1].split()[0])
    print(
        f"flow  daily, process wall {flow_total:6.1f} s: ephemeral API start {api_s:5.1f} s "
        f"(a fresh PREFECT_HOME), flow run {flow_run:6.1f} s, {task_runs} task runs"
    )
    cli_touches, flow_touches = touches(cli_url), touches(flow_url)
    print(f"touches recorded / sent: CLI {cli_touches}, flow {flow_touches}")
    if cli_touches != flow_touches:
        sys.exit("the flow and the CLI recorded different work")
    print(
        f"Prefect overhead for {accounts:,} accounts: flow run vs CLI {flow_run - cli_s:+.1f} s "
        f"({(flow_run / cli_s - 1) * 100:+.1f} %); whole process {flow_total - cli_s:+.1f} s "
        "(a deployed flow on a running server pays no API start)"
    )


if __name__ == "__main__":
    main()
