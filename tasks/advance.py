"""Advance one journey: decide, plan and record in one transaction under the journey's lock."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.retry import transient_error
from techtouch.domain.catalog import CompiledJourney
from techtouch.services.app import App
from techtouch.services.runner import JourneyReport, RunState, advance_journey


@task(
    name="advance",
    task_run_name="advance {journey.id}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=transient_error,  # the transaction rolled back, so a retry starts clean
    cache_policy=NO_CACHE,
)
def advance(app: App, journey: CompiledJourney, state: RunState, dry_run: bool) -> JourneyReport:
    report, _, plan = advance_journey(app.engine, app.settings, journey, state, dry_run=dry_run)
    get_run_logger().info(
        "%s: %d entered, %d active, %d touches planned, %d CTAs%s",
        journey.id,
        report.entered,
        report.active,
        len(plan.touches),
        report.ctas_created,
        " (dry run: nothing recorded)" if dry_run else "",
    )
    return report
