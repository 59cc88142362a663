"""Score every account's health for a day and keep the snapshot (vectorized, one task)."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.retry import transient_error
from techtouch.services import reports
from techtouch.services.app import App
from techtouch.services.health import compute_health


@task(
    name="score_health",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=transient_error,
    cache_policy=NO_CACHE,
)
def score_health(app: App, as_of: date) -> dict[str, Any]:
    scored = compute_health(app.engine, as_of, app.instant(as_of), app.settings.health)
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
