"""Rich views of what the services return: the CLI's tables and panels (no logic, no queries)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from techtouch.services.runner import RunReport
from techtouch.services.simulate import SimulationResult


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
            ", ".join(f"{k}: {v}" for k, v in sorted(j.exits.items())) or "-",
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


def print_preview(console: Console, result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['journey']}[/bold] for account {result['account_id']} on {result['as_of']}")
    pos = result["position"]
    status = pos["status"] if isinstance(pos["status"], str) else "not enrolled"
    console.print(
        f"position: {status}; milestone {pos['milestone']}; phase {pos['phase']}; step {pos['step']}; "
        f"next due {pos['next_due']}{' (paused)' if result['paused'] else ''}"
    )
    table = Table("condition", "source", "value", "because", title="Why")
    for label, source, value, names in result["conditions"]:
        because = ", ".join(f"{k}={v}" for k, v in names.items())
        table.add_row(label, source, "[green]true[/green]" if value else "[red]false[/red]", because)
    console.print(table)
    if not result["actions"]:
        console.print("nothing happens today")
    for action in result["actions"]:
        console.print(
            f"→ {action['kind']} {action['milestone']}.{action['rung']} via {action['channel']}"
            + (f" ({action['title']})" if action.get("title") else "")
        )
    if result["capped"]:
        console.print("the frequency cap defers these messages to a later day")
    for message in result["messages"]:
        console.print(
            Panel(
                message["body"],
                title=f"{message['channel']} {message['key']}",
                subtitle=f"send at {message['send_at']}",
            )
        )


def print_simulation(console: Console, result: SimulationResult) -> None:
    end = result.start + timedelta(days=result.days - 1)
    funnel = Table(
        "journey",
        "milestone",
        "rung",
        "channel",
        "touches",
        "skipped",
        "opened",
        title=f"Funnel {result.start} → {end}",
    )
    for step in result.funnel.to_dict("records"):
        funnel.add_row(
            step["journey"],
            step["milestone"],
            step["rung"],
            step["channel"],
            str(step["touches"]),
            str(step["skipped"]),
            str(int(step["opened"])) if step["channel"] == "email" else "-",
        )
    console.print(funnel)
    if not result.exits.empty:
        exits = Table("journey", "exit", "enrollments", title="Exits")
        for exit_row in result.exits.to_dict("records"):
            exits.add_row(exit_row["journey"], str(exit_row["exit_reason"]), str(exit_row["count"]))
        console.print(exits)
    if result.cta_load.empty:
        console.print("no CTAs created")
    else:
        frame = result.cta_load
        if len(frame.index) < len(frame.columns):  # few CSMs, many weeks: weeks as rows fit a terminal
            frame = frame.T
        load = Table(
            str(frame.index.name or ""), *map(str, frame.columns), "total", title="CTAs per CSM per ISO week"
        )
        for label, counts in frame.iterrows():
            load.add_row(str(label), *(str(int(v)) for v in counts), str(int(counts.sum())))
        console.print(load)
    console.print(f"simulated database: {result.database}")


def print_account(console: Console, detail: dict[str, Any]) -> None:
    account = detail["account"]
    console.print(f"[bold]{account['name']}[/bold] ({account['id']})")
    facts = Table.grid(padding=(0, 2))
    for key in ("segment", "arr", "start_date", "renewal_date", "csm_email", "timezone", "paused_until"):
        value = account[key]
        facts.add_row(key, f"{value:,.0f}" if key == "arr" else str(value if value is not None else "-"))
    console.print(facts)
    health = detail["health"]
    if health:
        change = health["usage_change_30d"]
        console.print(
            f"health {health['score']} ({health['color']}) on {health['as_of']}; "
            f"usage change 30d {'n/a' if change is None else f'{change:+.0%}'}; "
            f"logins 14d {health['logins_14d']}"
        )
        if len(detail["trend"]) > 1:
            console.print("trend " + " ".join(f"{t['score']:.0f}" for t in detail["trend"]))
    else:
        console.print("no health snapshot yet: run `techtouch health`")
    contacts = Table("id", "name", "role", "email", "phone", "email ok", "sms ok", "suppressed")
    for c in detail["contacts"]:
        contacts.add_row(
            c["id"],
            c["name"],
            c["role"],
            c["email"],
            c["phone"] or "-",
            "yes" if c["email_consent"] else "no",
            "yes" if c["sms_consent"] else "no",
            ", ".join(c["suppressed"]) or "-",
        )
    console.print(contacts)
