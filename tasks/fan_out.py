"""Fan a daily cycle out over shards: one flow run per shard on the shards' work pool.

Each shard is a task run here that starts a run of the `daily_shard` deployment and waits for
its end; whichever worker of the pool is free picks it up, on this machine or another one, all
against one database. A handful of task runs per shard, whatever the number of accounts.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, cast

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from techtouch.domain.shards import Shard

SHARD_DEPLOYMENT = "daily_shard/shard"  # prefect.yaml


def rerun_parameters(parameters: dict[str, Any]) -> dict[str, str]:
    """A shard run's parameters as `prefect deployment run -p` takes them: those left at their
    default are left out, journeys as a JSON list (quoted for a shell)."""
    given = {k: v for k, v in parameters.items() if v is not None and v is not False}
    if "journeys" in given:
        given["journeys"] = "'" + json.dumps(given["journeys"]) + "'"
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in given.items()}


class ShardFailed(RuntimeError):
    """A shard's flow run did not complete: it can be run again alone (README: "Shards")."""


@task(name="run_shard", task_run_name="shard {shard.index}/{shard.count}", cache_policy=NO_CACHE)
def run_shard(
    deployment: str,
    shard: Shard,
    as_of: date,
    dry_run: bool,
    journeys: list[str] | None,
    deliver_at: datetime | None,
) -> dict[str, Any]:
    """Start the shard's flow run, wait for it (no timeout: a shard takes what it takes), and
    fail with its state when it did not complete. Returns the run's id and name."""
    parameters: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "shard": shard.index,
        "shards": shard.count,
        "dry_run": dry_run,
        "journeys": journeys,
        "deliver_at": None if deliver_at is None else deliver_at.isoformat(),
    }
    # Called from a sync task: run_deployment (an async_dispatch) runs its sync implementation.
    run = cast(
        FlowRun,
        run_deployment(deployment, parameters=parameters, timeout=None, poll_interval=2, tags=["shard"]),
    )
    state = run.state
    get_run_logger().info("%s: flow run %s ended %s", shard, run.name, state.name if state else "unknown")
    if state is None or not state.is_completed():
        again = " ".join(f"-p {name}={value}" for name, value in rerun_parameters(parameters).items())
        raise ShardFailed(
            f"{shard} of {as_of} ended {state.name if state else 'without a state'} "
            f"(flow run {run.name}); run it again alone: prefect deployment run {deployment} {again}"
        )
    return {"shard": shard.index, "flow_run": run.name, "flow_run_id": str(run.id)}
