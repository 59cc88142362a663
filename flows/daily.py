"""The daily cycle: score health, then every journey in priority order, then deliver."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect import flow

from flows.cycle import run_cycle


@flow(name="daily", flow_run_name="daily {as_of}")
def daily(
    as_of: date | None = None,
    dry_run: bool = False,
    journeys: list[str] | None = None,
    shard: int = 0,
    shards: int = 1,
    deliver_at: datetime | None = None,
) -> dict[str, Any]:
    """Health first (journeys read today's score), then `journeys` (default: all) in priority order.

    The journey priority decides who gets a contact when the frequency cap allows only one message.
    Delivery runs at the real time; `deliver_at` replays it at another instant (outbox only: a
    rehearsal of a past or future day, as `techtouch deliver --at`).
    """
    return run_cycle(journeys, as_of, dry_run, shard, shards, with_health=True, deliver_at=deliver_at)


if __name__ == "__main__":
    daily()
