"""An account's story (`techtouch accounts show`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_account(console: Console, detail: dict[str, Any]) -> None:
    account = detail["account"]
    console.print(f"[bold]{account['name']}[/bold] ({account['id']})")
    facts = Table.grid(padding=(0, 2))
    for key in ("segment", "arr", "start_date", "renewal_date", "csm_email", "timezone", "paused_until"):
        value = account[key]
        facts.add_row(key, f"{value:,.0f}" if key == "arr" else str(value if value is not None else "-"))
    console.print(facts)
    health = detail["health"]
    if health:
        change = health["usage_change_30d"]
        console.print(
            f"health {health['score']} ({health['color']}) on {health['as_of']}; "
            f"usage change 30d {'n/a' if change is None else f'{change:+.0%}'}; "
            f"logins 14d {health['logins_14d']}"
        )
        if len(detail["trend"]) > 1:
            console.print("trend " + " ".join(f"{t['score']:.0f}" for t in detail["trend"]))
    else:
        console.print("no health snapshot yet: run `techtouch health`")
    contacts = Table("id", "name", "role", "email", "phone", "email ok", "sms ok", "suppressed")
    for c in detail["contacts"]:
        contacts.add_row(
            c["id"],
            c["name"],
            c["role"],
            c["email"],
            c["phone"] or "-",
            "yes" if c["email_consent"] else "no",
            "yes" if c["sms_consent"] else "no",
            ", ".join(c["suppressed"]) or "-",
        )
    console.print(contacts)
