"""Typer application, shared options and the error boundary (any error: message, non-zero exit)."""

from __future__ import annotations

import logging
import sys
from datetime import date, datetime

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from techtouch.services.app import App
from techtouch.settings import ConfigError, Settings, load_settings

app = typer.Typer(
    help="Tech-touch customer-success journeys as code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
accounts_app = typer.Typer(help="Look at accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")

out = Console()
err = Console(stderr=True)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{_setting_source(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise UserError(f"bad settings: {problems}") from None
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    except UnicodeDecodeError as exc:  # the TOML file (pydantic-settings reads it as UTF-8)
        raise UserError(f"{_config_file()}: not UTF-8 (byte {exc.start}): save the file as UTF-8") from None


def _config_file() -> str:
    from techtouch.settings import config_file

    return str(config_file())


def _setting_source(loc: tuple[int | str, ...]) -> str:
    """Where a bad value came from: its TECHTOUCH_* variable, else its key in the config file."""
    import os
    import tomllib

    from techtouch.settings import config_file

    variable = f"TECHTOUCH_{'__'.join(map(str, loc)).upper()}"
    if variable in os.environ or not loc:
        return variable
    path = config_file()
    try:
        data: object = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return variable
    for depth, part in enumerate(loc):
        if not isinstance(data, dict) or (str(part) not in data and depth == 0):
            return variable
        data = data.get(str(part))  # a missing key inside a table of the file: the file's problem
    return f"{path}: {'.'.join(map(str, loc))}"


def application(*, check_schema: bool = True) -> App:
    """The command's App (bootstrap.build), with schema and configuration problems as user errors."""
    from techtouch import bootstrap
    from techtouch.adapters.db.migrate import SchemaOutdated

    try:
        return bootstrap.build(settings(), check_schema=check_schema)
    except SchemaOutdated as exc:
        raise UserError(str(exc)) from None


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date (YYYY-MM-DD): {value!r}", param_hint=option) from None


def replay_instant(tt: App, value: str | None, option: str) -> datetime | None:
    """A delivery instant given on the command line (`--at`, `--deliver-at`), checked as
    services.day.replay_clock checks it: aware, and with the outbox on both channels."""
    from techtouch.services.day import ReplayRefused, replay_clock

    if value is None:
        return None
    try:
        return replay_clock(tt, datetime.fromisoformat(value))
    except ReplayRefused as exc:
        raise UserError(str(exc)) from None
    except ValueError:
        raise typer.BadParameter(
            "must be an ISO 8601 instant, e.g. 2027-01-04T15:00+01:00", param_hint=option
        ) from None


def main() -> None:
    from techtouch.entrypoints.cli import commands, ctas, journeys, reports, serve, users  # noqa: F401  (registers)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()  # click handles usage errors (exit 2); other exceptions reach us
    except UserError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
