"""Deliver pending touches, one task per channel, tagged so that Prefect concurrency limits apply.

`prefect concurrency-limit create email 1` keeps at most one email delivery running across all
flow runs (shards included). A retry is safe: touches already sent are marked, and ambiguous ones
are reconciled before anything is sent again.
"""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from techtouch.domain.shards import Shard
from techtouch.services import day as service
from techtouch.services.app import App
from techtouch.services.delivery import DeliveryReport
from techtouch.services.runner import RunState

BACKOFF: list[float] = [10, 60, 300]  # seconds: a provider outage usually lasts minutes


def _deliver(app: App, state: RunState, channel: str, now: datetime | None) -> DeliveryReport:
    report = service.deliver_pending(app, state, [channel], now=now)
    get_run_logger().info(
        "%s: %d sent, %d reconciled, %d suppressed at send time, %d failed, %d expired, %d held until due",
        channel,
        report.sent.get(channel, 0),
        report.reconciled,
        report.suppressed,
        report.failed,
        report.expired,
        report.held,
    )
    return report


@task(name="deliver_email", tags=["email"], retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE)
def deliver_email(app: App, state: RunState, now: datetime | None = None) -> DeliveryReport:
    return _deliver(app, state, "email", now)


@task(name="deliver_sms", tags=["sms"], retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE)
def deliver_sms(app: App, state: RunState, now: datetime | None = None) -> DeliveryReport:
    return _deliver(app, state, "sms", now)


@task(
    name="deliver_due", tags=["email", "sms"], retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE
)
def deliver_due(app: App, shard: Shard, now: datetime | None = None) -> DeliveryReport:
    """What has fallen due since the last delivery, inside each recipient's business hours; expiry."""
    report = service.deliver_due(app, shard=shard, now=now)
    get_run_logger().info(
        "%d email and %d SMS sent, %d expired, %d held until due, %d suppressed, %d failed",
        report.sent.get("email", 0),
        report.sent.get("sms", 0),
        report.expired,
        report.held,
        report.suppressed,
        report.failed,
    )
    return report
