"""Publish a run's counts as Prefect artifacts: a table and a summary per journey, one per delivery.

Artifacts carry counts, rungs and CSM handles only; never contact names, emails or phones.
Keys stay the same from run to run, so the UI shows each journey's history.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from techtouch.domain.shards import Shard
from techtouch.services.delivery import DeliveryReport
from techtouch.services.runner import JourneyReport
from techtouch.services.summary import delivery_markdown, journey_markdown, skipped_summary, step_rows


def _key(name: str, shard: Shard) -> str:
    key = name.lower().replace("_", "-")
    return key if shard.everything else f"{key}-shard-{shard.index}-of-{shard.count}"


@task(name="publish_report", cache_policy=NO_CACHE)
def publish_report(
    as_of: str,
    dry_run: bool,
    shard: Shard,
    journeys: list[JourneyReport],
    deliveries: dict[str, DeliveryReport],
) -> dict[str, object]:
    for journey in journeys:
        rows = step_rows(journey) or [
            {"milestone": "-", "rung": "-", "channel": "-", "status": "nothing due", "count": 0}
        ]
        create_table_artifact(
            key=_key(f"{journey.journey}-steps", shard),
            table=rows,
            description=f"{journey.journey} on {as_of}: touches per milestone, rung, channel and status",
        )
        create_markdown_artifact(
            key=_key(f"{journey.journey}-run", shard),
            markdown=journey_markdown(journey, as_of, dry_run, str(shard)),
            description=f"{journey.journey} on {as_of}",
        )
    for channel, delivery in deliveries.items():
        create_markdown_artifact(
            key=_key(f"delivery-{channel}", shard),
            markdown=delivery_markdown(delivery, channel, as_of),
            description=f"{channel} delivery on {as_of}",
        )
    return {
        "as_of": as_of,
        "dry_run": dry_run,
        "journeys": {
            j.journey: {
                "entered": j.entered,
                "active": j.active,
                "ctas": j.ctas_created,
                "held_back": skipped_summary(j),
            }
            for j in journeys
        },
        "sent": {c: d.sent.get(c, 0) for c, d in deliveries.items()},
        "failed": {c: d.failed for c, d in deliveries.items()},
        "expired": {c: d.expired for c, d in deliveries.items()},
        "held": {c: d.held for c, d in deliveries.items()},
    }


@task(name="publish_delivery", cache_policy=NO_CACHE)
def publish_delivery(shard: Shard, delivery: DeliveryReport) -> dict[str, object]:
    """The hourly delivery's artifact (`delivery-due`) and counts."""
    create_markdown_artifact(
        key=_key("delivery-due", shard),
        markdown="\n".join(
            [
                "# Hourly delivery",
                "",
                f"Sent: **{delivery.sent.get('email', 0)}** email, **{delivery.sent.get('sms', 0)}** SMS; "
                f"expired (their day had passed): {delivery.expired}; held until due: {delivery.held}; "
                f"suppressed at send time: {delivery.suppressed}; failed: {delivery.failed}.",
                *(
                    ["", "## Failures (first 20)", "", *(f"- `{e}`" for e in delivery.errors[:20])]
                    if delivery.errors
                    else []
                ),
            ]
        )
        + "\n",
        description="hourly delivery",
    )
    return {
        "sent": dict(delivery.sent),
        "failed": delivery.failed,
        "expired": delivery.expired,
        "held": delivery.held,
        "suppressed": delivery.suppressed,
    }
