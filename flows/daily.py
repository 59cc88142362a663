"""The daily cycle: score health, then every journey in priority order, then deliver.

With `shards` > 1 and no `shard`, the cycle fans out: one `daily_shard` flow run per shard on the
shards' work pool, as many at once as there are free workers (README: "Shards"), then the
`/reports` rollup once every shard has completed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import wait

from flows.cycle import run_cycle
from tasks.fan_out import SHARD_DEPLOYMENT, ShardFailed, run_shard
from tasks.reports import refresh_reports
from tasks.runtime import runtime_app
from techtouch.domain.clock import today
from techtouch.domain.shards import Shard
from techtouch.services.runner import select_journeys


@flow(name="daily", flow_run_name="daily {as_of}")
def daily(
    as_of: date | None = None,
    dry_run: bool = False,
    journeys: list[str] | None = None,
    shard: int | None = None,
    shards: int = 1,
    deliver_at: datetime | None = None,
    shard_deployment: str = SHARD_DEPLOYMENT,
) -> dict[str, Any]:
    """Health first (journeys read today's score), then `journeys` (default: all) in priority order.

    The journey priority decides who gets a contact when the frequency cap allows only one message.
    Delivery runs at the real time; `deliver_at` replays it at another instant (outbox only: a
    rehearsal of a past or future day, as `techtouch deliver --at`). `shards` > 1 splits the
    accounts: `shard` (0-based) runs that one part here; without it every part runs as its own
    flow run of `shard_deployment`, on whichever workers are free.
    """
    if shards > 1 and shard is None:
        return fan_out(as_of, dry_run, journeys, shards, deliver_at, shard_deployment)
    return run_cycle(journeys, as_of, dry_run, shard or 0, shards, with_health=True, deliver_at=deliver_at)


def fan_out(
    as_of: date | None,
    dry_run: bool,
    journeys: list[str] | None,
    shards: int,
    deliver_at: datetime | None,
    deployment: str,
) -> dict[str, Any]:
    """Every shard as a task run that waits for its flow run; all started at once."""
    parts = [Shard(index, shards) for index in range(shards)]  # a bad count fails before any run
    app = runtime_app()
    try:
        day = as_of or today(app.settings.zone)  # one day for every shard, whenever each starts
        select_journeys(app.catalog, app.settings, journeys)  # an unknown journey fails here
        logger = get_run_logger()
        logger.info("daily %s in %d shards on %s", day, shards, deployment)
        futures = [run_shard.submit(deployment, part, day, dry_run, journeys, deliver_at) for part in parts]
        wait(futures)
        ended = {part: future.state for part, future in zip(parts, futures, strict=True)}
        failed = [part for part, state in ended.items() if not state.is_completed()]
        runs = [future.result(raise_on_failure=False) for future in futures]
        _publish(day, ended, runs)
        if failed:
            raise ShardFailed(
                f"{len(failed)} of {shards} shards failed ({', '.join(str(p) for p in failed)}); "
                "the others completed. Run the failed ones again alone, then "
                "`techtouch reports refresh`."
            )
        refreshed = None if dry_run else refresh_reports(app, day)
        return {"as_of": day.isoformat(), "shards": shards, "runs": runs, "reports_seconds": refreshed}
    finally:
        app.close()


def _publish(day: date, ended: dict[Shard, Any], runs: list[Any]) -> None:
    lines = [f"# Daily {day} in {len(ended)} shards", "", "| shard | flow run | state |", "|---|---|---|"]
    for (part, state), run in zip(ended.items(), runs, strict=True):
        name = run.get("flow_run", "—") if isinstance(run, dict) else "—"
        lines.append(f"| {part} | {name} | {state.name} |")
    create_markdown_artifact(
        key="daily-shards", markdown="\n".join(lines) + "\n", description=f"daily {day}: shards"
    )


if __name__ == "__main__":
    daily()
