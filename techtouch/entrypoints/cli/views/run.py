"""Rich tables of a run report (`techtouch run`)."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from techtouch.services.runner import RunReport


def report_tables(report: RunReport) -> list[Table]:
    title = (
        f"Run for {report.as_of.isoformat()}{' (dry run: nothing written or sent)' if report.dry_run else ''}"
    )
    caption = "quiet hours: messages held to the recipient's next business day"
    later = sum(j.scheduled_later_today for j in report.journeys)
    if later:
        caption += f"; {later} more scheduled for business hours later today (not held back)"
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
        "quiet hours",
        "exits",
        title=title,
        caption=caption,
        caption_justify="left",
    )
    for j in report.journeys:
        steps = j.steps
        by_channel: pd.Series[int] | dict[str, int] = (
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
            str(j.quiet_hours_held),
            ", ".join(f"{v} {k}" for k, v in sorted(j.exits.items())) or "-",
        )
    tables = [overview]
    steps_table = Table("journey", "milestone", "rung", "channel", "status", "count", title="Steps taken")
    for j in report.journeys:
        for step in j.steps.to_dict("records"):
            steps_table.add_row(
                j.journey,
                step["milestone"],
                step["rung"],
                step["channel"],
                step["status"],
                str(step["count"]),
            )
    if steps_table.row_count:
        tables.append(steps_table)
    if report.delivery is not None:
        d = report.delivery
        delivery = Table(
            "sent email",
            "sent sms",
            "reconciled",
            "suppressed",
            "failed",
            "expired",
            "held",
            title="Delivery",
            caption="expired: their day had passed, never sent; held: sent when due (`techtouch deliver`)",
            caption_justify="left",
        )
        delivery.add_row(
            str(d.sent.get("email", 0)),
            str(d.sent.get("sms", 0)),
            str(d.reconciled),
            str(d.suppressed),
            str(d.failed),
            str(d.expired),
            str(d.held),
        )
        tables.append(delivery)
    return tables
