"""The synthetic customer base on real SQLite and PostgreSQL: invariants, determinism, refusal."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from email_validator import validate_email
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from techtouch.adapters.db import migrate
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import (
    Account,
    Base,
    Contact,
    Cta,
    Enrollment,
    Event,
    HealthSnapshot,
    Suppression,
    Touch,
    UsageDaily,
)
from techtouch.adapters.db.signals import usage_signals
from techtouch.services.importing import event_key
from techtouch.services.seed import SeedRefused, _next_anniversary, seed
from tests.conftest import POSTGRES_ADMIN_URL

AS_OF = date(2027, 3, 1)
MIDNIGHT = datetime.combine(AS_OF, time(0), tzinfo=UTC)


def _frame(engine: Engine, table: type[Base]) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql_query(select(table.__table__), connection)


def _dump(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, as sorted reprs: equal dumps mean identical contents."""
    with engine.connect() as connection:
        return {
            table.name: sorted(repr(tuple(row)) for row in connection.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def fresh_engine(engine: Engine, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """Makes further migrated, empty databases on the same backend as `engine`."""
    made: list[tuple[Engine, str | None]] = []
    admin = None
    if engine.dialect.name == "postgresql":
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def make() -> Engine:
        if admin is None:
            url, name = f"sqlite:///{tmp_path / f'extra_{len(made)}.db'}", None
        else:
            name = f"tt_test_{uuid.uuid4().hex[:12]}"
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        other = make_engine(url)
        migrate.upgrade(other)
        made.append((other, name))
        return other

    yield make
    for other, name in made:
        other.dispose()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if admin is not None:
        admin.dispose()


def test_seed_counts_and_invariants(engine: Engine) -> None:
    written: dict[str, int] = {}
    summary = seed(
        engine,
        accounts=200,
        seed=7,
        as_of=AS_OF,
        progress=lambda stage, n: written.__setitem__(stage, written.get(stage, 0) + n),
    )
    accounts = _frame(engine, Account)
    contacts = _frame(engine, Contact)
    usage = _frame(engine, UsageDaily)
    events = _frame(engine, Event)
    suppressions = _frame(engine, Suppression)

    assert (summary.accounts, summary.contacts, summary.usage_rows, summary.events) == (
        len(accounts),
        len(contacts),
        len(usage),
        len(events),
    )
    assert written == {
        "accounts": 200,
        "contacts": len(contacts),
        "usage_daily": len(usage),
        "events": len(events),
        "suppressions": len(suppressions),
    }
    assert accounts["id"].iloc[0] == "A000001" and accounts["id"].is_unique

    # Accounts: segment follows ARR, high-touch is a small slice and always has a CSM.
    high = accounts["segment"] == "high_touch"
    assert (high == (accounts["arr"] >= 100_000)).all()
    assert 0 < high.sum() <= 0.10 * len(accounts)
    assert accounts.loc[high, "csm_email"].notna().all()
    assert accounts["csm_email"].isna().any()
    start = pd.to_datetime(accounts["start_date"])
    renewal = pd.to_datetime(accounts["renewal_date"])
    days_to_renewal = (renewal - pd.Timestamp(AS_OF)).dt.days
    assert days_to_renewal.between(1, 366 + 31).all()
    assert (renewal.dt.month == start.dt.month).all() and (renewal - start).dt.days.min() >= 365
    assert 0.15 < (days_to_renewal <= 120).mean() < 0.5
    assert (start > pd.Timestamp(AS_OF - timedelta(days=31))).any()

    # Contacts: 1-5 per account, the first of each an admin; valid phones and emails.
    per_account = contacts.groupby("account_id").size().reindex(accounts["id"], fill_value=0)
    assert per_account.between(1, 5).all()
    admins = contacts[contacts["role"] == "admin"].groupby("account_id").size()
    assert (admins.reindex(accounts["id"], fill_value=0) == 1).all()
    phones = contacts["phone"].dropna()
    assert 0.4 < len(phones) / len(contacts) < 0.8
    for phone in phones:
        parsed = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(parsed), phone
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == phone
    for email in contacts["email"]:
        assert validate_email(email, check_deliverability=False).normalized == email
    assert not contacts.loc[contacts["phone"].isna(), "sms_consent"].astype(bool).any()

    # Usage: only from start_date to as_of - 1, never negative; some accounts drop or go silent.
    assert (usage[["active_users", "logins", "key_actions"]] >= 0).all().all()
    dates = pd.to_datetime(usage["date"])
    starts = usage["account_id"].map(accounts.set_index("id")["start_date"]).pipe(pd.to_datetime)
    assert (dates >= starts).all()
    assert dates.min() >= pd.Timestamp(AS_OF - timedelta(days=90))
    assert dates.max() == pd.Timestamp(AS_OF - timedelta(days=1))
    with engine.connect() as connection:
        signals = usage_signals(connection, AS_OF)
    assert (signals["usage_change_30d"] <= -0.3).sum() >= 5
    assert (signals["logins_14d"] == 0).sum() >= 1

    # Events: before as_of, keys unique and reproducible, opt-outs mirrored as suppressions.
    assert events["key"].is_unique
    assert (events["source"] == "seed").all()
    occurred = pd.to_datetime(events["occurred_at"])
    assert occurred.max() < pd.Timestamp(MIDNIGHT)
    for row in events.itertuples():
        when = row.occurred_at.to_pydatetime()
        assert when.tzinfo is not None
        contact = None if pd.isna(row.contact_id) else row.contact_id
        value = None if pd.isna(row.value) else row.value
        assert row.key == event_key(row.account_id, contact, when, row.type, value)
    assert {"milestone", "survey", "email_opened"} <= set(events["type"])
    surveys = events.loc[events["type"] == "survey", "value"].str.split(":").str[0]
    assert {"nps", "csat", "renewal"} <= set(surveys)
    opt_outs = events[events["type"].isin(["unsubscribed", "sms_stop"])]
    assert len(opt_outs) == len(suppressions) > 0
    expected = {
        (c, "email" if t == "unsubscribed" else "sms", t)
        for c, t in zip(opt_outs["contact_id"], opt_outs["type"], strict=True)
    }
    assert set(
        zip(suppressions["contact_id"], suppressions["channel"], suppressions["reason"], strict=True)
    ) == (expected)


def test_same_arguments_give_identical_databases(engine: Engine, fresh_engine: Callable[[], Engine]) -> None:
    other = fresh_engine()
    third = fresh_engine()
    seed(engine, accounts=120, seed=3, days=75, as_of=AS_OF)
    seed(other, accounts=120, seed=3, days=75, as_of=AS_OF)
    seed(third, accounts=120, seed=4, days=75, as_of=AS_OF)
    first = _dump(engine)
    assert first["usage_daily"] and first["events"]
    assert first == _dump(other)
    different = _dump(third)
    assert different["accounts"] != first["accounts"] and different["usage_daily"] != first["usage_daily"]


def test_refuses_a_populated_database_and_replaces_everything(engine: Engine) -> None:
    seed(engine, accounts=40, seed=1, as_of=AS_OF)
    before = _dump(engine)
    with pytest.raises(SeedRefused):
        seed(engine, accounts=10, as_of=AS_OF)
    assert _dump(engine) == before

    # Journey state hanging off the seeded accounts must go as well.
    with engine.begin() as connection:
        insert_rows(
            connection,
            HealthSnapshot.__table__,
            [
                {
                    "account_id": "A000001",
                    "as_of": AS_OF,
                    "score": 50.0,
                    "color": "yellow",
                    "usage_score": 50.0,
                    "engagement_score": 50.0,
                    "sentiment_score": 50.0,
                    "renewal_score": 50.0,
                    "usage_change_30d": None,
                    "logins_14d": 0,
                    "active_users_7d": 0.0,
                    "key_actions_30d": 0,
                }
            ],
        )
        enrollment_id = connection.execute(
            Enrollment.__table__.insert()
            .values(account_id="A000001", journey="renewal", entered_as_of=AS_OF)
            .returning(Enrollment.id)
        ).scalar_one()
        connection.execute(
            Touch.__table__.insert().values(
                key="k1",
                enrollment_id=enrollment_id,
                account_id="A000001",
                journey="renewal",
                milestone="announce",
                rung="email",
                channel="email",
                as_of=AS_OF,
            )
        )
        connection.execute(
            Cta.__table__.insert().values(
                account_id="A000001",
                enrollment_id=enrollment_id,
                journey="renewal",
                reason="r",
                title="t",
                assignee="team",
                due_date=AS_OF,
                created_as_of=AS_OF,
            )
        )

    summary = seed(engine, accounts=25, seed=1, as_of=AS_OF, replace=True)
    assert summary.accounts == 25
    with engine.connect() as connection:
        for model in (HealthSnapshot, Enrollment, Touch, Cta):
            assert connection.execute(select(func.count()).select_from(model)).scalar_one() == 0
        assert connection.execute(select(func.count()).select_from(Account)).scalar_one() == 25
        assert connection.execute(select(func.max(Account.id))).scalar_one() == "A000025"
        assert connection.execute(select(func.min(Event.id))).scalar_one() == 1


def test_next_anniversary_handles_leap_days_and_future_starts() -> None:
    starts = np.array(["2024-02-29", "2026-03-01", "2025-07-15", "2027-03-20", "2027-02-28"], dtype="M8[D]")
    got = _next_anniversary(starts, np.datetime64("2027-03-01"))
    expected = np.array(["2028-02-29", "2028-03-01", "2027-07-15", "2028-03-20", "2028-02-28"], dtype="M8[D]")
    assert got.tolist() == expected.tolist()
