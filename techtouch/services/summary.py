"""A run report for people (Rich tables) and scripts (JSON); counts only, never contact details."""

from __future__ import annotations

from typing import Any

from techtouch.services.delivery import DeliveryReport
from techtouch.services.runner import JourneyReport, RunReport


def report_dict(report: RunReport) -> dict[str, Any]:
    delivery = report.delivery
    return {
        "as_of": report.as_of.isoformat(),
        "dry_run": report.dry_run,
        "accounts": report.accounts,
        "seconds": round(report.seconds, 3),
        "journeys": [
            {
                "journey": j.journey,
                "entered": j.entered,
                "active": j.active,
                "exits": dict(j.exits),
                "steps": j.steps.to_dict("records"),
                "ctas_created": j.ctas_created,
                "ctas_by_assignee": dict(j.ctas_by_assignee),
                "ctas_joined": j.ctas_joined,  # escalations added to a CTA already open
                "ctas_closed": j.ctas_closed,  # open CTAs closed because their cause went away
                "skipped": j.skipped,
                "after_hours": j.after_hours,  # all messages sent after the run time (as before)
                "scheduled_later_today": j.scheduled_later_today,  # business hours, later the same day
                "held_for_quiet_hours": j.quiet_hours_held,  # a later day: the held-back part
            }
            for j in report.journeys
        ],
        "delivery": None
        if delivery is None
        else {
            "sent": dict(delivery.sent),
            "reconciled": delivery.reconciled,
            "retried": delivery.retried,
            "awaiting": delivery.awaiting,
            "unknown": delivery.unknown,
            "opted_out": delivery.opted_out,
            "suppressed": delivery.suppressed,
            "failed": delivery.failed,
            "expired": delivery.expired,  # their day had passed (a backfill, a worker down): never sent
            "held": delivery.held,  # not yet due, or due outside business hours: the hourly deliver
            "errors": delivery.errors[:50],
        },
    }


def assignee_label(assignee: str) -> str:
    """A CTA assignee as reports show it: a CSM's handle (`jane.doe`) or the queue's name.

    Reports and Prefect artifacts carry no contact details; a handle is enough for CS ops.
    """
    return assignee.split("@", 1)[0] if "@" in assignee else assignee


def skipped_summary(journey: JourneyReport) -> dict[str, int]:
    """Why steps did not go out as messages today: pause, suppression or consent, cap, quiet hours.

    Only what is really held back: a message scheduled for the recipient's business hours later
    the same day is not (see `JourneyReport.scheduled_later_today`).
    """
    return {
        "paused": int(journey.skipped.get("paused", 0)),
        "suppressed or no consent": int(journey.skipped.get("unreachable", 0))
        + int(journey.skipped.get("sms_unreachable", 0)),
        "frequency cap (waits a day)": int(journey.skipped.get("cap", 0)),
        "quiet hours (waits for the next business day)": int(journey.quiet_hours_held),
    }


def step_rows(journey: JourneyReport) -> list[dict[str, Any]]:
    """Counts per milestone, rung, channel and status: the table artifact of a journey run."""
    return [
        {
            "milestone": str(step["milestone"]),
            "rung": str(step["rung"]),
            "channel": str(step["channel"]),
            "status": str(step["status"]),
            "count": int(step["count"]),
        }
        for step in journey.steps.to_dict("records")
    ]


def journey_markdown(journey: JourneyReport, as_of: str, dry_run: bool, scope: str) -> str:
    """The markdown artifact of a journey run: what moved, who got CTAs, what was held back."""
    lines = [
        f"# {journey.journey} — {as_of}{' (dry run: nothing written or sent)' if dry_run else ''}",
        "",
        f"Scope: {scope}. Entered today: **{journey.entered}**; active: **{journey.active}**; "
        f"exits: {', '.join(f'{k} {v}' for k, v in sorted(journey.exits.items())) or 'none'}.",
        "",
        "| milestone | rung | channel | status | count |",
        "|---|---|---|---|---:|",
        *(
            f"| {r['milestone']} | {r['rung']} | {r['channel']} | {r['status']} | {r['count']} |"
            for r in step_rows(journey)
        ),
        "",
        f"## CTAs created: {journey.ctas_created}",
        "",
        f"Joined to a CTA already open: {journey.ctas_joined}; closed because the cause went away: "
        f"{journey.ctas_closed}.",
        "",
        "| assignee | CTAs |",
        "|---|---:|",
        *(
            f"| {assignee_label(a)} | {n} |"
            for a, n in sorted(journey.ctas_by_assignee.items(), key=lambda item: (-item[1], item[0]))
        ),
        "",
        "## Held back",
        "",
        "| reason | count |",
        "|---|---:|",
        *(f"| {reason} | {n} |" for reason, n in skipped_summary(journey).items()),
        "",
        f"Scheduled for the recipients' business hours later today (not held back): "
        f"{journey.scheduled_later_today}.",
        "",
    ]
    return "\n".join(lines)


def delivery_markdown(delivery: DeliveryReport, channel: str, as_of: str) -> str:
    """What one delivery step did; failures are listed by touch key, never by address."""
    lines = [
        f"# Delivery ({channel}) — {as_of}",
        "",
        f"Sent: **{delivery.sent.get(channel, 0)}**; reconciled after a crash: {delivery.reconciled}; "
        f"suppressed at send time: {delivery.suppressed}; failed: {delivery.failed}; "
        f"expired (their day had passed): {delivery.expired}; "
        f"held for their send time (the hourly deliver sends them): {delivery.held}.",
    ]
    if delivery.errors:
        lines += ["", "## Failures (first 20)", "", *(f"- `{e}`" for e in delivery.errors[:20])]
    return "\n".join(lines) + "\n"
