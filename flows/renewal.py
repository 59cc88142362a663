"""Renewal: announce, remind, incentive, thanks; answers stop the ladder and doubt raises a CTA."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from flows.cycle import run_cycle


@flow(name="renewal", flow_run_name="renewal {as_of}", log_prints=False)
def renewal(
    as_of: date | None = None, dry_run: bool = False, shard: int = 0, shards: int = 1
) -> dict[str, Any]:
    """Run the renewal journey for `as_of` (default: today in the CS team's timezone).

    `shard`/`shards` split accounts so that several runs can share the work.
    """
    return run_cycle(["renewal"], as_of, dry_run, shard, shards)


if __name__ == "__main__":
    renewal()
