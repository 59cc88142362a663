"""Shards across Prefect workers: `daily` fanned out over 2 shards, run by 2 workers of the
shards' work pool on one PostgreSQL, records and sends exactly what one worker's whole run does.

Real parts only: a local Prefect server, `prefect deploy --all` from prefect.yaml, process
workers in subprocesses (`--limit 1`: one shard at a time each, so the two shards go to the two
workers), two PostgreSQL databases seeded alike. Slow (about two minutes), so one test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from techtouch.adapters.db.engine import make_engine
from techtouch.services.seed import seed
from tests.conftest import POSTGRES_ADMIN_URL, require_postgres
from tests.deploy.test_prefect_server import AS_OF, PREFECT, prefect, prefect_env, stop, wait_until

pytestmark = pytest.mark.slow
__all__ = ["prefect_env"]  # the fixture, imported for this module's tests
ACCOUNTS = 300
DELIVER_AT = "2026-11-02T16:00:00+00:00"


@pytest.fixture
def two_databases() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases (the fanned-out run's, the one-worker run's), dropped after."""
    require_postgres()
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    names = [f"tt_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    urls = [make_url(POSTGRES_ADMIN_URL).set(database=n).render_as_string(hide_password=False) for n in names]
    try:
        yield urls[0], urls[1]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def recorded(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Everything a cycle writes, comparable across two databases (no ids, no wall-clock times)."""
    engine = make_engine(url)
    queries = {
        "touches": "SELECT key, account_id, contact_id, journey, milestone, rung, channel, status, "
        "send_at, as_of FROM touches ORDER BY key",
        "ctas": "SELECT account_id, journey, reason, status, assignee, priority FROM ctas "
        "ORDER BY account_id, reason",
        "enrollments": "SELECT account_id, journey, cycle, status, milestone, step, next_due "
        "FROM enrollments ORDER BY account_id, journey, cycle",
        "health": "SELECT account_id, as_of, score, color FROM health_snapshots ORDER BY account_id",
    }
    with engine.connect() as connection:
        found = {name: [tuple(row) for row in connection.execute(text(sql))] for name, sql in queries.items()}
    engine.dispose()
    return found


def start_worker(env: dict[str, str], pool: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", pool, "--type", "process", *extra],
        env=env,
        cwd=log.parent,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_two_workers_run_the_shards_and_record_exactly_what_one_worker_records(
    prefect_env: dict[str, str], two_databases: tuple[str, str], tmp_path: Path
) -> None:
    fanned, single = two_databases
    env = prefect_env | {"TECHTOUCH_DATABASE_URL": fanned, "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox-a")}
    for url in (fanned, single):
        upgraded = subprocess.run(
            [sys.executable, "-m", "techtouch", "db", "upgrade"],
            env=env | {"TECHTOUCH_DATABASE_URL": url},
            capture_output=True,
            text=True,
        )
        assert upgraded.returncode == 0, upgraded.stderr
        engine = make_engine(url)
        seed(engine, accounts=ACCOUNTS, seed=11, days=90, as_of=AS_OF, high_touch_arr=100_000)
        engine.dispose()

    for pool in ("techtouch-process", "techtouch-shards"):
        prefect(env, "work-pool", "create", pool, "--type", "process")
    deployed = prefect(env, "--no-prompt", "deploy", "--all")
    assert "daily_shard/shard" in deployed, deployed

    logs = {name: tmp_path / name / "worker.log" for name in ("main", "shards-1", "shards-2")}
    for log in logs.values():
        log.parent.mkdir()
    workers = [start_worker(env, "techtouch-process", logs["main"])]
    verbose = env | {"PREFECT_LOGGING_LEVEL": "INFO"}  # the shard workers log each submission
    workers += [
        start_worker(verbose, "techtouch-shards", logs[n], "--limit", "1") for n in ("shards-1", "shards-2")
    ]
    try:
        for worker, log in zip(workers, logs.values(), strict=True):
            wait_until(lambda p=log: b"started!" in p.read_bytes(), 60, f"worker {log.parent.name}", worker)

        # The reference: the whole cycle on one worker, on the other database.
        other = {"TECHTOUCH_DATABASE_URL": single, "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox-b")}
        whole = json.dumps({"as_of": AS_OF.isoformat(), "deliver_at": DELIVER_AT})
        prefect(
            env, "deployment", "run", "daily/morning", "--params", whole,
            "--job-variable", f"env={json.dumps(other)}", "--watch",
        )  # fmt: skip

        fan_out = json.dumps(
            {"as_of": AS_OF.isoformat(), "deliver_at": DELIVER_AT, "shards": 2, "shard": None}
        )
        prefect(env, "deployment", "run", "daily/morning", "--params", fan_out, "--watch", timeout=600)

        one, two = recorded(single), recorded(fanned)
        assert len(one["touches"]) > 50 and one["ctas"] and len(one["health"]) == ACCOUNTS
        assert two == one, "the shards together record exactly what one worker's whole run records"
        outbox = {
            name: sorted(p.name for p in (tmp_path / name / "email").glob("*.eml"))
            for name in ("outbox-a", "outbox-b")
        }
        assert outbox["outbox-a"] and outbox["outbox-a"] == outbox["outbox-b"]

        # Each shard worker ran one shard (--limit 1 and both started at once).
        done = {
            name: re.findall(
                r"Flow run 'daily [\d-]+ shard (\d) of 2' - Finished in state Completed",
                logs[name].read_text(),
            )
            for name in ("shards-1", "shards-2")
        }
        assert sorted(done["shards-1"] + done["shards-2"]) == ["0", "1"], done
        runs = prefect(env, "flow-run", "ls", "--flow-name", "daily_shard", "--state", "COMPLETED")
        assert runs.count("shard") >= 2, runs

        # A shard runs again alone (a restart after a failure): nothing new is recorded or sent.
        again = json.dumps({"as_of": AS_OF.isoformat(), "shard": 1, "shards": 2, "deliver_at": DELIVER_AT})
        prefect(env, "deployment", "run", "daily_shard/shard", "--params", again, "--watch", timeout=600)
        assert recorded(fanned) == two
        assert sorted(p.name for p in (tmp_path / "outbox-a" / "email").glob("*.eml")) == outbox["outbox-a"]
    finally:
        for worker in workers:
            stop(worker)
