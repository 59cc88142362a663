"""One journey on its own: any journey file in config/journeys/, by name, with no Python per journey.

A journey added as YAML runs on Prefect with one `prefect.yaml` entry that sets
`parameters: {name: <journey id>}` (Prefect's own examples deploy one flow many ways).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect import flow

from flows.cycle import run_cycle


@flow(name="journey", flow_run_name="{name} {as_of}")
def journey(
    name: str,
    as_of: date | None = None,
    dry_run: bool = False,
    shard: int = 0,
    shards: int = 1,
    deliver_at: datetime | None = None,
) -> dict[str, Any]:
    """Run journey `name` for `as_of` (default: today in the CS team's timezone).

    `shard`/`shards` split accounts so that several runs can share the work; an unknown `name`
    fails the run before anything is read, naming the journeys that exist. `deliver_at`: as in
    `daily` (outbox only).
    """
    return run_cycle([name], as_of, dry_run, shard, shards, deliver_at=deliver_at)


if __name__ == "__main__":
    import sys

    journey(sys.argv[1] if len(sys.argv) > 1 else "onboarding")
