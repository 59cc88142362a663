"""`techtouch reports refresh`: bring everyone's `/reports` rollup up to date now.

Runs do it after delivering (`techtouch run`, the Prefect cycle); this is for a sharded cycle, a
database filled another way (an import, a restore), or after changing the journeys' templates.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from techtouch.domain.clock import today
from techtouch.entrypoints.cli.app import app, application, out, parse_date, settings
from techtouch.services import report_rollup

reports_app = typer.Typer(help="The workspace reports' rollup.", no_args_is_help=True)
app.add_typer(reports_app, name="reports")


@reports_app.command("refresh")
def refresh(
    as_of: Annotated[str | None, typer.Option("--as-of", help="the day it counts up to (YYYY-MM-DD)")] = None,
    full: Annotated[
        bool, typer.Option("--full", help="recompute the whole history, not only what can change")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print what was done as JSON")] = False,
) -> None:
    """Recompute everyone's funnels, answer rates and CTA workload for /reports."""
    day = parse_date(as_of, "--as-of") or today(settings().zone)
    done = report_rollup.refresh_for(application(), day, full=full)
    summary = {
        "as_of": done.as_of.isoformat(),
        "refreshed_at": done.refreshed_at.isoformat(timespec="seconds"),
        "cohorts_from": None if done.cohorts_from is None else done.cohorts_from.isoformat(),
        "weeks_from": None if done.weeks_from is None else done.weeks_from.isoformat(),
        "seconds": done.seconds,
        "rows": done.rows,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    since = "the whole history" if done.cohorts_from is None else f"cohorts since {done.cohorts_from}"
    weeks = "every week" if done.weeks_from is None else f"weeks since {done.weeks_from}"
    rows = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in done.rows.items())
    out.print(
        f"reports refreshed for {day} in {done.seconds:.2f} s: {since}, {weeks} ({rows})", highlight=False
    )
