"""Hourly delivery: send what has fallen due since the daily run, expire what is past its day.

The daily run hands a channel what it can deliver inside each recipient's business hours: SendGrid
and Twilio with a Messaging Service schedule messages (`send_at`), but the outbox and Twilio with a
from-number send at once, so they only get what is due. This flow, deployed hourly
(`deliver/hourly` in prefect.yaml), sends the rest when it falls due, and marks `expired` what is
past its intended day by more than `delivery.expire_after_hours`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from tasks.deliver import deliver_due
from tasks.report import publish_delivery
from tasks.runtime import runtime_app
from techtouch.domain.shards import Shard
from techtouch.services.day import replay_clock


@flow(name="deliver", flow_run_name="deliver")
def deliver(shard: int = 0, shards: int = 1, at: datetime | None = None) -> dict[str, Any]:
    """Deliver what is due now (only the shard's accounts with `shard`/`shards`); `at` replays the
    delivery at another instant (outbox only, as `techtouch deliver --at`)."""
    part = Shard(shard, shards)
    app = runtime_app()
    try:
        report = deliver_due(app, part, None if at is None else replay_clock(app, at))
        return publish_delivery(part, report)
    finally:
        app.close()


if __name__ == "__main__":
    deliver()
