"""The simulator's funnel, exits and CTA load (`techtouch simulate`, `make demo`)."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from techtouch.services.simulate import SimulationResult

# The funnel's numbers and its rows that are not plain ladder rungs (the engine: domain/decide.py).
FUNNEL_CAPTION = (
    "touches: an email or SMS per recipient, a CTA or a skip per account; skipped: the channel "
    "reached no recipient (no phone, no consent, no valid address).\n"
    "personal rows: a high-touch account's milestone, handed to its CSM as one CTA "
    '("Reach out personally: …") instead of the automated emails and SMS.\n'
    "goal rows: the journey's goal was met (the rung names the goal) and its closing message went "
    "out (a CTA for high-touch accounts); the enrollment ends there.\n"
    "branch_… rows: a follow-up on a survey answer (a message, or a CTA for the CSM)."
)


def print_simulation(console: Console, result: SimulationResult) -> None:
    end = result.start + timedelta(days=result.days - 1)
    funnel = Table(title=f"Funnel {result.start} → {end}", caption=FUNNEL_CAPTION, caption_justify="left")
    for name in ("journey", "milestone", "rung", "channel"):  # names are never cut; headers may fold
        funnel.add_column(name, no_wrap=True)
    for name in ("touches", "skipped", "opened"):
        funnel.add_column(name, justify="right", overflow="fold")
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
        # Always one row per ISO week in time order (2026-W52 before 2027-W01), one column per CSM.
        frame = result.cta_load
        load = Table(  # CSM addresses come from the data: escaped, never markup
            str(frame.index.name or ""),
            *(escape(str(c)) for c in frame.columns),
            "total",
            title="CTAs per CSM per ISO week",
        )
        for label, counts in frame.iterrows():
            load.add_row(str(label), *(str(int(v)) for v in counts), str(int(counts.sum())))
        console.print(load)
    if result.database:  # None: a temporary copy, removed when the simulation ended
        console.print(f"simulated database: {result.database}", markup=False, highlight=False)
