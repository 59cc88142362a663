"""import_csv against real databases (SQLite and PostgreSQL through the `engine` fixture)."""

from __future__ import annotations

import textwrap
import zlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select

from techtouch.adapters.db.models import Account, Base, Contact, Event, Suppression, UsageDaily
from techtouch.services.importing import ImportFailed, ImportResult, event_key, import_csv
from techtouch.services.importing.duplicates import SeenKeys

ACCOUNTS_HEADER = "account_id,name,segment,arr,start_date,renewal_date,csm_email,timezone,paused_until"
CONTACTS_HEADER = "contact_id,account_id,name,email,phone,role,email_consent,sms_consent"
USAGE_HEADER = "account_id,date,active_users,logins,key_actions"
EVENTS_HEADER = "account_id,contact_id,occurred_at,type,value"

ACCOUNTS = f"""\
{ACCOUNTS_HEADER}
a1,Acme Corp,tech_touch,12000,2025-01-15,2026-01-15,Dana@Example.COM,Europe/Berlin,
a2,"Beta, Inc.",high_touch,250000.50,2024-06-01,,,,2026-03-01
"""
CONTACTS = f"""\
{CONTACTS_HEADER}
c1,a1,Jo Admin,Jo@Example.com,+1 (415) 555-2671,admin,true,TRUE
c2,a1,Sam User,sam@example.com,,user,False,false
c3,a2,Kim Exec,kim@example.com,+44 20 7946 0958,executive,true,false
"""
USAGE = f"""\
{USAGE_HEADER}
a1,2026-01-01,5,12,40
a1,2026-01-02,6,15,52
a2,2026-01-01,30,80,400
"""
EVENTS = f"""\
{EVENTS_HEADER}
a1,,2026-01-03,milestone,configured
a1,c1,2026-01-04T09:30:00+02:00,survey,nps:09
a1,c1,2026-01-04T09:30:00+02:00,survey,nps:09
a2,c3,2026-01-05T10:00:00Z,survey,renewal:likely
a2,,2026-01-06 08:00,renewal_signed,
a1,c2,2026-01-07T12:00:00,email_opened,welcome
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def rows(engine: Engine, model: type[Base]) -> list[tuple[Any, ...]]:
    """Every row of a table, every column, in primary-key order."""
    table = model.__table__
    with engine.connect() as connection:
        result = connection.execute(select(table).order_by(*table.primary_key.columns))
        return [tuple(row) for row in result]


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    return {m.__tablename__: rows(engine, m) for m in (Account, Contact, UsageDaily, Event, Suppression)}


def import_all(engine: Engine, tmp_path: Path) -> list[ImportResult]:
    return [
        import_csv(engine, kind, write(tmp_path, f"{kind}.csv", text))
        for kind, text in (
            ("accounts", ACCOUNTS),
            ("contacts", CONTACTS),
            ("usage", USAGE),
            ("events", EVENTS),
        )
    ]


def problems_of(engine: Engine, kind: str, path: str, **options: Any) -> list[str]:
    with pytest.raises(ImportFailed) as failed:
        import_csv(engine, kind, path, **options)
    return failed.value.problems


@pytest.fixture
def seeded(engine: Engine, tmp_path: Path) -> Engine:
    """Accounts a1, a2 and contacts c1, c2 (a1) and c3 (a2)."""
    import_csv(engine, "accounts", write(tmp_path, "seed_accounts.csv", ACCOUNTS))
    import_csv(engine, "contacts", write(tmp_path, "seed_contacts.csv", CONTACTS))
    return engine


# ------------------------------------------------------------------------------------ good files


def test_good_files_are_imported_and_read_back(engine: Engine, tmp_path: Path) -> None:
    results = import_all(engine, tmp_path)
    assert [(r.kind, r.rows) for r in results] == [
        ("accounts", 2),
        ("contacts", 3),
        ("usage", 3),
        ("events", 6),
    ]
    assert results[0].path == str(tmp_path / "accounts.csv")

    accounts = {a[0]: a for a in rows(engine, Account)}
    columns = [c.name for c in Account.__table__.columns]
    a1, a2 = (dict(zip(columns, accounts[key], strict=True)) for key in ("a1", "a2"))
    assert a1 | {"updated_at": None} == {
        "id": "a1",
        "name": "Acme Corp",
        "segment": "tech_touch",
        "arr": 12000.0,
        "start_date": date(2025, 1, 15),
        "renewal_date": date(2026, 1, 15),
        "csm_email": "Dana@example.com",
        "timezone": "Europe/Berlin",
        "paused_until": None,
        "is_advocate": False,
        "updated_at": None,
        "shard_key": zlib.crc32(b"a1"),  # written with the row, for sharded runs' SQL
    }
    assert a2["shard_key"] == zlib.crc32(b"a2")
    assert (a2["name"], a2["arr"], a2["renewal_date"], a2["csm_email"]) == (
        "Beta, Inc.",
        250000.5,
        None,
        None,
    )
    assert a2["timezone"] is None  # blank: NULL, the engine falls back to the default zone
    assert a2["paused_until"] == date(2026, 3, 1)

    contacts = [c[:8] for c in rows(engine, Contact)]
    assert contacts == [
        ("c1", "a1", "Jo Admin", "Jo@example.com", "+14155552671", "admin", True, True),
        ("c2", "a1", "Sam User", "sam@example.com", None, "user", False, False),
        ("c3", "a2", "Kim Exec", "kim@example.com", "+442079460958", "executive", True, False),
    ]

    assert rows(engine, UsageDaily) == [
        ("a1", date(2026, 1, 1), 5, 12, 40),
        ("a1", date(2026, 1, 2), 6, 15, 52),
        ("a2", date(2026, 1, 1), 30, 80, 400),
    ]

    events = [(e[2], e[3], e[4], e[5], e[6], e[7]) for e in rows(engine, Event)]
    assert sorted(events, key=repr) == sorted(
        [
            ("a1", None, datetime(2026, 1, 3, tzinfo=UTC), "milestone", "configured", "import"),
            ("a1", "c1", datetime(2026, 1, 4, 7, 30, tzinfo=UTC), "survey", "nps:9", "import"),  # once
            ("a1", "c2", datetime(2026, 1, 7, 12, 0, tzinfo=UTC), "email_opened", "welcome", "import"),
            ("a2", None, datetime(2026, 1, 6, 8, 0, tzinfo=UTC), "renewal_signed", None, "import"),
            ("a2", "c3", datetime(2026, 1, 5, 10, 0, tzinfo=UTC), "survey", "renewal:likely", "import"),
        ],
        key=repr,
    )
    keys = {e[1] for e in rows(engine, Event)}
    assert event_key("a1", "c1", datetime(2026, 1, 4, 7, 30, tzinfo=UTC), "survey", "nps:9") in keys
    assert all(len(k) == 64 for k in keys)
    assert rows(engine, Suppression) == []


def test_reimporting_the_same_files_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    import_all(engine, tmp_path)
    before = snapshot(engine)
    assert all(before[name] for name in ("accounts", "contacts", "usage_daily", "events"))
    import_all(engine, tmp_path)
    assert snapshot(engine) == before


def test_a_usage_day_imported_again_is_replaced(seeded: Engine, tmp_path: Path) -> None:
    import_csv(seeded, "usage", write(tmp_path, "usage.csv", USAGE))
    again = f"{USAGE_HEADER}\na1,2026-01-02,9,99,999\na1,2026-01-03,1,2,3\n"
    assert import_csv(seeded, "usage", write(tmp_path, "usage2.csv", again)).rows == 2
    assert rows(seeded, UsageDaily) == [
        ("a1", date(2026, 1, 1), 5, 12, 40),
        ("a1", date(2026, 1, 2), 9, 99, 999),
        ("a1", date(2026, 1, 3), 1, 2, 3),
        ("a2", date(2026, 1, 1), 30, 80, 400),
    ]


def test_an_account_imported_again_is_updated(engine: Engine, tmp_path: Path) -> None:
    import_csv(engine, "accounts", write(tmp_path, "accounts.csv", ACCOUNTS))
    changed = f"{ACCOUNTS_HEADER}\na1,Acme Corporation,high_touch,150000,2025-01-15,2027-01-15,,,\n"
    import_csv(engine, "accounts", write(tmp_path, "accounts2.csv", changed))
    a1 = rows(engine, Account)[0]
    assert a1[:9] == (
        "a1",
        "Acme Corporation",
        "high_touch",
        150000.0,
        date(2025, 1, 15),
        date(2027, 1, 15),
        None,
        None,
        None,
    )
    assert len(rows(engine, Account)) == 2


def test_columns_may_come_in_any_order_and_blank_lines_are_skipped(seeded: Engine, tmp_path: Path) -> None:
    text = (
        "key_actions,date,logins,account_id,active_users\n\n40,2026-01-01,12,a1,5\n\n52,2026-01-02,15,a1,6\n"
    )
    seen: list[int] = []
    result = import_csv(seeded, "usage", write(tmp_path, "usage.csv", text), progress=seen.append)
    assert result.rows == 2
    assert sum(seen) == 4  # every record pandas read, blank ones included
    assert rows(seeded, UsageDaily) == [
        ("a1", date(2026, 1, 1), 5, 12, 40),
        ("a1", date(2026, 1, 2), 6, 15, 52),
    ]


def test_a_header_only_file_imports_nothing(engine: Engine, tmp_path: Path) -> None:
    assert import_csv(engine, "accounts", write(tmp_path, "a.csv", ACCOUNTS_HEADER + "\n")).rows == 0


def test_progress_reports_every_chunk(seeded: Engine, tmp_path: Path) -> None:
    lines = [f"a1,2026-01-{day:02d},1,1,1" for day in range(1, 11)]
    seen: list[int] = []
    path = write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *lines]) + "\n")
    assert import_csv(seeded, "usage", path, chunksize=4, progress=seen.append).rows == 10
    assert seen == [4, 4, 2]


# ------------------------------------------------------------------------------------- bad rows

BAD_ROWS = [
    pytest.param(
        "accounts",
        f"{ACCOUNTS_HEADER}\na9,Nine,tech_touch,1,2025-01-01,,,,\na8,Eight,tech_touch,1,2026-13-40,,,,\n",
        "3: start_date: not an ISO date: '2026-13-40'",
        id="bad-date",
    ),
    pytest.param(
        "accounts",
        f"{ACCOUNTS_HEADER}\na9,Nine,tech_touch,1,2025-01-01,,,Europe/Berln,\n",
        "2: timezone: unknown IANA timezone: 'Europe/Berln'",
        id="unknown-timezone",
    ),
    pytest.param(
        "accounts",
        f"{ACCOUNTS_HEADER}\na9,Nine,tech_touch,-5,2025-01-01,,,,\n",
        "2: arr: must not be negative: '-5'",
        id="negative-arr",
    ),
    pytest.param(
        "accounts",
        f"{ACCOUNTS_HEADER}\na9,Nine,tech_touch,1,2025-01-01,,,,\na8,Eight,tech_touch,1,2025-01-01,,,,\n"
        "a9,Nine again,tech_touch,1,2025-01-01,,,,\n",
        "4: account_id: duplicate of row 2",
        id="duplicate-account",
    ),
    pytest.param(
        "accounts",
        f"{ACCOUNTS_HEADER}\na9,Nine,mid_touch,1,2025-01-01,,,,\n",
        "2: segment: unknown segment 'mid_touch'; expected one of tech_touch, high_touch",
        id="unknown-segment",
    ),
    pytest.param(
        "accounts",
        f"{ACCOUNTS_HEADER}\na9,,tech_touch,1,2025-01-01,,,,\n",
        "2: name: required, but blank",
        id="missing-name",
    ),
    pytest.param(
        "accounts",
        f"{ACCOUNTS_HEADER}\na9,Nine,tech_touch,1,2025-01-01,,dana@,,\n",
        "2: csm_email: not a valid email address: 'dana@' (There must be something after the @-sign.)",
        id="bad-csm-email",
    ),
    pytest.param(
        "contacts",
        f"{CONTACTS_HEADER}\nc9,a1,Nine,nine@example.com,415-555-2671,user,true,true\n",
        "2: phone: not an E.164 phone number (must start with + and the country code): '415-555-2671'",
        id="non-e164-phone",
    ),
    pytest.param(
        "contacts",
        f"{CONTACTS_HEADER}\nc9,a1,Nine,nine@example.com,+1 555 0100,user,true,true\n",
        "2: phone: not a valid phone number: '+1 555 0100'",
        id="invalid-phone",
    ),
    pytest.param(
        "contacts",
        f"{CONTACTS_HEADER}\nc9,a1,Nine,nine.example.com,,user,true,true\n",
        "2: email: not a valid email address: 'nine.example.com' (An email address must have an @-sign.)",
        id="bad-email",
    ),
    pytest.param(
        "contacts",
        f"{CONTACTS_HEADER}\nc9,a404,Nine,nine@example.com,,user,true,true\n",
        "2: account_id: unknown account 'a404'",
        id="contact-unknown-account",
    ),
    pytest.param(
        "contacts",
        f"{CONTACTS_HEADER}\nc9,a1,Nine,nine@example.com,,user,yes,true\n",
        "2: email_consent: not true or false: 'yes'",
        id="bad-consent",
    ),
    pytest.param(
        "contacts",
        f"{CONTACTS_HEADER}\nc9,a1,Nine,nine@example.com,,owner,true,true\n",
        "2: role: unknown role 'owner'; expected one of admin, champion, executive, user",
        id="unknown-role",
    ),
    pytest.param(
        "usage",
        f"{USAGE_HEADER}\na1,2026-01-01,5,-3,1\n",
        "2: logins: must not be negative: '-3'",
        id="negative-number",
    ),
    pytest.param(
        "usage",
        f"{USAGE_HEADER}\na1,2026-01-01,5,3.5,1\n",
        "2: logins: not a whole number: '3.5'",
        id="fractional-number",
    ),
    pytest.param(
        "usage",
        f"{USAGE_HEADER}\na1,2026-01-01,5,3,1\na404,2026-01-01,5,3,1\n",
        "3: account_id: unknown account 'a404'",
        id="usage-unknown-account",
    ),
    pytest.param(
        "usage",
        f"{USAGE_HEADER}\na1,2026-01-01,5,3,1\na1,2026-01-02,5,3,1\na1,2026-01-01,6,3,1\n",
        "4: date: duplicate of row 2 (same account_id and date)",
        id="duplicate-usage-day",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na1,c1,2026-01-01,logged_in,\n",
        "2: type: unknown event type 'logged_in'; expected one of milestone, survey, renewal_signed, "
        "unsubscribed, sms_stop, sms_start, email_bounced, email_opened, email_clicked, "
        "email_delivered, sms_delivered, survey_comment, email_resubscribed",
        id="unknown-event-type",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na1,c1,2026-01-01,survey,nps:11\n",
        "2: value: nps answer must be a whole number from 0 to 10: 'nps:11'",
        id="bad-survey-value",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na1,c1,2026-01-01,survey,renewal:maybe\n",
        "2: value: renewal answer must be one of likely, unsure, not_likely: 'renewal:maybe'",
        id="bad-renewal-answer",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na1,,2026-01-01,milestone,\n",
        "2: value: required for milestone (e.g. configured, trained, live)",
        id="milestone-without-value",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na1,c3,2026-01-01,email_opened,\n",
        "2: contact_id: contact 'c3' belongs to account 'a2', not 'a1'",
        id="contact-of-other-account",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na1,c404,2026-01-01,email_opened,\n",
        "2: contact_id: unknown contact 'c404'",
        id="unknown-contact",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na1,,2026-01-01,unsubscribed,\n",
        "2: contact_id: required for unsubscribed",
        id="suppression-without-contact",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na1,c1,2026-01-01T25:00,email_opened,\n",
        "2: occurred_at: not an ISO datetime: '2026-01-01T25:00'",
        id="bad-datetime",
    ),
    pytest.param(
        "events",
        f"{EVENTS_HEADER}\na404,,2026-01-01,renewal_signed,\n",
        "2: account_id: unknown account 'a404'",
        id="event-unknown-account",
    ),
]


@pytest.mark.parametrize(("kind", "text", "problem"), BAD_ROWS)
def test_a_bad_row_is_reported_exactly_and_nothing_is_written(
    seeded: Engine, tmp_path: Path, kind: str, text: str, problem: str
) -> None:
    before = snapshot(seeded)
    path = write(tmp_path, f"{kind}.csv", text)
    assert problems_of(seeded, kind, path) == [f"{path}:{problem}"]
    assert snapshot(seeded) == before


@pytest.mark.parametrize(
    ("kind", "header", "problem"),
    [
        ("usage", "account_id,date,active_users,logins", "header: missing column(s) key_actions"),
        ("usage", f"{USAGE_HEADER},extra", "header: unexpected column(s) extra"),
        (
            "usage",
            "account,date,active_users,logins,key_actions",
            "header: missing column(s) account_id; unexpected column(s) account",
        ),
        ("usage", f"{USAGE_HEADER},date", "header: duplicate column(s) date"),
    ],
)
def test_header_problems(engine: Engine, tmp_path: Path, kind: str, header: str, problem: str) -> None:
    path = write(tmp_path, "usage.csv", f"{header}\n")
    with pytest.raises(ImportFailed) as failed:
        import_csv(engine, kind, path)
    assert failed.value.problems == [f"{path}:1: {problem}"]
    assert str(failed.value) == f"{path}: {problem}; nothing was imported"


def test_good_rows_and_one_bad_row_write_nothing(seeded: Engine, tmp_path: Path) -> None:
    import_csv(seeded, "usage", write(tmp_path, "usage.csv", USAGE))
    import_csv(seeded, "events", write(tmp_path, "events.csv", EVENTS))
    before = snapshot(seeded)
    for kind, text in [
        (
            "accounts",
            f"{ACCOUNTS}a3,Three,tech_touch,1,2025-01-01,,,,\na4,Four,tech_touch,1,2025-02-30,,,,\n",
        ),
        (
            "contacts",
            f"{CONTACTS}c4,a1,Four,four@example.com,,user,true,true\nc5,a1,Five,five@,,user,true,true\n",
        ),
        ("usage", f"{USAGE_HEADER}\na1,2026-01-01,7,7,7\na1,2026-01-09,1,1,1\na1,2026-01-10,1,x,1\n"),
        (
            "events",
            f"{EVENTS}a1,c1,2026-02-01,unsubscribed,\na1,c1,2026-02-02,sms_stop,\na1,,2026-02-03,nope,\n",
        ),
    ]:
        with pytest.raises(ImportFailed):
            import_csv(seeded, kind, write(tmp_path, f"bad_{kind}.csv", text))
    assert snapshot(seeded) == before


def test_every_problem_is_reported_up_to_max_problems(seeded: Engine, tmp_path: Path) -> None:
    lines = [USAGE_HEADER, "a1,2026-01-01,1,1,1"] + [f"a1,2026-01-{day:02d},-1,x,1" for day in range(2, 9)]
    path = write(tmp_path, "usage.csv", "\n".join(lines) + "\n")
    with pytest.raises(ImportFailed) as failed:
        import_csv(seeded, "usage", path, chunksize=3, max_problems=5)
    assert failed.value.problems == [
        f"{path}:3: active_users: must not be negative: '-1'",
        f"{path}:3: logins: not a whole number: 'x'",
        f"{path}:4: active_users: must not be negative: '-1'",
        f"{path}:4: logins: not a whole number: 'x'",
        f"{path}:5: active_users: must not be negative: '-1'",
        "… and 9 more",
    ]
    assert str(failed.value) == f"{path}: 7 bad rows (14 problems); nothing was imported"
    assert rows(seeded, UsageDaily) == []


def test_a_duplicate_across_chunks_is_caught(seeded: Engine, tmp_path: Path) -> None:
    lines = [f"a{1 + day % 2},2026-01-{day:02d},1,1,1" for day in range(1, 9)]
    lines.insert(7, "a1,2026-01-02,5,5,5")  # line 9, in chunk 3; first seen on line 3, in chunk 1
    lines.append("a2,2026-01-01,5,5,5")  # line 11, alone in chunk 4; first seen on line 2
    path = write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *lines]) + "\n")
    assert problems_of(seeded, "usage", path, chunksize=3) == [
        f"{path}:9: date: duplicate of row 3 (same account_id and date)",
        f"{path}:11: date: duplicate of row 2 (same account_id and date)",
    ]
    assert rows(seeded, UsageDaily) == []


def test_a_duplicate_within_a_chunk_and_across_chunks_of_ids(engine: Engine, tmp_path: Path) -> None:
    ids = ["a1", "a2", "a3", "a4", "a2", "a5", "a6", "a1", "a1"]
    body = "".join(f"{i},N,tech_touch,1,2025-01-01,,,,\n" for i in ids)
    path = write(tmp_path, "accounts.csv", f"{ACCOUNTS_HEADER}\n{body}")
    assert problems_of(engine, "accounts", path, chunksize=3) == [
        f"{path}:6: account_id: duplicate of row 3",
        f"{path}:9: account_id: duplicate of row 2",
        f"{path}:10: account_id: duplicate of row 2",
    ]


def test_rows_are_counted_as_lines_of_the_file(engine: Engine, tmp_path: Path) -> None:
    """Blank lines and newlines inside quoted fields count, so ROW is where an editor shows it."""
    text = (
        f"{ACCOUNTS_HEADER}\n"
        'a1,"Acme\nCorp",tech_touch,1,2025-01-01,,,,\n'  # lines 2-3
        "\n"  # line 4
        "a2,Beta,tech_touch,x,2025-01-01,,,,\n"  # line 5
        'a3,"Gamma\n\nLtd",tech_touch,1,2025-01-01,,,,\n'  # lines 6-8
        "a4,Delta,tech_touch,1,2025-01-01,,,Mars/Base,\n"  # line 9
    )
    path = write(tmp_path, "accounts.csv", text)
    for chunksize in (1, 2, 50_000):
        # A newline is a control character, refused in names: those rows are located too.
        assert problems_of(engine, "accounts", path, chunksize=chunksize) == [
            f"{path}:2: name: control character U+000A at character 5; not allowed here",
            f"{path}:5: arr: not a number: 'x'",
            f"{path}:6: name: control character U+000A at character 6; not allowed here",
            f"{path}:9: timezone: unknown IANA timezone: 'Mars/Base'",
        ]


def test_a_row_with_too_many_fields_is_reported(engine: Engine, tmp_path: Path) -> None:
    good = "a1,Acme,tech_touch,1,2025-01-01,,,,"
    first = write(tmp_path, "first.csv", f"{ACCOUNTS_HEADER}\n{good},extra\n")
    assert problems_of(engine, "accounts", first) == [f"{first}:2: row: 10 fields, but the header has 9"]
    later = write(tmp_path, "later.csv", f"{ACCOUNTS_HEADER}\n{good}\n\na2,B,tech_touch,1,2025-01-01,,,,,\n")
    assert problems_of(engine, "accounts", later, chunksize=1) == [
        f"{later}:4: row: 10 fields, but the header has 9; reading stopped here"
    ]
    assert rows(engine, Account) == []


# ----------------------------------------------------------------------------------- file level


def test_file_level_problems(engine: Engine, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    assert problems_of(engine, "accounts", missing) == [f"{missing}: no such file"]

    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"{ACCOUNTS_HEADER}\na1,Caf\xe9,tech_touch,1,2025-01-01,,,,\n".encode("latin-1"))
    assert problems_of(engine, "accounts", str(latin1)) == [
        f"{latin1}:2: encoding: not UTF-8 (byte 0xe9 at character 7); save the file as UTF-8"
    ]

    path = write(tmp_path, "accounts.csv", ACCOUNTS)
    with pytest.raises(ImportFailed) as failed:
        import_csv(engine, "deals", path)
    assert failed.value.problems == [
        f"{path}: unknown kind 'deals'; expected one of accounts, contacts, usage, events"
    ]

    assert problems_of(engine, "accounts", path, default_timezone="Mars/Base") == [
        f"{path}: default timezone: unknown IANA timezone: 'Mars/Base'"
    ]

    empty = write(tmp_path, "empty.csv", "")
    assert problems_of(engine, "accounts", empty) == [
        f"{empty}:1: header: no header row; expected {ACCOUNTS_HEADER}"
    ]
    assert rows(engine, Account) == []


def test_a_utf8_bom_is_accepted(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + ACCOUNTS.replace("Acme Corp", "Acmé Corp")).encode("utf-8"))
    assert import_csv(engine, "accounts", path).rows == 2
    assert rows(engine, Account)[0][1] == "Acmé Corp"


# --------------------------------------------------------------------------------- suppressions


def suppressions(engine: Engine) -> list[tuple[str, str, str, datetime]]:
    return [tuple(r) for r in rows(engine, Suppression)]  # type: ignore[misc]


def events_file(tmp_path: Path, name: str, *lines: str) -> str:
    return write(tmp_path, name, "\n".join([EVENTS_HEADER, *lines]) + "\n")


def test_unsubscribe_and_bounce_suppress_email(seeded: Engine, tmp_path: Path) -> None:
    path = events_file(
        tmp_path,
        "events.csv",
        "a1,c1,2026-01-05T10:00:00Z,unsubscribed,",
        "a1,c1,2026-01-09T10:00:00Z,email_bounced,",
        "a1,c2,2026-01-07T08:00:00+01:00,email_bounced,",
        "a2,c3,2026-01-07T08:00:00Z,email_opened,",
    )
    import_csv(seeded, "events", path)
    assert suppressions(seeded) == [
        ("c1", "email", "unsubscribed", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("c2", "email", "bounced", datetime(2026, 1, 7, 7, tzinfo=UTC)),
    ]
    before = snapshot(seeded)
    import_csv(seeded, "events", path)
    assert snapshot(seeded) == before


def test_sms_start_after_stop_lifts_the_suppression(seeded: Engine, tmp_path: Path) -> None:
    import_csv(seeded, "events", events_file(tmp_path, "stop.csv", "a1,c1,2026-01-05T10:00:00Z,sms_stop,"))
    assert suppressions(seeded) == [("c1", "sms", "sms_stop", datetime(2026, 1, 5, 10, tzinfo=UTC))]
    import_csv(seeded, "events", events_file(tmp_path, "start.csv", "a1,c1,2026-01-06T10:00:00Z,sms_start,"))
    assert suppressions(seeded) == []


def test_sms_stop_after_start_keeps_the_suppression(seeded: Engine, tmp_path: Path) -> None:
    path = events_file(
        tmp_path,
        "events.csv",
        "a1,c1,2026-01-07T10:00:00Z,sms_stop,",
        "a1,c1,2026-01-06T10:00:00Z,sms_start,",
        "a1,c1,2026-01-01T10:00:00Z,sms_stop,",
    )
    import_csv(seeded, "events", path)
    assert suppressions(seeded) == [("c1", "sms", "sms_stop", datetime(2026, 1, 7, 10, tzinfo=UTC))]
    # A start older than the latest stop, imported later, changes nothing: latest wins.
    import_csv(seeded, "events", events_file(tmp_path, "old.csv", "a1,c1,2026-01-06T12:00:00Z,sms_start,"))
    assert suppressions(seeded) == [("c1", "sms", "sms_stop", datetime(2026, 1, 7, 10, tzinfo=UTC))]


def test_sms_start_in_the_same_file_after_the_stop_lifts_it(seeded: Engine, tmp_path: Path) -> None:
    path = events_file(
        tmp_path,
        "events.csv",
        "a1,c1,2026-01-08T10:00:00Z,sms_start,",
        "a1,c1,2026-01-07T10:00:00Z,sms_stop,",
        "a2,c3,2026-01-07T10:00:00Z,sms_stop,",
    )
    import_csv(seeded, "events", path)
    assert suppressions(seeded) == [("c3", "sms", "sms_stop", datetime(2026, 1, 7, 10, tzinfo=UTC))]


TIE_STOP = "a1,c1,2026-01-07T10:00:00Z,sms_stop,"
TIE_START = "a1,c1,2026-01-07T10:00:00Z,sms_start,"


@pytest.mark.parametrize(
    "files",
    [
        # The same instant written with another offset, the START on the earlier line.
        pytest.param([["a1,c1,2026-01-07T11:00:00+01:00,sms_start,", TIE_STOP]], id="one-file"),
        pytest.param([[TIE_STOP], [TIE_START]], id="stop-first"),
        pytest.param([[TIE_START], [TIE_STOP]], id="start-first"),
    ],
)
def test_sms_stop_and_start_at_the_same_instant_keep_the_contact_suppressed(
    seeded: Engine, tmp_path: Path, files: list[list[str]]
) -> None:
    """A tie keeps the opt-out (techtouch.domain.suppression), however the two events arrive."""
    for number, lines in enumerate(files):
        import_csv(seeded, "events", events_file(tmp_path, f"events{number}.csv", *lines))
    assert suppressions(seeded) == [("c1", "sms", "sms_stop", datetime(2026, 1, 7, 10, tzinfo=UTC))]
    with seeded.connect() as connection:
        stored = connection.execute(select(Event.type).where(Event.contact_id == "c1")).scalars().all()
    assert sorted(stored) == ["sms_start", "sms_stop"]


def test_sms_start_does_not_lift_an_email_suppression(seeded: Engine, tmp_path: Path) -> None:
    path = events_file(
        tmp_path,
        "events.csv",
        "a1,c1,2026-01-05T10:00:00Z,unsubscribed,",
        "a1,c1,2026-01-06T10:00:00Z,sms_start,",
    )
    import_csv(seeded, "events", path)
    assert suppressions(seeded) == [("c1", "email", "unsubscribed", datetime(2026, 1, 5, 10, tzinfo=UTC))]


def test_a_bad_events_file_changes_no_suppression(seeded: Engine, tmp_path: Path) -> None:
    import_csv(seeded, "events", events_file(tmp_path, "stop.csv", "a1,c1,2026-01-05T10:00:00Z,sms_stop,"))
    before = snapshot(seeded)
    bad = events_file(tmp_path, "bad.csv", "a1,c1,2026-01-06T10:00:00Z,sms_start,", "a1,c2,2026-01-06,nope,")
    with pytest.raises(ImportFailed):
        import_csv(seeded, "events", bad)
    assert snapshot(seeded) == before


def test_seen_keys_finds_the_first_line_of_every_repeat() -> None:
    """The cross-chunk duplicate index against a dict, on random keys and uneven chunks (no database)."""
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 3_000, 20_000).astype(np.uint64)
    lines = np.arange(2, len(keys) + 2, dtype=np.int64)
    seen, got = SeenKeys(), []
    for start in range(0, len(keys), 777):
        got.extend(seen.add(keys[start : start + 777], lines[start : start + 777]).tolist())
    first: dict[int, int] = {}
    expected = []
    for key, line in zip(keys.tolist(), lines.tolist(), strict=True):
        expected.append(first.get(key, 0))
        first.setdefault(key, line)
    assert got == expected
    assert len(seen.hashes) == len(first) and bool(np.all(seen.hashes[1:] > seen.hashes[:-1]))
