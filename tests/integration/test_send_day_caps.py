"""The frequency cap counts on the customer's day (issue 13, point 2), on SQLite and PostgreSQL.

A message counts on the local date of its `send_at` in the recipient's timezone, not on the run's
`as_of`: a weekend run schedules for Monday, and Monday's run must find that message there. The
rolling 7 days are local send days too. The runs stand for fixed UTC instants (`as_of` at 07:00 in
the team's zone). Default caps: 1 message per contact per day, 3 per rolling 7 days.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from techtouch.adapters.db.models import Touch
from techtouch.domain.policy import Delivery
from techtouch.settings import Settings
from tests.integration.journey_base import Base, account, contact, settings_for

MON = date(2027, 1, 4)
SAT, SUN, MON2, TUE2, WED2 = (MON + timedelta(days=d) for d in (5, 6, 7, 8, 9))
ZONES = {"la": "America/Los_Angeles", "tk": "Asia/Tokyo"}


@pytest.fixture
def base(engine: Engine, tmp_path: Path) -> Base:
    return Base(engine, settings_for(engine, tmp_path / "outbox"))


def messages(engine: Engine) -> list[Touch]:
    with Session(engine) as c:
        statement = select(Touch).where(Touch.channel.in_(("email", "sms"))).order_by(Touch.id)
        return list(c.execute(statement).scalars())


def local_day(touch: Touch, zone: str) -> date:
    assert touch.send_at is not None
    return touch.send_at.astimezone(ZoneInfo(zone)).date()


def by_account(engine: Engine, zones: dict[str, str]) -> dict[str, list[tuple[str, date, date]]]:
    """Per account: (journey, as_of, local send day) of each message, in the order recorded."""
    found: dict[str, list[tuple[str, date, date]]] = {a: [] for a in zones}
    for t in messages(engine):
        found[t.account_id].append((t.journey, t.as_of, local_day(t, zones[t.account_id])))
    return found


def onboarding_then_renewal(base: Base, zones: dict[str, str], onboarding: date, renewal: date) -> None:
    """One admin per account: onboarding enrolls it on `onboarding` (its start date), renewal on
    `renewal` (120 days before its renewal date). Onboarding has priority: it plans first."""
    base.add(
        [
            account(a, timezone=z, start_date=onboarding, renewal_date=renewal + timedelta(days=120))
            for a, z in zones.items()
        ],
        [contact(f"c{a}", a) for a in zones],
        as_of=onboarding,
    )


def test_a_weekend_message_for_monday_takes_mondays_place(base: Base) -> None:
    """Saturday's run schedules the welcome for Monday in Los Angeles and Tokyo alike (a Saturday
    06:00 UTC run is Friday evening in LA and Saturday afternoon in Tokyo); Monday's run then finds
    the renewal announcement's day taken, and it goes out on Tuesday."""
    onboarding_then_renewal(base, ZONES, onboarding=SAT, renewal=MON2)
    for day in (SAT, SUN, MON2, TUE2, WED2):
        base.run(day)
    got = by_account(base.engine, ZONES)
    for account_id in ZONES:
        days = [send_day for _, _, send_day in got[account_id]]
        assert Counter(days).most_common(1)[0][1] == 1, (account_id, got[account_id])  # one a day
        assert got[account_id][:3] == [
            ("onboarding", SAT, MON2),  # welcome: the weekend holds it to Monday
            ("renewal", TUE2, TUE2),  # wanted Monday, which the welcome already has
            ("onboarding", WED2, WED2),  # training
        ], account_id


def test_the_recipients_day_decides_not_the_runs(base: Base, tmp_path: Path) -> None:
    """A team in Tokyo runs at 07:00 there: for Los Angeles, Tuesday's run is Monday 14:00, so its
    message would land on Monday, next to the one Monday's run scheduled; for Tokyo it is Tuesday."""
    base.settings = Settings(
        database_url=base.settings.database_url, outbox_dir=tmp_path / "outbox", timezone="Asia/Tokyo"
    )
    onboarding_then_renewal(base, ZONES, onboarding=MON2, renewal=TUE2)
    for day in (MON2, TUE2, WED2):
        base.run(day)
    got = by_account(base.engine, ZONES)
    assert got["la"][:2] == [("onboarding", MON2, MON2), ("renewal", WED2, TUE2)]
    assert got["tk"][:2] == [("onboarding", MON2, MON2), ("renewal", TUE2, TUE2)]
    for account_id in ZONES:
        assert len({send_day for _, _, send_day in got[account_id]}) == len(got[account_id])


def test_the_rolling_seven_days_count_send_days(engine: Engine, tmp_path: Path) -> None:
    """At most 1 message per rolling 7 days. Sunday's run schedules for Monday; a Friday run would
    land 4 days later (inside the same 7 days: it waits), a Saturday run lands on the next Monday,
    7 days later: it goes, although that run is only 6 days after Sunday's."""
    base = Base(engine, settings_for(engine, tmp_path / "outbox", delivery=Delivery(max_per_7d=1)))
    zones = {"a": "Europe/Paris", "b": "Europe/Paris"}
    base.add(
        [
            account("a", start_date=SUN, renewal_date=SUN + timedelta(days=6 + 120)),  # renewal: Saturday
            account("b", start_date=SUN, renewal_date=SUN + timedelta(days=5 + 120)),  # renewal: Friday
        ],
        [contact("ca", "a"), contact("cb", "b")],
        as_of=SUN,
    )
    base.run(SUN, "onboarding")
    friday, saturday = SUN + timedelta(days=5), SUN + timedelta(days=6)
    base.run(friday, "renewal")
    base.run(saturday, "renewal")
    next_monday = MON2 + timedelta(days=7)
    got = by_account(base.engine, zones)
    assert got["a"] == [("onboarding", SUN, MON2), ("renewal", saturday, next_monday)]
    assert got["b"] == [("onboarding", SUN, MON2), ("renewal", saturday, next_monday)]
