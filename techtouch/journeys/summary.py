"""A run report for people (Rich tables) and scripts (JSON); counts only, never contact details."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from techtouch.journeys.runner import RunReport


def report_dict(report: RunReport) -> dict[str, Any]:
    delivery = report.delivery
    return {
        "as_of": report.as_of.isoformat(),
        "dry_run": report.dry_run,
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
                "skipped": j.skipped,
                "after_hours": j.after_hours,
            }
            for j in report.journeys
        ],
        "delivery": None
        if delivery is None
        else {
            "sent": dict(delivery.sent),
            "reconciled": delivery.reconciled,
            "suppressed": delivery.suppressed,
            "failed": delivery.failed,
            "errors": delivery.errors[:50],
        },
    }


def report_tables(report: RunReport) -> list[Table]:
    title = (
        f"Run for {report.as_of.isoformat()}{' (dry run: nothing written or sent)' if report.dry_run else ''}"
    )
    overview = Table(
        "journey",
        "entered",
        "active",
        "email",
        "sms",
        "cta",
        "skipped",
        "capped",
        "paused",
        "exits",
        title=title,
    )
    for j in report.journeys:
        steps = j.steps
        by_channel = (
            steps[steps["status"] != "skipped"].groupby("channel")["count"].sum() if len(steps) else {}
        )
        skipped = int(steps.loc[steps["status"] == "skipped", "count"].sum()) if len(steps) else 0
        overview.add_row(
            j.journey,
            str(j.entered),
            str(j.active),
            *(str(int(by_channel.get(c, 0))) for c in ("email", "sms", "cta")),
            str(skipped),
            str(j.skipped.get("cap", 0)),
            str(j.skipped.get("paused", 0)),
            ", ".join(f"{k}: {v}" for k, v in sorted(j.exits.items())) or "-",
        )
    tables = [overview]
    steps_table = Table("journey", "milestone", "rung", "channel", "status", "count", title="Steps taken")
    for j in report.journeys:
        for row in j.steps.itertuples():
            steps_table.add_row(j.journey, row.milestone, row.rung, row.channel, row.status, str(row.count))
    if steps_table.row_count:
        tables.append(steps_table)
    if report.delivery is not None:
        d = report.delivery
        delivery = Table("sent email", "sent sms", "reconciled", "suppressed", "failed", title="Delivery")
        delivery.add_row(
            str(d.sent.get("email", 0)),
            str(d.sent.get("sms", 0)),
            str(d.reconciled),
            str(d.suppressed),
            str(d.failed),
        )
        tables.append(delivery)
    return tables
