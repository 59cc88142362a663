"""CTA commands: `techtouch ctas` lists; `ctas show | start | done | snooze | assign | cancel | note`
work one CTA as a user (`--as EMAIL`, or TECHTOUCH_USER), like the CSM workspace does.

Every change goes through techtouch.services.ctas: the access rules (a CSM changes only their own
CTAs, a manager their team's and the queue's, ops nothing), then the lifecycle rules, then one
compare-and-set on the row with a history row naming the user. A refusal changes nothing and
exits 1 with the reason; a malformed option exits 2 (click's usage errors), like every command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import date
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from techtouch.domain.access import Actor
from techtouch.domain.clock import today
from techtouch.domain.statuses import CtaStatus
from techtouch.entrypoints.cli.app import UserError, app, application, out, parse_date
from techtouch.entrypoints.cli.journeys import SHOWN, _check_journey, _listing
from techtouch.services import ctas as service
from techtouch.services import users
from techtouch.services.app import App
from techtouch.services.listings import jsonable, list_ctas

ctas_app = typer.Typer(help="Calls-to-action for humans: list them, and work one as a user.")
app.add_typer(ctas_app, name="ctas")

CtaId = Annotated[int, typer.Argument(metavar="ID", help="the CTA's id (see `techtouch ctas`)")]
AsUser = Annotated[
    str,
    typer.Option(
        "--as",
        envvar="TECHTOUCH_USER",
        help="the user acting (email; recorded in the CTA's history); or set TECHTOUCH_USER",
    ),
]
AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="the day of the change (YYYY-MM-DD); default today in the team's zone"),
]
AsJson = Annotated[bool, typer.Option("--json", help="print the CTA as JSON")]


@ctas_app.callback(invoke_without_command=True)
def ctas(
    ctx: typer.Context,
    assignee: Annotated[str | None, typer.Option("--assignee", help="a CSM email or queue:<name>")] = None,
    journey: Annotated[str | None, typer.Option("--journey", help="only this journey")] = None,
    # An Enum: click refuses an unknown status and lists the valid ones (exit 2).
    status: Annotated[CtaStatus | None, typer.Option("--status", help="only this status")] = None,
    account: Annotated[str | None, typer.Option("--account", help="only this account")] = None,
    as_user: Annotated[
        str | None, typer.Option("--as", help="only the CTAs this user may see (email)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array")] = False,
) -> None:
    """Calls-to-action for humans, most urgent first: priority (high, medium, low), due date, id.

    Without a subcommand, lists them; `techtouch ctas show ID --as EMAIL` and the other
    subcommands work one."""
    if ctx.invoked_subcommand is not None:
        return
    tt = application()
    _check_journey(tt, journey)
    actor = _actor(tt, as_user) if as_user is not None else None
    rows = list_ctas(tt, assignee=assignee, journey=journey, status=status, account=account, actor=actor)
    columns = ("id", "due_date", "priority", "assignee", "account_id", "title", "status")
    _listing(rows, as_json, columns, f"CTAs (most urgent {SHOWN})", newest_last=False)


# --- working one CTA ------------------------------------------------------------------------------


def _actor(tt: App, email: str) -> Actor:
    with tt.engine.connect() as connection:
        try:
            return users.actor_for(connection, email)
        except (users.UnknownUser, users.DisabledUser) as exc:
            raise UserError(f"--as: {exc}") from None


def _acting(as_user: str, as_of: str | None) -> tuple[App, Actor, date]:
    """The App, the acting user and the day of the change."""
    tt = application()
    day = parse_date(as_of, "--as-of") or today(tt.settings.zone)
    return tt, _actor(tt, as_user), day


@contextmanager
def _refusals() -> Iterator[None]:
    """The service's refusals (unknown CTA, not yours, not allowed from its status, bad outcome)
    as user errors: the message, exit 1, nothing changed (each change is one transaction)."""
    try:
        yield
    except (service.UnknownCta, service.Forbidden, service.CtaRuleError) as exc:
        raise UserError(str(exc)) from None


def cta_dict(record: service.CtaRecord, day: date) -> dict[str, Any]:
    """A CTA as JSON: every field of the record (dates as ISO strings), and whether it is overdue."""
    values = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "scope"}
    values["outcomes"] = list(record.outcomes)
    values["overdue"] = record.overdue(day)
    return {key: jsonable(value) for key, value in values.items()}


def history_dicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: jsonable(value) for key, value in row.items()} for row in rows]


@ctas_app.command("show")
def show(cta_id: CtaId, as_user: AsUser, as_of: AsOf = None, as_json: AsJson = False) -> None:
    """One CTA: what to do, why it fired, the account, what it may close with, its history."""
    tt, actor, day = _acting(as_user, as_of)
    with _refusals(), tt.engine.connect() as connection:
        record = service.get(connection, cta_id, actor)
        changes = service.history(connection, cta_id)
    if as_json:
        typer.echo(json.dumps(cta_dict(record, day) | {"history": history_dicts(changes)}))
        return
    print_cta(record, changes, day)


def _done(record: service.CtaRecord, day: date, as_json: bool, said: str) -> None:
    if as_json:
        typer.echo(json.dumps(cta_dict(record, day)))
        return
    out.print(
        Text.assemble((f"CTA {record.id}", "bold"), f" ({record.title}, {record.account_name}): ", said),
        highlight=False,
    )


@ctas_app.command("start")
def start(cta_id: CtaId, as_user: AsUser, as_of: AsOf = None, as_json: AsJson = False) -> None:
    """Take a CTA in hand: open (or snoozed) → in_progress."""
    tt, actor, day = _acting(as_user, as_of)
    with _refusals():
        record = service.start(tt, cta_id, actor, today=day)
    _done(record, day, as_json, "in progress")


@ctas_app.command("done")
def done(
    cta_id: CtaId,
    as_user: AsUser,
    outcome: Annotated[str, typer.Option("--outcome", help="how it ended (`ctas show` lists them)")],
    note: Annotated[str | None, typer.Option("--note", help="what happened, for the next person")] = None,
    as_of: AsOf = None,
    as_json: AsJson = False,
) -> None:
    """Close a CTA with an outcome from its list (journeys read it) and an optional note."""
    tt, actor, day = _acting(as_user, as_of)
    with _refusals():
        record = service.complete(tt, cta_id, actor, outcome, note, today=day)
    _done(record, day, as_json, f"done, outcome {outcome}")


@ctas_app.command("snooze")
def snooze(
    cta_id: CtaId,
    as_user: AsUser,
    until: Annotated[
        str, typer.Option("--until", help="the day it comes back (YYYY-MM-DD), later than today")
    ],
    reason: Annotated[str, typer.Option("--reason", help="what you are waiting for")],
    as_of: AsOf = None,
    as_json: AsJson = False,
) -> None:
    """Put a CTA away until a later day, with a reason; the run of that day reopens it."""
    back = parse_date(until, "--until")
    assert back is not None  # a required option
    tt, actor, day = _acting(as_user, as_of)
    with _refusals():
        record = service.snooze(tt, cta_id, actor, back, reason, today=day)
    _done(record, day, as_json, f"snoozed until {back.isoformat()}")


@ctas_app.command("assign")
def assign(
    cta_id: CtaId,
    as_user: AsUser,
    to: Annotated[str, typer.Option("--to", help="the email of an enabled CSM or manager")],
    as_of: AsOf = None,
    as_json: AsJson = False,
) -> None:
    """Hand a CTA to someone else (a manager: within their team, or to themselves)."""
    tt, actor, day = _acting(as_user, as_of)
    with _refusals():
        record = service.assign(tt, cta_id, actor, to, today=day)
    _done(record, day, as_json, f"assigned to {record.assignee}")


@ctas_app.command("cancel")
def cancel(
    cta_id: CtaId,
    as_user: AsUser,
    note: Annotated[str, typer.Option("--note", help="why it is not worth doing")],
    as_of: AsOf = None,
    as_json: AsJson = False,
) -> None:
    """Close a CTA without an outcome: not worth doing, with a note saying why."""
    tt, actor, day = _acting(as_user, as_of)
    with _refusals():
        record = service.cancel(tt, cta_id, actor, note, today=day)
    _done(record, day, as_json, "cancelled")


@ctas_app.command("note")
def add_note(
    cta_id: CtaId,
    as_user: AsUser,
    note: Annotated[str, typer.Option("--note", help="the note")],
    as_of: AsOf = None,
    as_json: AsJson = False,
) -> None:
    """Add a note to a CTA's history without changing it."""
    tt, actor, day = _acting(as_user, as_of)
    with _refusals():
        record = service.note(tt, cta_id, actor, note, today=day)
    _done(record, day, as_json, "note added")


# --- the view of one CTA --------------------------------------------------------------------------

KIND_GLOSS = {
    "rung": "the escalation ladder reached its CTA rung",
    "personal": "a personal reach-out by the CSM",
    "branch": "a branch on the customer's answer",
    "request": "the customer asked for a person",
    "goal": "a goal of the journey",
}


def _text(value: Any) -> Text:
    return Text("-" if value is None or value == "" else str(value))


def print_cta(record: service.CtaRecord, changes: list[dict[str, Any]], day: date) -> None:
    """The CTA for a person: data always as Text, never as markup (a title may hold `[`)."""
    out.print(Text.assemble((record.title, "bold"), f"  (CTA {record.id})"))
    facts = Table.grid(padding=(0, 2))
    due = record.due_date.isoformat() + ("  OVERDUE" if record.overdue(day) else "")
    rows: list[tuple[str, Any]] = [
        ("account", f"{record.account_name} ({record.account_id})"),
        ("status", record.status),
        ("priority", record.priority),
        ("due", due),
        ("assignee", record.assignee),
        ("journey", record.journey),
        ("reason", record.reason),
        ("created", record.created_as_of.isoformat()),
    ]
    if record.snoozed_until is not None:
        rows.append(("snoozed until", f"{record.snoozed_until.isoformat()}: {record.snooze_reason or ''}"))
    if record.outcome is not None:
        rows.append(("outcome", record.outcome))
    if record.note:
        rows.append(("note", record.note))
    for label, value in rows:
        style = "bold red" if label == "due" and record.overdue(day) else ""
        facts.add_row(label, Text(str(value), style=style))
    out.print(facts)
    _print_why(record.why)
    if record.is_open():
        out.print(Text("closes with: " + ", ".join(record.outcomes)))
    _print_history(changes)


def why_lines(why: dict[str, Any]) -> list[str]:
    """What raised the CTA, from the `why` a run stored (older CTAs have `{}`; every key optional)."""
    lines: list[str] = []
    where = [f"{key} {why[key]}" for key in ("journey", "milestone", "rung", "branch") if why.get(key)]
    if where:
        lines.append(", ".join(where))
    kind = why.get("kind")
    if kind:
        lines.append(f"{kind}: {KIND_GLOSS[kind]}" if kind in KIND_GLOSS else str(kind))
    if why.get("condition"):
        lines.append(f"condition: {why['condition']}")
    values = why.get("values") or {}
    if isinstance(values, dict):
        lines += [f"  {name} = {value!r}" for name, value in values.items()]
    answer = why.get("answer")
    if isinstance(answer, dict):
        who = answer.get("contact_name") or answer.get("contact_id")
        said = f"answer: {answer.get('survey', 'survey')} = {answer.get('value')!r}"
        lines.append(
            said + (f" from {who}" if who else "") + (f" at {answer['at']}" if answer.get("at") else "")
        )
        if answer.get("comment"):
            lines.append(f"  comment: {answer['comment']}")
    return lines


def _print_why(why: dict[str, Any]) -> None:
    lines = why_lines(why)
    out.print(Text("Why", style="bold"))
    if not lines:
        out.print(Text("  not recorded (raised before techtouch kept why)"))
    for line in lines:
        out.print(Text("  " + line))


def _arrow(before: Any, after: Any) -> str:
    if before is None and after is None:
        return ""
    if before == after or before is None:
        return str(after or "")
    return f"{before} → {after}"


def _print_history(changes: list[dict[str, Any]]) -> None:
    table = Table(
        "day", "at (UTC)", "who", "what", "status", "assignee", "outcome", "note",
        title=f"History ({len(changes)})", box=box.SIMPLE, title_justify="left",
    )  # fmt: skip
    for change in changes:
        at = change["at"]
        table.add_row(
            _text(change["as_of"]),
            _text(at.strftime("%Y-%m-%d %H:%M") if at is not None else None),
            _text(change["actor"]),
            _text(change["action"]),
            _text(_arrow(change["from_status"], change["to_status"])),
            _text(_arrow(change["from_assignee"], change["to_assignee"])),
            _text(change["outcome"]),
            _text(change["note"]),
        )
    out.print(table)
