"""The preview of one account in one journey (`techtouch preview`).

Everything from the data and the journey files (ids, conditions, titles, rendered messages) is
printed as plain text or escaped, never read as markup: `Acme [/] Corp` prints as it is.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def _shown(value: Any) -> str:
    """A value as the user reads it: missing (None) is "-", never "nan" or "None"."""
    return "-" if value is None else escape(str(value))


def print_preview(console: Console, result: dict[str, Any]) -> None:
    console.print(
        f"[bold]{escape(str(result['journey']))}[/bold] for account {escape(str(result['account_id']))} "
        f"on {result['as_of']}"
    )
    if result.get("enrolled", True):
        pos = result["position"]
        console.print(
            f"position: {_shown(pos['status'])}; milestone {_shown(pos['milestone'])}; "
            f"phase {_shown(pos['phase'])}; step {_shown(pos['step'])}; next due {_shown(pos['next_due'])}"
            f"{' (paused)' if result['paused'] else ''}"
        )
    else:
        _print_entry(console, result["journey"], result["entry"])
    table = Table("condition", "source", "value", "because", title="Why")
    for label, source, value, names in result["conditions"]:
        because = ", ".join(f"{k}={'-' if v is None else v}" for k, v in names.items())
        table.add_row(
            Text(str(label)),
            Text(str(source)),
            "[green]true[/green]" if value else "[red]false[/red]",
            Text(because),
        )
    console.print(table)
    if not result["actions"]:
        console.print("nothing happens today")
    for action in result["actions"]:
        console.print(
            f"→ {action['kind']} {action['milestone']}.{action['rung']} via {action['channel']}"
            + (f" ({action['title']})" if action.get("title") else ""),
            markup=False,
        )
    if result["capped"]:
        console.print("the frequency cap defers these messages to a later day")
    for message in result["messages"]:
        console.print(
            Panel(
                Text(str(message["body"])),
                title=Text(f"{message['channel']} {message['key']}"),
                subtitle=Text(f"send at {message['send_at']}"),
            )
        )


def _print_entry(console: Console, journey: str, entry: dict[str, Any]) -> None:
    """Not enrolled: what makes the account enter, the values today, and the verdict."""
    previous = entry["previous"]
    if previous is None:
        console.print(
            f"not enrolled in {escape(journey)}: enters when `{escape(entry['condition'])}`", soft_wrap=True
        )
    else:
        ended = f"{previous['status']} on {_shown(previous['exited_as_of'])}"
        if previous["exit_reason"]:
            ended += f" ({escape(str(previous['exit_reason']))})"
        console.print(f"not enrolled in {escape(journey)}: the last enrollment {ended}", soft_wrap=True)
        if entry["reentry_after_days"] is None:
            console.print("re-entry: never (an account enters this journey once)")
        else:
            console.print(
                f"re-entry: {entry['reentry_after_days']} days after it ended, "
                f"from {_shown(entry['reenter_from'])}; then enters when `{escape(entry['condition'])}`",
                soft_wrap=True,
            )
    values = ", ".join(f"{name} = {_shown(value)}" for name, value in entry["values"].items())
    blockers = []
    if not entry["in_audience"]:
        audience = escape(", ".join(entry["audience"]))
        blockers.append(f"segment {_shown(entry['segment'])} is not in its audience ({audience})")
    if not entry["may_enter"]:
        blockers.append(
            "it enters once"
            if entry["reentry_after_days"] is None
            else f"it may re-enter from {_shown(entry['reenter_from'])}"
        )
    if entry["would_enter"]:
        verdict = "would enter today"
    else:
        verdict = "would not enter" + (f": {'; '.join(blockers)}" if blockers else "")
    console.print(f"today {values} → {verdict}" if values else f"→ {verdict}", soft_wrap=True)
