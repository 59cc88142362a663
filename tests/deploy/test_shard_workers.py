"""Shards across Prefect workers: `daily` fanned out over 2 shards, run by 2 workers of the
shards' work pool on one PostgreSQL, records and sends exactly what one worker's whole run does.

Real parts only: a local Prefect server, `prefect deploy --all` from prefect.yaml, process
workers in subprocesses (`--limit 1`: one shard at a time each, so the two shards go to the two
workers), two PostgreSQL databases seeded alike. Slow (about two minutes), so one test.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
def three_databases() -> Iterator[tuple[str, str, str]]:
    """Three fresh PostgreSQL databases (the fanned-out run's, the one-worker run's, the run whose
    shard fails), dropped after."""
    require_postgres()
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    names = [f"tt_test_{uuid.uuid4().hex[:12]}" for _ in range(3)]
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    urls = [make_url(POSTGRES_ADMIN_URL).set(database=n).render_as_string(hide_password=False) for n in names]
    try:
        yield urls[0], urls[1], urls[2]
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


def api(env: dict[str, str], path: str, body: object | None = None) -> Any:
    """The Prefect server's REST API: GET, or POST `body` as JSON.

    A server busy with a fan-out (SQLite behind it, a loaded CI machine) has been seen to take more
    than 10 s to answer: reads (GET, `…/filter`) are asked again after a timeout, and every request
    waits up to 60 s, as Prefect's own client does rather than failing a poll on one slow answer."""
    reads = body is None or path.endswith("/filter")
    for attempt in range(3 if reads else 1):
        request = urllib.request.Request(
            f"{env['PREFECT_API_URL']}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response) if response.status != 204 else None
        except TimeoutError:
            if not reads or attempt == 2:
                raise
    raise AssertionError("unreachable")


def shard_runs(env: dict[str, str], parent: str) -> list[dict[str, Any]]:
    """The flow runs a fanned-out `daily` run started (its task runs' children)."""
    return list(api(env, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [parent]}}}))


def test_two_workers_run_the_shards_and_record_exactly_what_one_worker_records(
    prefect_env: dict[str, str], three_databases: tuple[str, str, str], tmp_path: Path
) -> None:
    fanned, single, failing = three_databases
    env = prefect_env | {"TECHTOUCH_DATABASE_URL": fanned, "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox-a")}
    for url in (fanned, single, failing):
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

    logs = {name: tmp_path / name / "worker.log" for name in ("main", "shards-1", "shards-2", "failing")}
    for log in logs.values():
        log.parent.mkdir()
    workers = [start_worker(env, "techtouch-process", logs["main"])]
    verbose = env | {"PREFECT_LOGGING_LEVEL": "INFO"}  # the shard workers log each submission
    try:
        wait_until(lambda: b"started!" in logs["main"].read_bytes(), 60, "worker main", workers[0])

        # The reference: the whole cycle on one worker, on the other database.
        other = {"TECHTOUCH_DATABASE_URL": single, "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox-b")}
        whole = json.dumps({"as_of": AS_OF.isoformat(), "deliver_at": DELIVER_AT})
        prefect(
            env, "deployment", "run", "daily/morning", "--params", whole,
            "--job-variable", f"env={json.dumps(other)}", "--watch",
        )  # fmt: skip
        one = recorded(single)
        assert len(one["touches"]) > 50 and one["ctas"] and len(one["health"]) == ACCOUNTS

        fan_out = json.dumps(
            {"as_of": AS_OF.isoformat(), "deliver_at": DELIVER_AT, "shards": 2, "shard": None}
        )

        # A shard that fails: the fan-out is started with no shard worker up, shard 2's flow run is
        # cancelled before any worker takes it, then a shard worker runs shard 1. `daily` fails and
        # names shard 2 with the command that runs it again alone; that command completes the day.
        # (Shard runs take their database from the shard worker's environment.)
        third = {"TECHTOUCH_DATABASE_URL": failing, "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox-c")}
        out = prefect(
            env, "deployment", "run", "daily/morning", "--params", fan_out,
            "--job-variable", f"env={json.dumps(third)}",
        )  # fmt: skip
        found = re.search(r"UUID: ([0-9a-f-]{36})", out)
        assert found, out
        parent = found.group(1)
        wait_until(lambda: len(shard_runs(env, parent)) == 2, 120, "the fan-out's two shard runs")
        (second,) = [r for r in shard_runs(env, parent) if r["parameters"]["shard"] == 1]
        api(env, f"/flow_runs/{second['id']}/set_state", {"state": {"type": "CANCELLED"}, "force": True})
        workers.append(start_worker(verbose | third, "techtouch-shards", logs["failing"], "--limit", "1"))
        final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        wait_until(lambda: api(env, f"/flow_runs/{parent}")["state_type"] in final, 300, "the fan-out's end")
        assert api(env, f"/flow_runs/{parent}")["state_type"] == "FAILED"

        def logged() -> str:
            query = {"logs": {"flow_run_id": {"any_": [parent]}}}
            return "\n".join(entry["message"] for entry in api(env, "/logs/filter", query))

        # A run's last logs reach the server after its final state (the log handler ships them in
        # batches): wait for the flow's own summary, then read everything it said.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: "shards failed" in logged(), 60, "the fan-out's summary in its logs")
        said = logged()
        assert "1 of 2 shards failed (shard 2 of 2)" in said, said
        command = re.search(
            r"run it again alone: prefect (deployment run daily_shard/shard(?: -p [^\s'\"]+)+)", said
        )
        assert command, said
        assert f"-p deliver_at={DELIVER_AT}" in command.group(
            1
        ) and "-p shard=1 -p shards=2" in command.group(1)
        prefect(env, *shlex.split(command.group(1)), "--watch", timeout=600)
        assert recorded(failing) == one, (
            "shard 1 in the failed fan-out and shard 2 run again alone: the whole day"
        )
        stop(workers.pop())

        workers += [
            start_worker(verbose, "techtouch-shards", logs[n], "--limit", "1")
            for n in ("shards-1", "shards-2")
        ]
        for worker, name in zip(workers[1:], ("shards-1", "shards-2"), strict=True):
            wait_until(lambda p=logs[name]: b"started!" in p.read_bytes(), 60, f"worker {name}", worker)
        prefect(env, "deployment", "run", "daily/morning", "--params", fan_out, "--watch", timeout=600)

        two = recorded(fanned)
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
