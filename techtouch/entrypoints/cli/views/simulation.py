"""The simulator's funnel, exits and CTA load (`techtouch simulate`, `make demo`)."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console
from rich.table import Table

from techtouch.services.simulate import SimulationResult


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
