"""One shard of a fanned-out daily cycle, run by whichever worker of the shards' pool is free.

`daily` with `shards` > 1 and no `shard` starts one run of this flow per shard (the
`daily_shard/shard` deployment in prefect.yaml) and waits for them. Each reads and writes only
its own accounts (health, journeys in priority order, delivery: a contact's account lives in
one shard, so caps hold), and is idempotent: a failed shard can be run again alone with the same
parameters, and a rerun records and sends nothing twice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect import flow

from flows.cycle import run_cycle


@flow(name="daily_shard", flow_run_name="daily {as_of} shard {shard} of {shards}")
def daily_shard(
    as_of: date,
    shard: int,
    shards: int,
    dry_run: bool = False,
    journeys: list[str] | None = None,
    deliver_at: datetime | None = None,
) -> dict[str, Any]:
    """Shard `shard` (0-based) of `shards`: health, `journeys` (default: all) in priority order,
    then delivery, for that shard's accounts only. The day is given, never "today": every shard
    of one cycle works on the same day whenever its worker picks it up."""
    return run_cycle(journeys, as_of, dry_run, shard, shards, with_health=True, deliver_at=deliver_at)


if __name__ == "__main__":
    import sys

    daily_shard(date.fromisoformat(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
