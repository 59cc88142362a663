"""The preview of one account in one journey (`techtouch preview`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table


def print_preview(console: Console, result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['journey']}[/bold] for account {result['account_id']} on {result['as_of']}")
    pos = result["position"]
    status = pos["status"] if isinstance(pos["status"], str) else "not enrolled"
    console.print(
        f"position: {status}; milestone {pos['milestone']}; phase {pos['phase']}; step {pos['step']}; "
        f"next due {pos['next_due']}{' (paused)' if result['paused'] else ''}"
    )
    table = Table("condition", "source", "value", "because", title="Why")
    for label, source, value, names in result["conditions"]:
        because = ", ".join(f"{k}={v}" for k, v in names.items())
        table.add_row(label, source, "[green]true[/green]" if value else "[red]false[/red]", because)
    console.print(table)
    if not result["actions"]:
        console.print("nothing happens today")
    for action in result["actions"]:
        console.print(
            f"→ {action['kind']} {action['milestone']}.{action['rung']} via {action['channel']}"
            + (f" ({action['title']})" if action.get("title") else "")
        )
    if result["capped"]:
        console.print("the frequency cap defers these messages to a later day")
    for message in result["messages"]:
        console.print(
            Panel(
                message["body"],
                title=f"{message['channel']} {message['key']}",
                subtitle=f"send at {message['send_at']}",
            )
        )
