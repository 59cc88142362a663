"""Risk: usage drops or red health send help, then a CSM call; recovery exits the journey."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from flows.cycle import run_cycle


@flow(name="risk", flow_run_name="risk {as_of}", log_prints=False)
def risk(as_of: date | None = None, dry_run: bool = False, shard: int = 0, shards: int = 1) -> dict[str, Any]:
    """Run the risk journey for `as_of` (default: today in the CS team's timezone).

    `shard`/`shards` split accounts so that several runs can share the work.
    """
    return run_cycle(["risk"], as_of, dry_run, shard, shards)


if __name__ == "__main__":
    risk()
