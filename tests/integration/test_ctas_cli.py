"""`techtouch ctas` as a user runs it, on SQLite and PostgreSQL: the listing (its filters, order,
fields and `--as`), and working one CTA (`show`, `start`, `done`, `snooze`, `assign`, `cancel`,
`note`) as a user, with clear refusals that change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from techtouch.adapters import passwords
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import Account, Cta, CtaHistory, User
from techtouch.entrypoints.cli import commands, ctas, journeys, users  # noqa: F401  (registers the commands)
from techtouch.entrypoints.cli.app import UserError
from techtouch.entrypoints.cli.app import app as cli
from tests.integration.journey_base import account

ROOT = Path(__file__).parents[2]
DAY = date(2027, 1, 4)
AS_OF = ("--as-of", DAY.isoformat())
JANE, SAM, ANA = "jane@vendor.example", "sam@vendor.example", "ana@vendor.example"
LEAD, OPS, GONE = "lead@vendor.example", "ops@vendor.example", "gone@vendor.example"
HASH = passwords.hash_password("a long enough password")

WHY = {
    "journey": "renewal",
    "milestone": "announce",
    "rung": None,
    "branch": "at_risk",
    "kind": "branch",
    "condition": "survey.renewal in ['unsure', 'not_likely']",
    "values": {"survey.renewal": "unsure", "days_to_renewal": 84},
    "answer": {
        "survey": "renewal",
        "value": "unsure",
        "contact_id": "c-1",
        "contact_name": "Ada Lovelace",
        "at": "2026-11-20T10:00:00Z",
        "comment": "budget [bold]cuts[/]",
    },
}
OLD_FIELDS = {
    "id", "account_id", "journey", "reason", "title", "priority", "assignee", "status", "due_date",
    "created_as_of", "context", "outcome",
}  # fmt: skip


def add_cta(connection: Any, account_id: str, assignee: str, reason: str, **extra: Any) -> int:
    values = {
        "account_id": account_id,
        "journey": "renewal",
        "reason": reason,
        "title": f"Call about {reason}",
        "priority": "medium",
        "assignee": assignee,
        "status": "open",
        "due_date": DAY + timedelta(days=2),
        "created_as_of": DAY - timedelta(days=1),
        "context": {},
        "why": {},
        "outcomes": [],
    } | extra
    return int(connection.execute(insert(Cta).values(**values).returning(Cta.id)).scalar_one())


@pytest.fixture
def ids(env: dict[str, str], engine: Engine) -> dict[str, int]:
    with engine.begin() as connection:
        insert_rows(
            connection,
            Account.__table__,
            [
                account("a1", csm_email=JANE),
                account("a2", csm_email=ANA),
                account("a3", csm_email=None),
                account("a4", csm_email=SAM),
            ],
        )
        insert_rows(
            connection,
            User.__table__,
            [
                {
                    "email": e,
                    "name": n,
                    "role": r,
                    "title": None,
                    "team": t,
                    "password_hash": HASH,
                    "disabled": d,
                }
                for e, n, r, t, d in (
                    (JANE, "Jane Doe", "csm", "emea", False),
                    (SAM, "Sam Lee", "csm", "emea", False),
                    (ANA, "Ana Ruiz", "csm", "amer", False),
                    (LEAD, "Lee Lead", "manager", "emea", False),
                    (OPS, "Olly Ops", "ops", None, False),
                    (GONE, "Gone Away", "csm", "emea", True),
                )
            ],
        )
        return {
            # Listed in this order: high first, then by due date, then by id.
            "jane_late": add_cta(connection, "a1", JANE, "risk_call", priority="low", due_date=DAY),
            "jane": add_cta(connection, "a1", JANE, "renewal_at_risk", priority="high", why=WHY),
            "queue": add_cta(
                connection, "a3", "queue:cs", "renewal_at_risk", due_date=DAY + timedelta(days=1)
            ),
            "ana": add_cta(connection, "a2", ANA, "renewal_at_risk", priority="high", due_date=DAY),
            "sam": add_cta(connection, "a4", SAM, "advocacy_detractor"),
        }


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`techtouch ARGS` in process, as `main` ends it: a user error prints `error: ...`, exit 1."""
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250", **(env or {})})
    if isinstance(result.exception, UserError):
        return 1, f"error: {result.exception}"
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.replace("│", " ").split())  # one line, no boxes


def listing(*args: str) -> list[dict[str, Any]]:
    code, said = run("ctas", *args, "--json")
    assert code == 0, said
    return json.loads(said)


def history(engine: Engine, cta_id: int) -> list[tuple[str, str, str | None, str | None]]:
    table = CtaHistory.__table__
    with engine.connect() as connection:
        rows = connection.execute(
            select(table.c.actor, table.c.action, table.c.from_status, table.c.to_status)
            .where(table.c.cta_id == cta_id)
            .order_by(table.c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def one(engine: Engine, cta_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(connection.execute(select(Cta.__table__).where(Cta.id == cta_id)).mappings().one())


# --- the listing -----------------------------------------------------------------------------------


def test_the_listing_keeps_its_fields_adds_outcome_snooze_why_and_sorts_by_urgency(
    ids: dict[str, int],
) -> None:
    rows = listing()
    assert [r["id"] for r in rows] == [ids["ana"], ids["jane"], ids["queue"], ids["sam"], ids["jane_late"]]
    assert all(OLD_FIELDS | {"snoozed_until", "why"} <= set(r) for r in rows)
    jane = next(r for r in rows if r["id"] == ids["jane"])
    assert jane["why"] == WHY and jane["outcome"] is None and jane["snoozed_until"] is None
    assert jane["due_date"] == "2027-01-06" and jane["created_as_of"] == "2027-01-03"


def test_the_listing_filters_by_account_status_journey_and_assignee(ids: dict[str, int]) -> None:
    assert [r["id"] for r in listing("--account", "a1")] == [ids["jane"], ids["jane_late"]]
    assert [r["id"] for r in listing("--assignee", "queue:cs")] == [ids["queue"]]
    assert listing("--account", "a1", "--status", "done") == []
    assert len(listing("--journey", "renewal", "--status", "open")) == 5
    code, said = run("ctas", "--status", "closed")
    assert code == 2 and "'closed' is not one of" in said
    assert all(f"'{s}'" in said for s in ("open", "in_progress", "done", "snoozed", "cancelled"))


def test_the_listing_as_a_user_shows_only_what_they_may_see(ids: dict[str, int]) -> None:
    assert {r["id"] for r in listing("--as", JANE)} == {ids["jane"], ids["jane_late"]}
    assert {r["id"] for r in listing("--as", LEAD)} == {
        ids["jane"],
        ids["jane_late"],
        ids["queue"],
        ids["sam"],
    }
    assert {r["id"] for r in listing("--as", OPS)} == set(ids.values())
    assert [r["id"] for r in listing("--as", JANE, "--account", "a2")] == []
    assert run("ctas", "--as", "nobody@vendor.example") == (
        1,
        "error: --as: no user 'nobody@vendor.example' (see `techtouch users list`)",
    )
    code, said = run("ctas", "--as", JANE)  # the table for people
    assert code == 0 and "Call about renewal_at_risk" in said and ANA not in said


# --- one CTA -----------------------------------------------------------------------------------------


def test_show_prints_the_cta_why_it_fired_what_it_closes_with_and_its_history(
    ids: dict[str, int],
) -> None:
    code, said = run("ctas", "show", str(ids["jane"]), "--as", JANE, *AS_OF)
    assert code == 0, said
    for expected in (
        "Call about renewal_at_risk",
        "Account a1 (a1)",
        "journey renewal, milestone announce, branch at_risk",
        "branch: a branch on the customer's answer",
        "condition: survey.renewal in ['unsure', 'not_likely']",
        "survey.renewal = 'unsure'",
        "days_to_renewal = 84",
        "answer: renewal = 'unsure' from Ada Lovelace at 2026-11-20T10:00:00Z",
        "comment: budget [bold]cuts[/]",  # printed as it is, not read as markup
        "closes with: renewal_confirmed, churn_confirmed, reached_resolved, reached_at_risk, no_answer",
        "History (0)",
    ):
        assert expected in said, expected

    run("ctas", "start", str(ids["jane"]), "--as", JANE, *AS_OF)
    code, said = run("ctas", "show", str(ids["jane"]), "--as", JANE, "--json", *AS_OF)
    shown = json.loads(said)
    assert shown["id"] == ids["jane"] and shown["status"] == "in_progress" and shown["why"] == WHY
    assert shown["outcomes"][:2] == ["renewal_confirmed", "churn_confirmed"] and shown["overdue"] is False
    assert "scope" not in shown
    [change] = shown["history"]
    assert (
        change["actor"],
        change["action"],
        change["from_status"],
        change["to_status"],
        change["as_of"],
    ) == (
        JANE,
        "started",
        "open",
        "in_progress",
        "2027-01-04",
    )

    # An old CTA without why, overdue on the day asked about.
    code, said = run("ctas", "show", str(ids["jane_late"]), "--as", JANE, "--as-of", "2027-01-09")
    assert "not recorded" in said and "OVERDUE" in said


def test_a_day_of_work_start_done_with_outcome_and_note(engine: Engine, ids: dict[str, int]) -> None:
    cta = str(ids["jane"])
    code, said = run("ctas", "start", cta, "--as", JANE, *AS_OF)
    assert code == 0 and f"CTA {cta} (Call about renewal_at_risk, Account a1): in progress" in said
    code, said = run(
        "ctas",
        "done",
        cta,
        "--as",
        JANE,
        "--outcome",
        "renewal_confirmed",
        "--note",
        "signed",
        "--json",
        *AS_OF,
    )
    done = json.loads(said)
    assert (done["status"], done["outcome"], done["note"], done["closed_as_of"]) == (
        "done",
        "renewal_confirmed",
        "signed",
        "2027-01-04",
    )
    assert history(engine, ids["jane"]) == [
        (JANE, "started", "open", "in_progress"),
        (JANE, "done", "in_progress", "done"),
    ]
    assert listing("--account", "a1", "--status", "done")[0]["outcome"] == "renewal_confirmed"
    assert run("ctas", "done", cta, "--as", JANE, "--outcome", "no_answer", *AS_OF) == (
        1,
        "error: cannot complete a CTA that is done: only a CTA that is open, in_progress, snoozed",
    )
    assert len(history(engine, ids["jane"])) == 2


def test_an_unknown_outcome_lists_the_allowed_ones_and_changes_nothing(
    engine: Engine, ids: dict[str, int]
) -> None:
    before = one(engine, ids["jane"])
    code, said = run("ctas", "done", str(ids["jane"]), "--as", JANE, "--outcome", "won", *AS_OF)
    assert code == 1
    assert said == (
        "error: unknown outcome 'won'; this CTA closes with: "
        "renewal_confirmed, churn_confirmed, reached_resolved, reached_at_risk, no_answer"
    )
    assert one(engine, ids["jane"]) == before and history(engine, ids["jane"]) == []


def test_snooze_needs_a_later_date_and_a_reason(engine: Engine, ids: dict[str, int]) -> None:
    cta = str(ids["jane"])
    assert run("ctas", "snooze", cta, "--as", JANE, "--until", "2027-01-04", "--reason", "x", *AS_OF) == (
        1,
        "error: snooze until a later day than 2027-01-04 (got 2027-01-04)",
    )
    code, said = run("ctas", "snooze", cta, "--as", JANE, "--until", "next week", "--reason", "x", *AS_OF)
    assert code == 2 and "not an ISO date" in said
    code, said = run("ctas", "snooze", cta, "--as", JANE, "--until", "2027-01-11", *AS_OF)
    assert code == 2 and "Missing option '--reason'" in said
    assert history(engine, ids["jane"]) == []

    code, said = run(
        "ctas", "snooze", cta, "--as", JANE, "--until", "2027-01-11", "--reason", "budget", *AS_OF
    )
    assert code == 0 and "snoozed until 2027-01-11" in said
    [snoozed] = listing("--status", "snoozed")
    assert (snoozed["id"], snoozed["snoozed_until"]) == (ids["jane"], "2027-01-11")


def test_assign_cancel_and_note(engine: Engine, ids: dict[str, int]) -> None:
    cta = str(ids["jane"])
    assert run("ctas", "assign", cta, "--as", JANE, "--to", OPS, *AS_OF) == (
        1,
        "error: ops users do not work CTAs: assign to a CSM or manager",
    )
    assert run("ctas", "assign", cta, "--as", JANE, "--to", ANA, *AS_OF) == (
        1,
        "error: not allowed to assign outside your team",
    )
    code, said = run("ctas", "assign", cta, "--as", JANE, "--to", SAM, *AS_OF)
    assert code == 0 and f"assigned to {SAM}" in said
    assert one(engine, ids["jane"])["assignee"] == SAM

    code, said = run("ctas", "note", cta, "--as", SAM, "--note", "called twice", *AS_OF)
    assert code == 0 and "note added" in said
    code, said = run("ctas", "cancel", cta, "--as", SAM, *AS_OF)
    assert code == 2 and "Missing option '--note'" in said
    code, said = run("ctas", "cancel", cta, "--as", SAM, "--note", "duplicate", *AS_OF)
    assert code == 0 and "cancelled" in said
    assert history(engine, ids["jane"]) == [
        (JANE, "assigned", "open", "open"),
        (SAM, "noted", "open", "open"),
        (SAM, "cancelled", "open", "cancelled"),
    ]


def test_refusals_for_ids_users_and_other_peoples_ctas_change_nothing(
    engine: Engine, ids: dict[str, int]
) -> None:
    assert run("ctas", "show", "424242", "--as", JANE) == (1, "error: no CTA with id 424242")
    assert run("ctas", "start", "424242", "--as", JANE) == (1, "error: no CTA with id 424242")
    code, said = run("ctas", "start", "abc", "--as", JANE)
    assert code == 2 and "Invalid value for 'ID'" in said and "valid integer" in said
    code, said = run("ctas", "start", str(ids["jane"]))
    assert code == 2 and "Missing option '--as'" in said and "TECHTOUCH_USER" in said
    assert run("ctas", "start", str(ids["jane"]), "--as", GONE) == (
        1,
        f"error: --as: user '{GONE}' is disabled",
    )
    assert run("ctas", "start", str(ids["jane"]), "--as", "nobody@vendor.example")[1].startswith(
        "error: --as: no user 'nobody@vendor.example'"
    )
    before = {k: one(engine, v) for k, v in ids.items()}
    assert run("ctas", "show", str(ids["sam"]), "--as", JANE) == (1, "error: not allowed to see this CTA")
    assert run("ctas", "start", str(ids["sam"]), "--as", JANE) == (1, "error: not allowed to see this CTA")
    assert run("ctas", "done", str(ids["ana"]), "--as", LEAD, "--outcome", "no_answer")[1].startswith(
        "error: not allowed"
    )
    assert run("ctas", "cancel", str(ids["jane"]), "--as", OPS, "--note", "x") == (
        1,
        "error: not allowed to cancel this CTA",
    )
    assert {k: one(engine, v) for k, v in ids.items()} == before
    assert all(history(engine, v) == [] for v in ids.values())


def test_the_acting_user_from_the_environment_and_the_real_error_boundary(
    env: dict[str, str], engine: Engine, ids: dict[str, int]
) -> None:
    """As a script runs it: a process, TECHTOUCH_USER instead of --as, errors on stderr, exit 1."""
    process_env = dict(os.environ) | env | {"TECHTOUCH_USER": LEAD}

    def techtouch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "techtouch", *args],
            env=process_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = techtouch("ctas", "start", str(ids["queue"]), "--json", *AS_OF)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["status"] == "in_progress"
    assert history(engine, ids["queue"]) == [(LEAD, "started", "open", "in_progress")]

    refused = techtouch("ctas", "start", str(ids["ana"]))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == "error: not allowed to see this CTA"
    assert history(engine, ids["ana"]) == []
