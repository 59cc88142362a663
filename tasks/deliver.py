"""Deliver pending touches, one task per channel, tagged so that Prefect concurrency limits apply.

`prefect concurrency-limit create email 1` keeps at most one email delivery running across all
flow runs (shards included). A retry is safe: touches already sent are marked, and ambiguous ones
are reconciled before anything is sent again.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from techtouch.services import day as service
from techtouch.services.app import App
from techtouch.services.delivery import DeliveryReport
from techtouch.services.runner import RunState

BACKOFF: list[float] = [10, 60, 300]  # seconds: a provider outage usually lasts minutes


def _deliver(app: App, state: RunState, channel: str) -> DeliveryReport:
    report = service.deliver_pending(app, state, [channel])
    get_run_logger().info(
        "%s: %d sent, %d reconciled, %d suppressed at send time, %d failed",
        channel,
        report.sent.get(channel, 0),
        report.reconciled,
        report.suppressed,
        report.failed,
    )
    return report


@task(name="deliver_email", tags=["email"], retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE)
def deliver_email(app: App, state: RunState) -> DeliveryReport:
    return _deliver(app, state, "email")


@task(name="deliver_sms", tags=["sms"], retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE)
def deliver_sms(app: App, state: RunState) -> DeliveryReport:
    return _deliver(app, state, "sms")
