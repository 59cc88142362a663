"""`make demo`, library half: seed a small customer base, score it, and play the four journeys
over the 60 days before today (with simulated customer responses), so that today's run has
ladders mid-way, answers, exits and open CTAs. `flows/demo.py` then runs today on Prefect.

Everything lands in ./demo (SQLite database and outbox), so the demo never touches a real setup.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select

from techtouch import bootstrap
from techtouch.adapters import passwords
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Account
from techtouch.domain.clock import today
from techtouch.entrypoints.cli.views import print_simulation
from techtouch.services import reports, users
from techtouch.services.app import App
from techtouch.services.health import compute_health
from techtouch.services.seed import seed
from techtouch.services.simulate import ResponseModel, simulate_days
from techtouch.settings import load_settings

DEMO_DIR = Path("demo")
ACCOUNTS = 500
DAYS = 60
TEAM = "Customer Success"
MANAGER = "cs.lead@techtouch.example"  # also the owner of the team queue's digest
OPS = "ops@techtouch.example"
# The seeded CSMs (csm01@vendor.example, ...) get real names: the emails they send sign with them.
CSM_NAMES = (
    ("Casey Morgan", "Customer Success Manager"),
    ("Priya Raman", "Senior Customer Success Manager"),
    ("Jonas Weber", "Customer Success Manager"),
    ("Amara Okafor", "Customer Success Manager"),
    ("Luis Ortega", "Customer Success Manager"),
    ("Mei Chen", "Customer Success Manager"),
)


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    role: str
    password: str


def add_people(app: App, engine: Engine) -> list[DemoUser]:
    """A user per seeded CSM (with a name and title), their manager and an ops analyst, each with
    a fresh random password that the demo prints once at the end."""
    with engine.connect() as connection:
        csms = sorted(
            e for e in connection.execute(select(Account.csm_email).distinct()).scalars() if e is not None
        )
    made: list[DemoUser] = []
    people = [(email, *CSM_NAMES[i % len(CSM_NAMES)], "csm") for i, email in enumerate(csms)] + [
        (MANAGER, "Robin Lee", "Head of Customer Success", "manager"),
        (OPS, "Sam Patel", "CS Operations", "ops"),
    ]
    for email, name, title, role in people:
        password = passwords.generate_password()
        users.add_user(app, email, name=name, role=role, title=title, team=TEAM, password=password)
        made.append(DemoUser(email, name, role, password))
    return made


def prepare(console: Console) -> tuple[Path, Path, list[DemoUser]]:
    """Seed and simulate up to yesterday; returns (database, outbox, users) and sets the environment."""
    DEMO_DIR.mkdir(exist_ok=True)
    database = DEMO_DIR / "techtouch.db"
    outbox = DEMO_DIR / "outbox"
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        path.unlink(missing_ok=True)
    if outbox.exists():
        for file in sorted(outbox.rglob("*"), reverse=True):
            file.unlink() if file.is_file() else file.rmdir()
    os.environ["TECHTOUCH_DATABASE_URL"] = f"sqlite:///{database}"
    os.environ["TECHTOUCH_OUTBOX_DIR"] = str(outbox)
    os.environ.setdefault("TECHTOUCH_QUEUE_OWNER", MANAGER)
    # One secret for the demo's links and its workspace sessions, kept next to its database so that
    # `techtouch serve` on the demo verifies the links in the demo's outbox.
    secret = DEMO_DIR / "secret_key"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(32))
        secret.chmod(0o600)
    os.environ.setdefault("TECHTOUCH_SECRET_KEY", secret.read_text().strip())
    settings = load_settings()
    # The one explicit migration step of the demo (commands and flows refuse an outdated schema).
    upgrading = make_engine(settings.database_url)
    migrate.upgrade(upgrading)
    upgrading.dispose()
    app = bootstrap.build(settings)
    engine = app.engine

    start = today(settings.zone) - timedelta(days=DAYS)
    console.rule(f"1. Seeding {ACCOUNTS} accounts (history up to {start})")
    summary = seed(
        engine, accounts=ACCOUNTS, seed=7, days=90, as_of=start, high_touch_arr=settings.high_touch_arr
    )
    console.print(
        f"{summary.accounts} accounts, {summary.contacts} contacts, {summary.usage_rows:,} usage days, "
        f"{summary.events} events"
    )
    scored = compute_health(engine, start, app.instant(start), settings.health)
    _portfolio(console, engine, start, reports.health_distribution(scored))
    people = add_people(app, engine)
    console.print(
        f"{len(people)} users: {sum(p.role == 'csm' for p in people)} CSMs, a manager, an ops analyst"
    )

    console.rule(
        f"2. Playing the four journeys day by day, {start} → {start + timedelta(days=DAYS - 1)} "
        "(library, simulated answers)"
    )
    result = simulate_days(
        app,
        list(app.catalog.values()),
        start,
        DAYS,
        ResponseModel(seed=7),
        in_place=True,
        deliver=True,
        workdir=DEMO_DIR,
        progress=lambda day: console.print(f"  ran {day}", highlight=False) if day.day == 1 else None,
    )
    print_simulation(console, result)
    return database, outbox, people


def sign_in_here(console: Console, database: Path, outbox: Path, people: list[DemoUser]) -> None:
    """The inbox URL and the users to sign in with (their passwords, shown this once)."""
    env = (
        f"TECHTOUCH_DATABASE_URL=sqlite:///{database} TECHTOUCH_OUTBOX_DIR={outbox} "
        f"TECHTOUCH_SECRET_KEY=$(cat {DEMO_DIR / 'secret_key'})"
    )
    console.print("the CSM workspace: start it, then open the inbox and sign in", highlight=False)
    console.print(f"  {env} .venv/bin/techtouch serve", highlight=False, soft_wrap=True)
    url = load_settings().public_url.rstrip("/")
    console.print(f"  {url}/inbox", highlight=False, soft_wrap=True)
    shown = [p for p in people if p.role == "csm"][:1] + [p for p in people if p.role != "csm"]
    for person in shown:
        console.print(
            f"  {person.role:<8} {person.email}  password: {person.password}  ({person.name})",
            highlight=False,
            soft_wrap=True,
        )
    console.print("  (passwords are shown only now; `techtouch users add` makes more)", highlight=False)


def where_results_are(console: Console, database: Path, outbox: Path) -> None:
    emails = len(list((outbox / "email").glob("*.eml"))) if (outbox / "email").exists() else 0
    sms = sum(1 for _ in (outbox / "sms.jsonl").open()) if (outbox / "sms.jsonl").exists() else 0
    console.print(f"outbox: {outbox}/email/*.eml ({emails} emails), {outbox}/sms.jsonl ({sms} SMS)")
    env = f"TECHTOUCH_DATABASE_URL=sqlite:///{database} TECHTOUCH_OUTBOX_DIR={outbox}"
    console.print("look around:")
    for command in (
        "techtouch ctas --status open",
        "techtouch touches --journey renewal",
        "techtouch accounts show A000001",
        "techtouch preview renewal --account A000001",
    ):
        console.print(f"  {env} .venv/bin/{command}", highlight=False, soft_wrap=True)


def print_today(console: Console, result: dict[str, Any]) -> None:
    """The daily flow's result as a table of journeys and a sentence on delivery (never a dict)."""
    table = Table(
        title=f"Today's journeys ({result['as_of']})",
        caption="held back: what did not go out today, and why",
        caption_justify="left",
    )
    table.add_column("journey", no_wrap=True)
    for header in ("entered", "active", "CTAs"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("held back")
    for journey, counts in result["journeys"].items():
        held = [f"{reason}: {count}" for reason, count in counts["held_back"].items() if count]
        table.add_row(
            journey,
            str(counts["entered"]),
            str(counts["active"]),
            str(counts["ctas"]),
            "\n".join(held) or "none",
        )
    console.print(table)
    sent, failed = result.get("sent", {}), sum(result.get("failed", {}).values())
    emails, sms = int(sent.get("email", 0)), int(sent.get("sms", 0))
    console.print(
        f"Delivery: {emails} email{'' if emails == 1 else 's'} and {sms} SMS sent, "
        f"{failed or 'none'} failed.",
        highlight=False,
    )


def main() -> int:
    """Library-only demo (no Prefect): `python -m techtouch.entrypoints.demo`."""
    console = Console()
    database, outbox, people = prepare(console)
    console.rule("3. Where the results are")
    where_results_are(console, database, outbox)
    sign_in_here(console, database, outbox, people)
    return 0


def _portfolio(console: Console, engine: Engine, as_of: date, distribution: dict[str, Any]) -> None:
    views = reports.portfolio(engine, as_of)
    segments = Table("segment", "accounts", "ARR", title="Accounts by segment")
    for segment, row in views["by_segment"].iterrows():
        segments.add_row(str(segment), str(int(row["accounts"])), f"${row['arr']:,.0f}")
    console.print(segments)
    by_csm = views["by_csm"]
    csms = Table("CSM", *by_csm.columns, title="Accounts by CSM and health")
    for csm, row in by_csm.head(12).iterrows():
        csms.add_row(str(csm), *(str(int(v)) for v in row))
    console.print(csms)
    colors = distribution["colors"]
    console.print(
        f"health: {colors['green']} green, {colors['yellow']} yellow, {colors['red']} red; "
        f"{distribution['usage_drop_30pct']} accounts with usage down 30 % or more"
    )


if __name__ == "__main__":
    sys.exit(main())
