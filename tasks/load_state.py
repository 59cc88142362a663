"""Load a run's state once: accounts with signals and health, contacts, cap counts (one frame each)."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.retry import transient_error
from techtouch.domain.shards import Shard
from techtouch.services import day as service
from techtouch.services.app import App
from techtouch.services.runner import RunState


@task(
    name="load_state",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=transient_error,
    cache_policy=NO_CACHE,  # frames in, frames out: hashing them would cost more than the load
)
def load_state(app: App, as_of: date, shard: Shard) -> RunState:
    state = service.load_state(app, as_of, shard)
    get_run_logger().info(
        "loaded %d accounts (%s) and %d contacts for %s",
        len(state.accounts),
        shard,
        len(state.contacts),
        as_of,
    )
    return state
