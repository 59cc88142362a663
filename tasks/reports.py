"""Bring everyone's `/reports` rollup up to date after a cycle delivered (one task)."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.retry import transient_error
from techtouch.services import report_rollup
from techtouch.services.app import App


@task(
    name="refresh_reports",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=transient_error,
    cache_policy=NO_CACHE,
)
def refresh_reports(app: App, as_of: date) -> float:
    """Seconds taken; the log says from which cohort day and week it recomputed (counts only)."""
    done = report_rollup.refresh_for(app, as_of)
    get_run_logger().info(
        "reports refreshed for %s in %.2f s: cohorts since %s, weeks since %s, %s",
        as_of,
        done.seconds,
        done.cohorts_from or "the beginning",
        done.weeks_from or "the beginning",
        done.rows,
    )
    return done.seconds
