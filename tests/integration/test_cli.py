"""The CLI end to end, as a user runs it (real processes), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from techtouch.domain.statuses import CtaStatus, TouchListingStatus

D0 = date(2027, 1, 4)
ROOT = Path(__file__).parents[2]


def techtouch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "techtouch", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write(path: Path, header: str, rows: list[list[object]]) -> str:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header.split(","))
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)  # the autouse fixture already dropped TECHTOUCH_*
    upgraded = techtouch(env | {"TECHTOUCH_DATABASE_URL": db_url}, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded from empty to" in upgraded.stdout
    return env | {
        "TECHTOUCH_DATABASE_URL": db_url,
        "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox"),
        "TECHTOUCH_TIMEZONE": "Europe/Paris",
    }


@pytest.fixture
def imported(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    accounts = [
        [
            f"a{i}",
            f"Account {i}",
            "tech_touch",
            9000,
            D0 - timedelta(days=400),
            D0 + timedelta(days=90 + i),
            "casey.morgan@vendor.example" if i % 2 else "",
            "Europe/Paris",
            "",
        ]
        for i in range(6)
    ]
    contacts = [
        [
            f"c{i}",
            f"a{i}",
            f"Ada {i}",
            f"ada{i}@customer.example",
            "+33612345678" if i % 3 else "",
            "admin",
            "true",
            "true",
        ]
        for i in range(6)
    ]
    usage = [[f"a{i}", D0 - timedelta(days=k), 5, 9, 40] for i in range(6) for k in range(1, 61)]
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
            tmp_path / "events.csv",
            "account_id,contact_id,occurred_at,type,value",
            [["a1", "c1", f"{D0 - timedelta(days=1)}T10:00:00Z", "survey", "renewal:not_likely"]],
        ),
    }
    for kind, path in files.items():
        result = techtouch(cli_env, "import", kind, path)
        assert result.returncode == 0, result.stderr
    return files


def listing(env: dict[str, str], *args: str) -> list[dict]:
    result = techtouch(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_run_and_list_end_to_end(cli_env: dict[str, str], imported: dict[str, str]) -> None:
    for offset in range(4):
        day = D0 + timedelta(days=offset)
        result = techtouch(cli_env, "run", "--all", "--as-of", str(day))
        assert result.returncode == 0, result.stderr
        # The outbox only gets what is due: the hourly delivery, played at 15:00 in Paris that day.
        delivered = techtouch(cli_env, "deliver", "--at", f"{day}T15:00+01:00", "--json")
        assert delivered.returncode == 0, delivered.stderr
    touches = listing(cli_env, "touches")
    renewal = [t for t in touches if t["journey"] == "renewal"]
    assert {t["account_id"] for t in renewal} == {f"a{i}" for i in range(6)}
    first = {t["account_id"]: t for t in renewal if t["rung"] == "email"}
    assert first["a0"]["sender"] == "success" and first["a3"]["sender"] == "csm"  # no CSM: the team writes
    assert {t["status"] for t in renewal if t["channel"] == "email"} == {"sent"}
    emails = list((Path(cli_env["TECHTOUCH_OUTBOX_DIR"]) / "email").glob("*.eml"))
    assert len(emails) == sum(t["channel"] == "email" and t["status"] == "sent" for t in touches)

    ctas = listing(cli_env, "ctas")
    at_risk = [c for c in ctas if c["reason"] == "renewal_at_risk"]
    assert [(c["account_id"], c["priority"], c["assignee"]) for c in at_risk] == [
        ("a1", "high", "casey.morgan@vendor.example")
    ]
    mine = listing(cli_env, "ctas", "--assignee", "casey.morgan@vendor.example", "--status", "open")
    assert {c["id"] for c in mine} >= {c["id"] for c in at_risk}
    only = listing(cli_env, "touches", "--account", "a2", "--journey", "renewal")
    assert only and {(t["account_id"], t["journey"]) for t in only} == {("a2", "renewal")}

    again = techtouch(cli_env, "run", "--all", "--as-of", str(D0 + timedelta(days=3)))
    assert again.returncode == 0
    assert listing(cli_env, "touches") == touches

    preview = techtouch(
        cli_env, "preview", "renewal", "--account", "a4", "--as-of", str(D0 + timedelta(days=5))
    )
    assert preview.returncode == 0, preview.stderr
    assert "announce.sms via sms" in preview.stdout and "STOP" in preview.stdout


def test_run_delivers_at_a_rehearsed_instant(cli_env: dict[str, str], imported: dict[str, str]) -> None:
    """`run --deliver-at` delivers as the daily flow's `deliver_at` does: what is due at that instant
    goes to the outbox in the same command; a bad instant or a real provider is refused."""
    bad = techtouch(cli_env, "run", "--all", "--as-of", str(D0), "--deliver-at", "15:00")
    assert bad.returncode == 2 and "--deliver-at" in bad.stderr and "ISO 8601" in bad.stderr
    naive = techtouch(cli_env, "run", "--all", "--as-of", str(D0), "--deliver-at", f"{D0}T15:00")
    assert naive.returncode == 1 and "offset" in naive.stderr
    provider = techtouch(
        cli_env | {"TECHTOUCH_EMAIL_CHANNEL": "sendgrid", "TECHTOUCH_SENDGRID_API_KEY": "SG.test"},
        "run", "--all", "--as-of", str(D0), "--deliver-at", f"{D0}T15:00+01:00",
    )  # fmt: skip
    assert provider.returncode == 1 and "outbox only" in provider.stderr
    assert listing(cli_env, "touches") == []  # refused before anything was recorded

    result = techtouch(
        cli_env, "run", "--all", "--as-of", str(D0), "--deliver-at", f"{D0}T15:00+01:00", "--json"
    )
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout)["delivery"]["sent"]
    emails = list((Path(cli_env["TECHTOUCH_OUTBOX_DIR"]) / "email").glob("*.eml"))
    assert sent["email"] == len(emails) > 0
    assert {t["status"] for t in listing(cli_env, "touches", "--status", "sent")} == {"sent"}


def test_two_runs_at_the_same_time_create_no_duplicates(
    cli_env: dict[str, str], imported: dict[str, str]
) -> None:
    command = [sys.executable, "-m", "techtouch", "run", "--all", "--as-of", str(D0)]
    runs = [
        subprocess.Popen(
            command, env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in runs]
    assert [p.returncode for p in runs] == [0, 0, 0], outputs
    deliver = [sys.executable, "-m", "techtouch", "deliver", "--at", f"{D0}T15:00+01:00"]
    deliveries = [
        subprocess.Popen(
            deliver, env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in deliveries]
    assert [p.returncode for p in deliveries] == [0, 0, 0], outputs
    touches = listing(cli_env, "touches")
    keys = [t["key"] for t in touches]
    assert len(keys) == len(set(keys)) and len(keys) >= 6
    emails = list((Path(cli_env["TECHTOUCH_OUTBOX_DIR"]) / "email").glob("*.eml"))
    assert len(emails) == sum(t["channel"] == "email" for t in touches)


def test_errors_exit_non_zero_with_a_clear_message(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.csv",
        "account_id,name,segment,arr,start_date,renewal_date,csm_email,timezone,paused_until",
        [["x", "X", "tech_touch", "-1", "2026-13-40", "", "", "Mars/Base", ""]],
    )
    result = techtouch(cli_env, "import", "accounts", bad)
    assert result.returncode == 1
    assert f"{bad}:2: start_date:" in result.stderr and f"{bad}:2: timezone:" in result.stderr
    assert techtouch(cli_env, "run", "nosuch", "--as-of", str(D0)).returncode == 1
    assert techtouch(cli_env, "accounts", "show", "nobody").returncode == 1
    assert techtouch(cli_env, "run", "--as-of", "2027-02-30", "--all").returncode == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        'id: broken\nname: B\nenter_when: "arr >"\nmilestones:\n'
        "  - {id: m, ladder: [{id: c, channel: cta, title: T}]}\n"
    )
    result = techtouch(cli_env, "check", str(broken))
    assert result.returncode == 1 and f"{broken}:3:19: enter_when: unexpected end" in result.stdout


def test_status_options_take_only_known_statuses_and_list_them(cli_env: dict[str, str]) -> None:
    wide = cli_env | {"COLUMNS": "400"}  # one line per message: no wrapping inside the error box
    for command, vocabulary, typo in (
        ("touches", TouchListingStatus, "planned"),
        ("ctas", CtaStatus, "closed"),  # `cancelled` is a status of the lifecycle; `closed` is not
    ):
        result = techtouch(wide, command, "--status", typo)
        assert result.returncode == 2, result.stderr  # a usage error, before touching the database
        message = " ".join(result.stderr.replace("│", " ").split())
        assert "Invalid value for '--status'" in message and f"'{typo}' is not one of" in message
        assert all(f"'{status}'" in message for status in vocabulary), message
        assert "Traceback" not in result.stderr
        known = techtouch(cli_env, command, "--status", next(iter(vocabulary)), "--json")
        assert known.returncode == 0 and json.loads(known.stdout) == [], known.stderr


def test_commands_refuse_a_database_without_the_schema_and_say_how_to_fix_it(
    cli_env: dict[str, str],
) -> None:
    """Migrations are an explicit step: no command migrates behind the user's back."""
    from techtouch.adapters.db import migrate
    from techtouch.adapters.db.engine import make_engine

    engine = make_engine(cli_env["TECHTOUCH_DATABASE_URL"])
    migrate.downgrade(engine, "base")
    engine.dispose()
    for args in (("touches", "--json"), ("run", "--all", "--as-of", str(D0)), ("health",)):
        result = techtouch(cli_env, *args)
        assert result.returncode == 1
        assert "run `techtouch db upgrade`" in result.stderr
        assert "Traceback" not in result.stderr

    assert techtouch(cli_env, "db", "upgrade").returncode == 0
    again = techtouch(cli_env, "db", "upgrade")
    assert again.returncode == 0 and "already at revision" in again.stdout
    assert techtouch(cli_env, "touches", "--json").stdout.strip() == "[]"


def test_a_database_behind_the_code_is_refused_with_its_revision(cli_env: dict[str, str]) -> None:
    from techtouch.adapters.db import migrate
    from techtouch.adapters.db.engine import make_engine

    engine = make_engine(cli_env["TECHTOUCH_DATABASE_URL"])
    migrate.downgrade(engine, "0001")
    engine.dispose()

    result = techtouch(cli_env, "touches")

    assert result.returncode == 1
    assert "is at revision 0001, the code expects" in result.stderr
    assert techtouch(cli_env, "db", "upgrade").returncode == 0
    assert techtouch(cli_env, "touches", "--json").returncode == 0


def test_check_counts_journeys_in_the_singular_and_the_plural() -> None:
    env = dict(os.environ)  # the autouse fixture already dropped TECHTOUCH_*; check needs no database
    journeys = ROOT / "config" / "journeys"
    one = techtouch(env, "check", str(journeys / "renewal.yaml"))
    assert one.returncode == 0, one.stdout + one.stderr
    assert one.stdout.splitlines()[-1] == "1 journey ok"
    every = techtouch(env, "check", str(journeys / "renewal.yaml"), str(journeys / "risk.yaml"))
    assert every.returncode == 0, every.stdout + every.stderr
    assert every.stdout.splitlines()[-1] == "2 journeys ok"


def test_a_run_on_a_database_without_accounts_warns_instead_of_passing_for_a_success(
    cli_env: dict[str, str],
) -> None:
    result = techtouch(cli_env, "run", "--all", "--as-of", str(D0), "--json")
    assert result.returncode == 0
    assert "warning: no accounts in" in " ".join(result.stderr.split())
    assert "TECHTOUCH_DATABASE_URL" in result.stderr
    assert json.loads(result.stdout)["accounts"] == 0


def test_check_refuses_an_email_without_unsubscribe_and_a_misspelt_survey(tmp_path: Path) -> None:
    env = dict(os.environ)  # check needs no database
    templates, journey = tmp_path / "templates", tmp_path / "renewal.yaml"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "renewal" / "reminder.email.html").write_text("<html><body><p>Hi</p></body></html>\n")
    journey.write_text(
        (ROOT / "config" / "journeys" / "renewal.yaml")
        .read_text()
        .replace('done_when: "survey.renewal is answered"', 'done_when: "survey.renewl is answered"')
    )
    result = techtouch(env | {"TECHTOUCH_TEMPLATES_DIR": str(templates)}, "check", str(journey))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{journey}:75:47: {templates}/renewal/reminder.email.html: an email must carry the unsubscribe "
        'link, <a href="{{ links.unsubscribe }}">: extend _layout.email.html, whose footer has it',
        f"{journey}:41:17: milestones.0.done_when: unknown survey 'renewl': no template a journey sends "
        "offers it and no import brings it; did you mean 'renewal'?",
        # With done_when misspelt, nothing reads a "likely" answer any more: a promise nobody keeps.
        f"{journey}:15:45: template renewal/announce offers the answer renewal:likely but no journey acts "
        "on it: add a request (requests: - when: \"survey.renewal == 'likely'\", cta: ...) or a branch that "
        "reads it, or declare it in informational_answers if nobody needs to act",
    ]
