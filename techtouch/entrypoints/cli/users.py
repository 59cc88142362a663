"""People commands: `techtouch users add | list | disable | enable`.

A user is who signs in to the CSM workspace and who a CSM's emails sign as (name and title).
Passwords come from stdin when it is not a terminal (`echo "$PW" | techtouch users add ...`), so
they never appear in the process list or the shell history; at a terminal one is generated and
printed once. The hash is never printed, listed or logged.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from techtouch.adapters.passwords import generate_password
from techtouch.domain.access import Role
from techtouch.entrypoints.cli.app import UserError, app, application, out
from techtouch.services import users

users_app = typer.Typer(help="People who work CTAs: CSMs, managers, ops.", no_args_is_help=True)
app.add_typer(users_app, name="users")

# What `users list` shows (never the password hash).
USER_FIELDS = ("email", "name", "role", "title", "team", "disabled")


def _password_from_stdin() -> str | None:
    """The first line of stdin without its newline when stdin is not a terminal; None when it is
    a terminal or empty (nothing piped, e.g. `< /dev/null`): then a password is generated."""
    stream = sys.stdin
    if stream is None or stream.isatty():
        return None
    line = stream.readline()
    if line == "":
        return None
    return line.removesuffix("\n").removesuffix("\r")


@users_app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="their work email (they sign in with it)")],
    name: Annotated[str, typer.Option("--name", help='full name, e.g. "Jane Doe" (emails sign with it)')],
    role: Annotated[Role, typer.Option("--role", help="csm: own CTAs; manager: team + queue; ops: read")],
    title: Annotated[
        str | None, typer.Option("--title", help='job title under the signature, e.g. "Senior CSM"')
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="team name (a manager sees their team)")] = None,
) -> None:
    """Add a user. The password is read from stdin (first line) when piped, else generated and
    printed once."""
    try:
        address = users.normalize_email(email)
    except users.UserError as exc:
        raise typer.BadParameter(str(exc), param_hint="EMAIL") from None
    piped = _password_from_stdin()
    password = piped if piped is not None else generate_password()
    tt = application()
    try:
        user = users.add_user(
            tt, address, name=name, role=role.value, password=password, title=title, team=team
        )
    except users.UserError as exc:
        raise UserError(str(exc)) from None
    described = f"added {user.role} {user.email} ({user.name}{', ' + user.title if user.title else ''})"
    out.print(described + (f", team {user.team}" if user.team else ""), markup=False, highlight=False)
    if piped is None:
        out.print(f"password: {password}", markup=False, highlight=False)
        out.print(
            "this password will not be shown again: give it to them now (they sign in at /login)",
            markup=False,
            highlight=False,
        )


@users_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array")] = False,
) -> None:
    """Every user: email, name, role, title, team, disabled (by role, then email)."""
    rows = [{field: getattr(u, field) for field in USER_FIELDS} for u in users.list_users(application())]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(*USER_FIELDS, title=f"{len(rows)} user{'' if len(rows) == 1 else 's'}")
    for row in rows:
        cells = [("yes" if row[k] else "no") if k == "disabled" else row[k] for k in USER_FIELDS]
        table.add_row(*(Text("-" if v is None else str(v)) for v in cells))
    out.print(table)


def _set_disabled(email: str, disabled: bool) -> None:
    try:
        user = users.set_disabled(application(), email, disabled)
    except users.UnknownUser as exc:
        raise UserError(str(exc)) from None
    if disabled:
        out.print(
            f"disabled {user.email}: they cannot sign in, their sessions ended, and `--as` refuses them",
            markup=False,
            highlight=False,
        )
    else:
        out.print(f"enabled {user.email}: they can sign in again", markup=False, highlight=False)


@users_app.command("disable")
def disable(email: Annotated[str, typer.Argument(help="the user's email")]) -> None:
    """Stop a user from signing in (their open sessions end at once); their CTAs stay assigned."""
    _set_disabled(email, True)


@users_app.command("enable")
def enable(email: Annotated[str, typer.Argument(help="the user's email")]) -> None:
    """Let a disabled user sign in again."""
    _set_disabled(email, False)
