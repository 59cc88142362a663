"""Foundation commands: db upgrade, import, seed, health, accounts show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from techtouch.adapters.db import migrate
from techtouch.domain.clock import today
from techtouch.entrypoints.cli.app import (
    UserError,
    accounts_app,
    app,
    application,
    db_app,
    err,
    out,
    parse_date,
    replay_instant,
)
from techtouch.entrypoints.cli.views import print_account
from techtouch.services import reports

AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="the day to compute for (YYYY-MM-DD); default today in the team's zone"),
]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (safe to repeat)."""
    engine = application(check_schema=False).engine
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    if before == after:
        out.print(f"database already at revision {after}")
    else:
        out.print(f"database upgraded from {before or 'empty'} to {after}")


@app.command("import")
def import_file(
    kind: Annotated[str, typer.Argument(help="accounts | contacts | usage | events")],
    path: Annotated[Path, typer.Argument(help="CSV file with a header row, UTF-8")],
) -> None:
    """Load a CSV file; any bad row rejects the whole file and lists every problem."""
    from techtouch.services.importer import KINDS, ImportFailed, import_csv

    if kind not in KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(KINDS)}", param_hint="KIND")
    tt = application()
    cfg, engine = tt.settings, tt.engine
    with _progress() as progress:
        task = progress.add_task(f"importing {kind} from {escape(path.name)}", total=None)
        try:
            result = import_csv(
                engine,
                kind,
                path,
                default_timezone=cfg.timezone,
                progress=lambda n: progress.advance(task, n),
            )
        except ImportFailed as exc:
            for problem in exc.problems:
                err.print(problem, highlight=False, markup=False, soft_wrap=True)
            raise UserError(str(exc)) from None
    out.print(f"imported {result.rows} {kind} rows from {path}", markup=False, highlight=False)


@app.command("seed")
def seed_command(
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="how many accounts")],
    seed: Annotated[int, typer.Option("--seed", help="random seed; same seed, same base")] = 0,
    days: Annotated[int, typer.Option("--days", min=1, help="days of usage history")] = 90,
    as_of: AsOf = None,
    replace: Annotated[bool, typer.Option("--replace", help="delete existing data first")] = False,
) -> None:
    """Create a synthetic long-tail customer base (demo, simulations, benchmarks)."""
    from techtouch.services.seed import SeedRefused
    from techtouch.services.seed import seed as run_seed

    tt = application()
    cfg, engine = tt.settings, tt.engine
    anchor = parse_date(as_of, "--as-of") or today(cfg.zone)
    with _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, n: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"seeding {stage}", total=None)
            progress.advance(tasks[stage], n)

        try:
            summary = run_seed(
                engine,
                accounts=accounts,
                seed=seed,
                days=days,
                as_of=anchor,
                high_touch_arr=cfg.high_touch_arr,
                replace=replace,
                progress=report,
            )
        except SeedRefused:
            raise UserError("the database already holds accounts; add --replace to start over") from None
    out.print(
        f"seeded {summary.accounts} accounts, {summary.contacts} contacts, "
        f"{summary.usage_rows} usage rows, {summary.events} events in {summary.seconds:.1f}s"
    )


@app.command("health")
def health_command(
    as_of: AsOf = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the distribution as JSON")] = False,
) -> None:
    """Score every account's health for a day and store the snapshot (trends read it)."""
    from techtouch.services.health import compute_health

    tt = application()
    day = parse_date(as_of, "--as-of") or today(tt.settings.zone)
    scored = compute_health(tt.engine, day, tt.instant(day), tt.settings.health)
    summary = reports.health_distribution(scored)
    if as_json:
        out.print_json(json.dumps({"as_of": day.isoformat(), **summary}))
        return
    table = Table(title=f"Health on {day.isoformat()} ({summary['accounts']} accounts)")
    for column in ("color", "accounts", "share"):
        table.add_column(column)
    for color in ("green", "yellow", "red"):
        count = summary["colors"][color]
        share = count / summary["accounts"] if summary["accounts"] else 0.0
        table.add_row(color, str(count), f"{share:.0%}")
    out.print(table)
    out.print(
        f"median score {summary['median_score']}; "
        f"{summary['usage_drop_30pct']} accounts with usage down 30 % or more over 30 days"
    )


@app.command("deliver")
def deliver_command(
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="deliver as at this instant (ISO 8601 with an offset), to replay or test a day; "
            "outbox only: a provider sends at its own time",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the delivery report as JSON")] = False,
) -> None:
    """Send what has fallen due (the hourly `deliver` deployment, by hand); expire what is past its day."""
    from techtouch.services.app import ConfigurationError
    from techtouch.services.day import deliver_due

    tt = application()
    now = replay_instant(tt, at, "--at")
    try:
        report = deliver_due(tt, now=now)
    except ConfigurationError as exc:
        raise UserError(str(exc)) from None
    counts = {
        "sent": dict(report.sent),
        "reconciled": report.reconciled,
        "suppressed": report.suppressed,
        "failed": report.failed,
        "expired": report.expired,
        "held": report.held,
        "errors": report.errors[:50],
    }
    if as_json:
        typer.echo(json.dumps(counts))
        return
    out.print(
        f"sent {report.sent.get('email', 0)} email and {report.sent.get('sms', 0)} SMS; "
        f"{report.expired} expired (their day had passed), {report.held} held until due, "
        f"{report.suppressed} suppressed, {report.failed} failed",
        highlight=False,
    )


@accounts_app.command("show")
def accounts_show(
    account_id: Annotated[str, typer.Argument(help="the account's id")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """An account's story: contacts, health, journeys, touches, CTAs, survey answers, suppressions."""
    detail = reports.account_detail(application().engine, account_id)
    if detail is None:
        raise UserError(f"no account with id {account_id!r}")
    if as_json:
        typer.echo(json.dumps(detail, default=str, indent=2))
        return
    print_account(out, detail)
