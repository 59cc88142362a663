"""`techtouch accounts show`: an account's whole story, through the real command, on SQLite and
PostgreSQL (journeys, touches, CTAs, survey answers and comments, suppressions; table and --json)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Account, Contact, Enrollment, Touch
from techtouch.services.feedback import record_survey_comment

D0 = date(2027, 1, 4)
ROOT = Path(__file__).parents[2]
STORY_FIELDS = ("journey", "milestone", "rung", "channel", "contact_id", "status", "as_of", "send_at")


def techtouch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "techtouch", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(env: dict[str, str], *args: str) -> str:
    result = techtouch(env, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def show(env: dict[str, str], account_id: str) -> str:
    # Wide enough that no cell wraps: the assertions read whole rows.
    return ok(env | {"COLUMNS": "250"}, "accounts", "show", account_id)


def story(env: dict[str, str], account_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(ok(env, "accounts", "show", account_id, "--json"))
    return detail


def rows(output: str) -> list[tuple[str, ...]]:
    """The table rows of the output: cells are separated by two spaces or more."""
    return [tuple(re.split(r"\s{2,}", line.strip())) for line in output.splitlines() if line.strip()]


def write(path: Path, header: str, data: Sequence[Sequence[object]]) -> str:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header.split(","))
        writer.writerows(data)
    return str(path)


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)  # the autouse fixture already dropped TECHTOUCH_*
    ok(env | {"TECHTOUCH_DATABASE_URL": db_url}, "db", "upgrade")
    return env | {
        "TECHTOUCH_DATABASE_URL": db_url,
        "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox"),
        "TECHTOUCH_TIMEZONE": "Europe/Paris",
    }


@pytest.fixture
def lived(cli_env: dict[str, str], db_url: str, tmp_path: Path) -> dict[str, str]:
    """Two accounts renewing in ~3 months, run for four days: a1 (Northwind) answers the renewal
    survey `not_likely` after the first email and comments on it; its contact c2 sent STOP
    before it all. a2 is named `Acme [/] Corp`, its contact and comment look like markup."""
    renewal = ["tech_touch", 9000, D0 - timedelta(days=400)]
    accounts = [
        [
            "a1",
            "Northwind",
            *renewal,
            D0 + timedelta(days=91),
            "casey.morgan@vendor.example",
            "Europe/Paris",
            "",
        ],
        ["a2", "Acme [/] Corp", *renewal, D0 + timedelta(days=92), "", "Europe/Paris", ""],
    ]
    contacts = [
        ["c1", "a1", "Ada", "ada@customer.example", "+33612345678", "admin", "true", "true"],
        ["c2", "a1", "Bob", "bob@customer.example", "+33612345679", "admin", "true", "true"],
        ["c3", "a2", "[bold]Eve[/", "eve@customer.example", "", "admin", "true", "true"],
    ]
    usage = [[a, D0 - timedelta(days=k), 5, 9, 40] for a in ("a1", "a2") for k in range(1, 61)]
    events = "account_id,contact_id,occurred_at,type,value"
    files = {
        "accounts": write(
            tmp_path / "accounts.csv",
            "account_id,name,segment,arr,start_date,renewal_date,csm_email,timezone,paused_until",
            accounts,
        ),
        "contacts": write(
            tmp_path / "contacts.csv",
            "contact_id,account_id,name,email,phone,role,email_consent,sms_consent",
            contacts,
        ),
        "usage": write(tmp_path / "usage.csv", "account_id,date,active_users,logins,key_actions", usage),
        "events": write(
            tmp_path / "stop.csv",
            events,
            [["a1", "c2", f"{D0 - timedelta(days=2)}T10:00:00Z", "sms_stop", ""]],
        ),
    }
    for kind, path in files.items():
        ok(cli_env, "import", kind, path)
    ok(cli_env, "run", "--all", "--as-of", str(D0))
    # The outbox takes only what is due: the hourly delivery, played at the afternoon of each day.
    ok(cli_env, "deliver", "--at", f"{D0}T15:00:00+00:00")
    answer = [["a1", "c1", f"{D0 + timedelta(days=1)}T10:00:00Z", "survey", "renewal:not_likely"]]
    ok(cli_env, "import", "events", write(tmp_path / "answer.csv", events, answer))
    for offset in range(1, 4):
        ok(cli_env, "run", "--all", "--as-of", str(D0 + timedelta(days=offset)))
        ok(cli_env, "deliver", "--at", f"{D0 + timedelta(days=offset)}T15:00:00+00:00")
    ok(cli_env, "health", "--as-of", str(D0 + timedelta(days=3)))
    engine = make_engine(db_url)
    try:
        at = datetime.combine(D0 + timedelta(days=1), time(11), tzinfo=UTC)
        comment = "Too pricey [/] for us"
        assert record_survey_comment(engine, "a1", "c1", "renewal", "not_likely", comment, now=at)
        assert record_survey_comment(engine, "a2", "c3", "renewal", "unsure", "[bold]hm[/", now=at)
    finally:
        engine.dispose()
    return cli_env


def check_json(lived: dict[str, str]) -> None:
    detail = story(lived, "a1")
    assert {"account", "contacts", "health", "trend"} <= detail.keys()  # what it always said
    assert detail["account"]["name"] == "Northwind"
    assert {c["id"]: c["suppressed"] for c in detail["contacts"]} == {"c1": [], "c2": ["sms"]}
    assert detail["health"]["as_of"] == str(D0 + timedelta(days=3))

    [journey] = detail["journeys"]
    assert journey | {"id": None} == {
        "id": None,
        "journey": "renewal",
        "cycle": 1,
        "status": "active",
        "milestone": "at_risk_call",  # the answer closed `announce`; now waiting on the at-risk CTA
        "phase": "active",
        "step": 0,
        "next_due": str(D0 + timedelta(days=9)),  # the CTA is escalated if still open a week later
        "milestone_since": str(D0 + timedelta(days=2)),
        "last_touch_as_of": str(D0 + timedelta(days=2)),
        "entered_as_of": str(D0),
        "exited_as_of": None,
        "exit_reason": None,
    }

    touches = detail["touches"]
    assert [(t["as_of"], t["rung"], t["channel"], t["contact_id"], t["status"]) for t in touches] == [
        (str(D0 + timedelta(days=2)), "branch_at_risk", "cta", None, "created"),
        (str(D0), "email", "email", "c2", "sent"),
        (str(D0), "email", "email", "c1", "sent"),
    ]
    listed = json.loads(ok(lived, "touches", "--account", "a1", "--json"))  # oldest first
    assert [{f: t[f] for f in STORY_FIELDS} for t in touches] == [
        {f: t[f] for f in STORY_FIELDS} for t in reversed(listed)
    ]

    [cta] = detail["ctas"]
    [listed_cta] = [c for c in json.loads(ok(lived, "ctas", "--json")) if c["account_id"] == "a1"]
    assert cta == {k: listed_cta[k] for k in cta}
    assert (cta["journey"], cta["reason"], cta["title"], cta["priority"], cta["status"]) == (
        "renewal",
        "renewal_at_risk",
        "Renewal at risk",
        "high",
        "open",
    )
    assert cta["assignee"] == "casey.morgan@vendor.example" and cta["outcome"] is None

    assert detail["answers"] == [
        {
            "occurred_at": f"{D0 + timedelta(days=1)}T11:00:00Z",
            "contact_id": "c1",
            "kind": "comment",
            "survey": "renewal",
            "answer": "not_likely",
            "comment": "Too pricey [/] for us",
            "source": "web",
        },
        {
            "occurred_at": f"{D0 + timedelta(days=1)}T10:00:00Z",
            "contact_id": "c1",
            "kind": "answer",
            "survey": "renewal",
            "answer": "not_likely",
            "comment": None,
            "source": "import",
        },
    ]
    assert detail["suppressions"] == [
        {
            "contact_id": "c2",
            "channel": "sms",
            "reason": "sms_stop",
            "since": f"{D0 - timedelta(days=2)}T10:00:00Z",
        }
    ]
    # Contact details stay in the contacts section: the other sections name contacts by id.
    elsewhere = json.dumps([detail[k] for k in ("journeys", "touches", "ctas", "answers", "suppressions")])
    assert "customer.example" not in elsewhere and "+336" not in elsewhere


def check_table(lived: dict[str, str]) -> None:
    output = show(lived, "a1")
    table = rows(output)
    assert table[0] == ("Northwind (a1)",)
    for heading in (
        "Contacts (2)",
        "Journeys (1)",
        "Touches (3)",
        "CTAs (1)",
        "Survey answers and comments (2)",
        "Suppressions (1)",
    ):
        assert (heading,) in table, heading
    day = {k: str(D0 + timedelta(days=k)) for k in range(-2, 5)}
    assert (
        "renewal",
        "1",
        "active",
        "at_risk_call",
        "active, step 0",
        str(D0 + timedelta(days=9)),
        day[0],
        "-",
    ) in table
    assert (day[2], "-", "renewal", "announce", "branch_at_risk", "cta", "-", "created") in table
    assert (day[0], "08:00 UTC", "renewal", "announce", "email", "email", "c1", "sent") in table
    assert (day[0], "08:00 UTC", "renewal", "announce", "email", "email", "c2", "sent") in table
    cta = [r for r in table if r[1:4] == ("renewal", "renewal_at_risk", "Renewal at risk")]
    assert [r[4:] for r in cta] == [("high", "casey.morgan@vendor.example", "open", day[4], "-")]
    assert (f"{day[1]} 11:00 UTC", "c1", "renewal", "not_likely", "Too pricey [/] for us") in table
    assert (f"{day[1]} 10:00 UTC", "c1", "renewal", "not_likely", "-") in table
    assert ("c2", "sms", "sms_stop", f"{day[-2]} 10:00 UTC") in table
    # Newest first: the CTA's touch comes before the first emails, the comment before the answer.
    assert output.index("branch_at_risk") < output.index("08:00 UTC")
    assert output.index("Too pricey") < output.index(f"{day[1]} 10:00 UTC")


def check_markup(lived: dict[str, str]) -> None:
    """An account whose data looks like markup shows as it is."""
    result = techtouch(lived | {"COLUMNS": "250"}, "accounts", "show", "a2")
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table[0] == ("Acme [/] Corp (a2)",)
    assert any(r[:2] == ("c3", "[bold]Eve[/") for r in table)
    assert any(r[-1] == "[bold]hm[/" for r in table)
    assert ("CTAs: none yet",) in table and ("Suppressions: none yet",) in table
    # Narrow terminals wrap, they do not crash either.
    narrow = techtouch(lived | {"COLUMNS": "60"}, "accounts", "show", "a2")
    assert narrow.returncode == 0, narrow.stderr
    assert story(lived, "a2")["account"]["name"] == "Acme [/] Corp"


def test_accounts_show_tells_the_whole_story(lived: dict[str, str]) -> None:
    # One test for the three views of one history: building it takes a dozen commands.
    check_json(lived)
    check_table(lived)
    check_markup(lived)


def test_many_touches_an_ended_journey_and_empty_sections(engine: Engine, db_url: str) -> None:
    """60 touches: the table shows the latest 50 and says so, --json has all 60."""
    with engine.begin() as connection:
        insert_rows(
            connection,
            Account.__table__,
            [
                {
                    "id": "a9",
                    "name": "Busy",
                    "segment": "tech_touch",
                    "arr": 1200.0,
                    "start_date": D0 - timedelta(days=30),
                    "renewal_date": None,
                    "csm_email": None,
                    "timezone": None,
                    "paused_until": None,
                    "is_advocate": False,
                }
            ],
        )
        insert_rows(
            connection,
            Contact.__table__,
            [
                {
                    "id": "c9",
                    "account_id": "a9",
                    "name": "Ida",
                    "email": "ida@customer.example",
                    "phone": None,
                    "role": "admin",
                    "email_consent": True,
                    "sms_consent": False,
                    "timezone": None,
                }
            ],
        )
        common = {
            "account_id": "a9",
            "cycle": 1,
            "milestone_since": None,
            "last_touch_as_of": None,
            "entry": {},
        }
        insert_rows(
            connection,
            Enrollment.__table__,
            [
                common
                | {
                    "journey": "risk",
                    "status": "exited",
                    "entered_as_of": D0 - timedelta(days=20),
                    "exited_as_of": D0 - timedelta(days=5),
                    "exit_reason": "max_days",
                    "milestone": "reach_out",
                    "phase": "active",
                    "step": 2,
                    "next_due": None,
                },
                common
                | {
                    "journey": "onboarding",
                    "status": "active",
                    "entered_as_of": D0 - timedelta(days=1),
                    "exited_as_of": None,
                    "exit_reason": None,
                    "milestone": "configured",
                    "phase": "active",
                    "step": 1,
                    "next_due": D0 + timedelta(days=60),
                },
            ],
        )
        enrollment = connection.scalar(select(Enrollment.id).where(Enrollment.journey == "onboarding"))
        insert_rows(
            connection,
            Touch.__table__,
            [
                {
                    "key": f"onboarding/a9/1/configured/email{k}/c9",
                    "enrollment_id": enrollment,
                    "account_id": "a9",
                    "contact_id": "c9",
                    "journey": "onboarding",
                    "milestone": "configured",
                    "rung": f"email{k}",
                    "channel": "email",
                    "status": "sent",
                    "as_of": D0 + timedelta(days=k),
                    "send_at": datetime.combine(D0 + timedelta(days=k), time(8), tzinfo=UTC),
                }
                for k in range(60)
            ],
        )
    env = dict(os.environ) | {"TECHTOUCH_DATABASE_URL": db_url}

    detail = story(env, "a9")
    assert [t["rung"] for t in detail["touches"]] == [f"email{k}" for k in reversed(range(60))]
    assert [(e["journey"], e["status"], e["exited_as_of"], e["exit_reason"]) for e in detail["journeys"]] == [
        ("onboarding", "active", None, None),
        ("risk", "exited", str(D0 - timedelta(days=5)), "max_days"),
    ]
    assert (detail["ctas"], detail["answers"], detail["suppressions"]) == ([], [], [])

    table = rows(show(env, "a9"))
    assert ("Touches (latest 50 of 60; --json has all)",) in table
    shown = {r[4] for r in table if len(r) == 8 and r[2] == "onboarding"}
    assert shown == {f"email{k}" for k in range(10, 60)}
    assert (
        "risk",
        "1",
        "exited: max_days",
        "reach_out",
        "active, step 2",
        "-",
        str(D0 - timedelta(days=20)),
        str(D0 - timedelta(days=5)),
    ) in table
    for empty in ("CTAs", "Survey answers and comments", "Suppressions"):
        assert (f"{empty}: none yet",) in table
