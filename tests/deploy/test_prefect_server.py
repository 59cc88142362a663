"""End to end on real Prefect parts: a local server, a process work pool and worker, deployments
made by `prefect deploy --all` from prefect.yaml, and the `daily` deployment run for a given day.

Slow (a server start, a deploy, two flow runs in worker subprocesses), so it is one test; a
second, shorter one (about 15 s) checks that one signal stops the worker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from techtouch.adapters.db.engine import make_engine
from techtouch.services.seed import seed

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
AS_OF = date(2026, 11, 2)
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    check: object, timeout: float, what: str, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: process exited with {process.returncode}")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: not ready after {timeout} s")


def api_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def prefect_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A Prefect server of our own on a free port, with its own PREFECT_HOME and database."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # The scheduler service looks for deployments to schedule every 60 s by default.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "COLUMNS": "250",  # Rich tables of the CLI: full names, not "daily 2026-…"
        "TECHTOUCH_DATABASE_URL": f"sqlite:///{tmp_path / 'techtouch.db'}",
        "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox"),
        # The daily run of AS_OF is delivered at AT (the outbox's replay clock) with business
        # hours all day: whenever the suite runs, what it records is due then.
        "TECHTOUCH_DELIVERY__BUSINESS_START": "00:00",
        "TECHTOUCH_DELIVERY__BUSINESS_END": "23:59",
        "TECHTOUCH_DELIVERY__BUSINESS_DAYS": "[0,1,2,3,4,5,6]",
    }
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: api_healthy(env["PREFECT_API_URL"]), 120, "prefect server", server)
        yield env
    finally:
        stop(server)
        log.close()


def prefect(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def scheduled_runs(env: dict[str, str]) -> dict[str, int]:
    """Upcoming runs the server's scheduler created by itself, per deployment name."""
    request = urllib.request.Request(
        f"{env['PREFECT_API_URL']}/flow_runs/filter",
        data=json.dumps({"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}, "limit": 200}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        runs = json.load(response)
    found: dict[str, int] = {}
    for run in runs:
        if run.get("auto_scheduled"):
            found[run["deployment_id"]] = found.get(run["deployment_id"], 0) + 1
    return found


def deployment_ids(env: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(
        f"{env['PREFECT_API_URL']}/deployments/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return {d["name"] + "@" + d["entrypoint"]: d["id"] for d in json.load(response)}


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as connection:
        found = {
            table: int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
            for table in ("touches", "ctas", "enrollments", "health_snapshots")
        }
        found["distinct_keys"] = int(
            connection.execute(text("SELECT COUNT(DISTINCT key) FROM touches")).scalar_one()
        )
        found["sent"] = int(
            connection.execute(text("SELECT COUNT(*) FROM touches WHERE status = 'sent'")).scalar_one()
        )
    engine.dispose()
    return found


def test_deploy_from_prefect_yaml_and_run_daily_on_a_worker(
    prefect_env: dict[str, str], tmp_path: Path
) -> None:
    url = prefect_env["TECHTOUCH_DATABASE_URL"]
    # The deploy step the README gives: the schema first (flows refuse an outdated one).
    upgraded = subprocess.run(
        [sys.executable, "-m", "techtouch", "db", "upgrade"], env=prefect_env, capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    engine = make_engine(url)
    seed(engine, accounts=120, seed=11, days=90, as_of=AS_OF, high_touch_arr=100_000)
    engine.dispose()

    for pool in ("techtouch-process", "techtouch-shards"):  # the README's two pools
        prefect(prefect_env, "work-pool", "create", pool, "--type", "process")
    deployed = prefect(prefect_env, "--no-prompt", "deploy", "--all")
    for name in ("daily/morning", "csm_digest/weekdays", "health/morning", "journey/onboarding"):
        assert name in deployed, deployed
    listing = prefect(prefect_env, "deployment", "ls")
    assert "daily/morning" in listing

    # The server's scheduler (not a manual run) creates upcoming runs of the active deployments:
    # SQLAlchemy 2.1 breaks exactly this in Prefect 3.8 while manual runs keep working.
    ids = deployment_ids(prefect_env)
    active = {
        ids["morning@flows/daily.py:daily"],
        ids["weekdays@flows/csm_digest.py:csm_digest"],
        ids["hourly@flows/deliver.py:deliver"],
    }
    wait_until(lambda: active <= set(scheduled_runs(prefect_env)), 120, "scheduled runs")
    inactive = {ids["onboarding@flows/journey.py:journey"], ids["morning@flows/health.py:health"]}
    assert not inactive & set(scheduled_runs(prefect_env)), "inactive schedules create no runs"

    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "techtouch-process", "--type", "process"],
        env=prefect_env,
        cwd=tmp_path,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        params = json.dumps({"as_of": AS_OF.isoformat(), "deliver_at": "2026-11-02T16:00:00+00:00"})
        prefect(prefect_env, "deployment", "run", "daily/morning", "--params", params, "--watch")
        first = counts(url)
        assert first["touches"] > 0 and first["ctas"] > 0 and first["sent"] > 0, first
        assert first["health_snapshots"] == 120
        emails = sorted(p.name for p in (tmp_path / "outbox" / "email").glob("*.eml"))
        assert len(emails) > 0

        prefect(prefect_env, "deployment", "run", "daily/morning", "--params", params, "--watch")
        assert counts(url) == first, "a rerun of the same day must record and send nothing new"
        assert sorted(p.name for p in (tmp_path / "outbox" / "email").glob("*.eml")) == emails
        assert first["distinct_keys"] == first["touches"]

        runs = prefect(prefect_env, "flow-run", "ls", "--flow-name", "daily", "--state", "COMPLETED")
        assert runs.count("daily 2026-11-02") == 2, runs
    finally:
        stop(worker)
        worker_log.close()


def test_one_ctrl_c_or_one_sigterm_stops_the_worker_of_the_readme(
    prefect_env: dict[str, str], tmp_path: Path
) -> None:
    """README "Stopping a worker": the worker, started with the README's command, exits on the
    first signal (Prefect 3.8: in about 0.4 s; a second signal would be a SIGKILL). A terminal's
    Ctrl-C reaches the whole foreground process group; systemd and `docker stop` send SIGTERM."""
    for pool in ("techtouch-process", "techtouch-shards"):  # the README's two pools
        prefect(prefect_env, "work-pool", "create", pool, "--type", "process")
    for sig, send in ((signal.SIGINT, os.killpg), (signal.SIGTERM, os.kill)):
        log_path = tmp_path / f"worker-{sig.name}.log"
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", "techtouch-process"],
                env=prefect_env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                wait_until(lambda p=log_path: b"started!" in p.read_bytes(), 60, "worker start", worker)
                send(worker.pid, sig)
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"the worker still runs 15 s after one {sig.name}") from None
            finally:
                stop(worker)
        assert worker.returncode == 0, log_path.read_text()
        assert "stopped!" in log_path.read_text()
