"""An account's story (`techtouch accounts show`): who it is, its contacts and health, then where
it stands in each journey, what it was sent, what a human must do, what it answered and which
channels are closed.

Everything from the data (names, titles, comments, ids) goes in as `Text`, never as markup, so
that an account named `Acme [/] Corp` prints as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Touches shown in the table, newest first (`--json` carries every one).
TOUCH_ROWS = 50
# Survey answers and comments shown in the table, latest first (`--json` carries every one).
ANSWER_ROWS = 50
NONE_YET = "none yet"


def print_account(console: Console, detail: dict[str, Any]) -> None:
    account = detail["account"]
    console.print(Text.assemble((str(account["name"]), "bold"), f" ({account['id']})"))
    facts = Table.grid(padding=(0, 2))
    for key in ("segment", "arr", "start_date", "renewal_date", "csm_email", "timezone", "paused_until"):
        value = account[key]
        facts.add_row(key, _text(f"{value:,.0f}" if key == "arr" and value is not None else value))
    console.print(facts)
    _print_health(console, detail)
    _print_contacts(console, detail["contacts"])
    _print_journeys(console, detail["journeys"])
    _print_touches(console, detail["touches"])
    _print_ctas(console, detail["ctas"])
    _print_answers(console, detail["answers"])
    _print_suppressions(console, detail["suppressions"])


def _print_health(console: Console, detail: dict[str, Any]) -> None:
    health = detail["health"]
    if health:
        change = health["usage_change_30d"]
        console.print(
            f"health {health['score']} ({health['color']}) on {health['as_of']}; "
            f"usage change 30d {'n/a' if change is None else f'{change:+.0%}'}; "
            f"logins 14d {health['logins_14d']}",
            markup=False,
        )
        if len(detail["trend"]) > 1:
            console.print("trend " + " ".join(f"{t['score']:.0f}" for t in detail["trend"]), markup=False)
    else:
        console.print("no health snapshot yet: run `techtouch health`", markup=False)


def _print_contacts(console: Console, contacts: list[dict[str, Any]]) -> None:
    if not _heading(console, "Contacts", len(contacts)):
        return
    table = _table("id", "name", "role", "email", "phone", "email ok", "sms ok", "suppressed")
    for c in contacts:
        table.add_row(
            *_texts(
                c["id"],
                c["name"],
                c["role"],
                c["email"],
                c["phone"],
                "yes" if c["email_consent"] else "no",
                "yes" if c["sms_consent"] else "no",
                ", ".join(c["suppressed"]),
            )
        )
    console.print(table)


def _print_journeys(console: Console, journeys: list[dict[str, Any]]) -> None:
    if not _heading(console, "Journeys", len(journeys)):
        return
    table = _table("journey", "cycle", "status", "milestone", "position", "next due~", "entered~", "exited~")
    for e in journeys:
        status = e["status"] if e["exit_reason"] is None else f"{e['status']}: {e['exit_reason']}"
        table.add_row(
            *_texts(
                e["journey"],
                e["cycle"],
                status,
                e["milestone"],
                f"{e['phase']}, step {e['step']}",
                e["next_due"],
                e["entered_as_of"],
                e["exited_as_of"],
            )
        )
    console.print(table)


def _print_touches(console: Console, touches: list[dict[str, Any]]) -> None:
    if not _heading(console, "Touches", len(touches), shown=TOUCH_ROWS):
        return
    table = _table("as of~", "send at~", "journey", "milestone", "rung", "channel", "contact", "status")
    for t in touches[:TOUCH_ROWS]:
        table.add_row(
            *_texts(
                t["as_of"],
                _when(t["send_at"], day=t["as_of"]),
                t["journey"],
                t["milestone"],
                t["rung"],
                t["channel"],
                t["contact_id"],
                t["status"],
            )
        )
    console.print(table)


def _print_ctas(console: Console, ctas: list[dict[str, Any]]) -> None:
    if not _heading(console, "CTAs", len(ctas)):
        return
    table = _table("id", "journey", "reason", "title", "priority", "assignee", "status", "due~", "outcome")
    for c in ctas:
        table.add_row(
            *_texts(
                c["id"],
                c["journey"],
                c["reason"],
                c["title"],
                c["priority"],
                c["assignee"],
                c["status"],
                c["due_date"],
                c["outcome"],
            )
        )
    console.print(table)


def _print_answers(console: Console, answers: list[dict[str, Any]]) -> None:
    if not _heading(console, "Survey answers and comments", len(answers), shown=ANSWER_ROWS):
        return
    table = _table("when~", "contact", "survey", "answer", "comment")
    for a in answers[:ANSWER_ROWS]:
        table.add_row(
            *_texts(_when(a["occurred_at"]), a["contact_id"], a["survey"], a["answer"], a["comment"])
        )
    console.print(table)


def _print_suppressions(console: Console, suppressions: list[dict[str, Any]]) -> None:
    if not _heading(console, "Suppressions", len(suppressions)):
        return
    table = _table("contact", "channel", "reason", "since~")
    for s in suppressions:
        table.add_row(*_texts(s["contact_id"], s["channel"], s["reason"], _when(s["since"])))
    console.print(table)


def _heading(console: Console, title: str, count: int, *, shown: int | None = None) -> bool:
    """Print a section's title line; False (after saying so) when the section is empty."""
    console.print()
    heading = Text(title, style="bold")
    if count == 0:
        console.print(heading, Text(f": {NONE_YET}"), sep="")
        return False
    if shown is not None and count > shown:
        heading.append(f" (latest {shown} of {count}; --json has all)", style="not bold")
    else:
        heading.append(f" ({count})", style="not bold")
    console.print(heading)
    return True


def _table(*columns: str) -> Table:
    """A section's table; a column whose name ends in `~` holds dates, kept on one line."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for column in columns:
        if column.endswith("~"):
            table.add_column(column[:-1], no_wrap=True)
        else:  # long values wrap rather than lose their end
            table.add_column(column, overflow="fold")
    return table


def _texts(*values: Any) -> list[Text]:
    return [_text(value) for value in values]


def _text(value: Any) -> Text:
    """A cell of data: plain text, never markup; `-` for nothing."""
    return Text("-" if value is None or value == "" else str(value))


def _when(value: str | None, *, day: str | None = None) -> str | None:
    """An ISO instant as `YYYY-MM-DD HH:MM UTC`, or `HH:MM UTC` when it falls on `day` (ISO)."""
    if value is None:
        return None
    instant = datetime.fromisoformat(value)
    if instant.tzinfo is not None:
        instant = instant.astimezone(UTC)
    return instant.strftime("%H:%M UTC" if instant.date().isoformat() == day else "%Y-%m-%d %H:%M UTC")
