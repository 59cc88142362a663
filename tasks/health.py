"""Score every account's health for a day and keep the snapshot (vectorized, one task per shard)."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.retry import transient_error
from techtouch.services import reports
from techtouch.services.app import App
from techtouch.services.health import compute_health, health_of_run, store_health
from techtouch.services.runner import RunState


@task(
    name="score_health",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=transient_error,
    cache_policy=NO_CACHE,
)
def score_health(app: App, as_of: date, state: RunState | None = None) -> dict[str, Any]:
    """The day's health snapshot: from the run's loaded state when there is one (its accounts were
    scored as they were read), else read and scored here."""
    if state is None:
        scored = compute_health(app.engine, as_of, app.instant(as_of), app.settings.health)
    else:
        scored = health_of_run(state.accounts)
        store_health(app.engine, as_of, scored)
    distribution = reports.health_distribution(scored)
    colors = distribution["colors"]
    get_run_logger().info(
        "health for %s: %d accounts, %d green, %d yellow, %d red; %d with usage down 30 %% or more",
        as_of,
        distribution["accounts"],
        colors["green"],
        colors["yellow"],
        colors["red"],
        distribution["usage_drop_30pct"],
    )
    return distribution
