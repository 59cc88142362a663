"""Journey commands: check, preview, run, simulate, touches (`ctas` lives in ctas.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from techtouch.bootstrap import ConfigurationError, journey_paths, load_journeys
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.clock import today
from techtouch.domain.spec import JourneyErrors
from techtouch.domain.statuses import TouchListingStatus
from techtouch.entrypoints.cli.app import (
    UserError,
    app,
    application,
    err,
    out,
    parse_date,
    replay_instant,
    settings,
)
from techtouch.entrypoints.cli.views import print_preview, print_simulation, report_tables
from techtouch.services.app import App
from techtouch.services.listings import known_journeys, list_touches


def _catalog(tt: App | None = None, paths: list[Path] | None = None) -> dict[str, CompiledJourney]:
    try:
        return tt.catalog if tt is not None else load_journeys(settings(), paths)
    except JourneyErrors as exc:
        for error in exc.errors:
            err.print(str(error), highlight=False, markup=False, soft_wrap=True)
        raise UserError(f"{len(exc.errors)} problem(s) in journey files; run `techtouch check`") from None


def _pick(catalog: dict[str, CompiledJourney], names: list[str], all_: bool) -> list[CompiledJourney]:
    from techtouch.services.runner import UnknownJourney, select_journeys

    if all_ and names:
        raise typer.BadParameter("give journey names or --all, not both")
    if not all_ and not names:
        raise typer.BadParameter("name at least one journey, or --all")
    try:
        return select_journeys(catalog, settings(), None if all_ else names)
    except UnknownJourney as exc:
        raise UserError(str(exc)) from None


@app.command("check")
def check(
    paths: Annotated[list[Path] | None, typer.Argument(help="journey files or folders")] = None,
) -> None:
    """Validate journeys and render every template they use; one `file:line:col: message` per problem."""
    from techtouch.services.check import check_journeys

    cfg = settings()
    problems, catalog = check_journeys(cfg, list(paths) if paths else journey_paths(cfg))
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise typer.Exit(1)
    for journey in catalog.values():
        out.print(f"{journey.id} ({journey.path}): {_ladder_picture(journey)}", highlight=False, markup=False)
    out.print(f"{len(catalog)} journey{'' if len(catalog) == 1 else 's'} ok")


def _ladder_picture(journey: CompiledJourney) -> str:
    parts = []
    for m in journey.milestones:
        rungs = " → ".join(f"{r.channel}{'(' + r.sender + ')' if r.sender else ''}" for r in m.spec.ladder)
        parts.append(f"{m.spec.id}[{rungs}]")
    return " ⇒ ".join(parts)


@app.command("run")
def run(
    journeys: Annotated[list[str] | None, typer.Argument(help="journey ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every journey, in priority order")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="the day to run (YYYY-MM-DD)")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="decide and show; write and send nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    deliver_at: Annotated[
        str | None,
        typer.Option(
            "--deliver-at",
            help="deliver as at this instant (ISO 8601 with an offset), to rehearse a past or future "
            "day, as the daily flow's deliver_at; outbox only",
        ),
    ] = None,
) -> None:
    """One daily run: enter, escalate, exit; record touches and CTAs; deliver what is due."""
    from techtouch.services import report_rollup
    from techtouch.services.day import run_day
    from techtouch.services.summary import report_dict

    cfg = settings()
    day = parse_date(as_of, "--as-of") or today(cfg.zone)
    tt = application()
    catalog = _catalog(tt)
    chosen = _pick(catalog, journeys or [], all_)
    now = replay_instant(tt, deliver_at, "--deliver-at")
    try:
        report = run_day(tt, chosen, day, dry_run=dry_run, now=now)
    except ConfigurationError as exc:
        raise UserError(str(exc)) from None
    if not dry_run and not report.empty:  # /reports shows everyone's numbers as of this run
        report.reports_seconds = report_rollup.refresh_for(tt, day).seconds
    if report.empty:
        where = tt.engine.url.render_as_string(hide_password=True)
        err.print(
            f"[yellow]warning:[/yellow] no accounts in {escape(where)}: nothing to run. "
            "Is TECHTOUCH_DATABASE_URL the right database, and were accounts imported "
            "(`techtouch import accounts FILE.csv`)?",
            highlight=False,
            soft_wrap=True,
        )
    if as_json:
        typer.echo(json.dumps(report_dict(report), default=str))
        return
    for table in report_tables(report):
        out.print(table)


@app.command("preview")
def preview(
    journey: Annotated[str, typer.Argument(help="journey id")],
    account: Annotated[str, typer.Option("--account", help="account id")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="the day (YYYY-MM-DD)")] = None,
) -> None:
    """What would happen for one account and why: condition values and rendered messages."""
    from techtouch.services.preview import preview_account

    cfg = settings()
    day = parse_date(as_of, "--as-of") or today(cfg.zone)
    tt = application()
    catalog = _catalog(tt)
    if journey not in catalog:
        raise UserError(f"unknown journey {journey!r}; known: {', '.join(catalog)}")
    result = preview_account(tt, catalog[journey], account, day)
    if result is None:
        raise UserError(f"no account with id {account!r}")
    print_preview(out, result)


@app.command("touches")
def touches(
    account: Annotated[str | None, typer.Option("--account", help="only this account")] = None,
    journey: Annotated[str | None, typer.Option("--journey", help="only this journey")] = None,
    # An Enum type: click validates the value and lists the valid ones for an unknown one (exit 2).
    # A claim state (`sent`) or a provider verdict (`delivered`, `bounced`): either column matches.
    status: Annotated[
        TouchListingStatus | None,
        typer.Option("--status", help="only this status or provider verdict (delivery_status)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array")] = False,
) -> None:
    """Touches (messages and CTAs) recorded so far, oldest first (by run day)."""
    tt = application()
    _check_journey(tt, journey)
    rows = list_touches(tt, account=account, journey=journey, status=status)
    columns = (
        "as_of",
        "account_id",
        "journey",
        "milestone",
        "rung",
        "channel",
        "sender",
        "status",
        "delivery_status",
    )
    _listing(rows, as_json, columns, f"touches (newest {SHOWN})", newest_last=True)


SHOWN = 200


def _listing(
    rows: list[dict[str, Any]], as_json: bool, columns: tuple[str, ...], title: str, newest_last: bool
) -> None:
    """JSON for scripts (every row, every field), a table of the newest rows for people."""
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(*columns, title=f"{len(rows)} {title}")
    for row in rows[-SHOWN:] if newest_last else rows[:SHOWN]:
        table.add_row(*(Text(str("-" if row[k] is None else row[k])) for k in columns))  # data, not markup
    out.print(table)


def _check_journey(tt: App, journey: str | None) -> None:
    """An unknown --journey is a usage error listing the known ones (exit 2, like --status)."""
    if journey is None:
        return
    known = known_journeys(tt)
    if journey not in known:
        listed = ", ".join(repr(j) for j in known) or "none yet"
        raise typer.BadParameter(f"unknown journey {journey!r}; known: {listed}", param_hint="'--journey'")


@app.command("simulate")
def simulate(
    start: Annotated[str, typer.Option("--from", help="first simulated day (YYYY-MM-DD)")],
    days: Annotated[int, typer.Option("--days", min=1, max=730, help="how many days")],
    journey: Annotated[list[str] | None, typer.Option("--journey", help="only these journeys")] = None,
    accounts: Annotated[
        int | None, typer.Option("--accounts", help="simulate on a fresh seeded base")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed for the base and the responses")] = 0,
    open_rate: Annotated[float, typer.Option("--open-rate", min=0, max=1)] = 0.45,
    click_rate: Annotated[float, typer.Option("--click-rate", min=0, max=1)] = 0.15,
    answer_rate: Annotated[float, typer.Option("--answer-rate", min=0, max=1)] = 0.25,
    configure_rate: Annotated[float, typer.Option("--configure-rate", min=0, max=1)] = 0.12,
    recovery_rate: Annotated[float, typer.Option("--recovery-rate", min=0, max=1)] = 0.08,
    as_json: Annotated[bool, typer.Option("--json", help="print the funnel as JSON")] = False,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="keep the temporary copy (it holds every contact's data) and say where"),
    ] = False,
) -> None:
    """Replay days on a copy of the database (or a seeded base) and forecast the funnel and CTA load.

    The copy is temporary: removed when the simulation ends, unless --keep."""
    from techtouch.services.simulate import ResponseModel, simulate_days

    cfg = settings()
    first = parse_date(start, "--from") or today(cfg.zone)
    tt = application()
    catalog = _catalog(tt)
    chosen = _pick(catalog, journey or [], not journey)
    model = ResponseModel(
        open_rate=open_rate,
        click_rate=click_rate,
        answer_rate=answer_rate,
        configure_rate=configure_rate,
        recovery_rate=recovery_rate,
        seed=seed,
    )
    result = simulate_days(
        tt,
        chosen,
        first,
        days,
        model,
        accounts=accounts,
        keep=keep,
        progress=lambda d: err.print(f"simulated {d}", highlight=False) if not as_json else None,
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
        return
    print_simulation(out, result)
    if result.kept is not None:
        out.print(
            f"kept the simulation's copy in {result.kept}: it holds every contact's data; "
            "delete it when done",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
