from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import Account, Event, HealthSnapshot, UsageDaily
from techtouch.services.health import compute_health
from techtouch.settings import HealthModel

AS_OF = date(2027, 3, 1)
CUTOFF = datetime(2027, 3, 1, 7, tzinfo=UTC)


def _account(account_id: str, **extra: object) -> dict:
    return {
        "id": account_id,
        "name": account_id,
        "segment": "tech_touch",
        "arr": 5000.0,
        "start_date": date(2025, 1, 1),
        "renewal_date": date(2027, 9, 1),
        "csm_email": None,
        "timezone": None,
        "paused_until": None,
        "is_advocate": False,
        "updated_at": CUTOFF,
    } | extra


def _usage(account_id: str, per_day: dict[int, int]) -> list[dict]:
    return [
        {
            "account_id": account_id,
            "date": AS_OF - timedelta(days=d),
            "active_users": 3,
            "logins": 5 if actions else 0,
            "key_actions": actions,
        }
        for d, actions in per_day.items()
    ]


@pytest.fixture
def base(engine: Engine) -> Engine:
    with engine.begin() as c:
        insert_rows(c, Account.__table__, [_account("steady"), _account("dropped"), _account("empty")])
        insert_rows(
            c,
            UsageDaily.__table__,
            _usage("steady", {d: 10 for d in range(1, 61)})
            + _usage("dropped", {d: (3 if d <= 30 else 10) for d in range(1, 61)})
            # usage on the as_of day itself is not in yet at the run time
            + _usage("steady", {0: 999}),
        )
        insert_rows(
            c,
            Event.__table__,
            [
                {
                    "key": "k1",
                    "account_id": "steady",
                    "contact_id": None,
                    "type": "survey",
                    "value": "nps:9",
                    "occurred_at": CUTOFF - timedelta(days=3),
                    "source": "test",
                },
                {
                    "key": "k2",
                    "account_id": "steady",
                    "contact_id": None,
                    "type": "survey",
                    "value": "nps:2",
                    "occurred_at": CUTOFF + timedelta(hours=1),
                    "source": "test",
                },
            ],
        )
    return engine


def test_health_reads_the_windows_and_stores_a_daily_snapshot(base: Engine) -> None:
    scored = compute_health(base, AS_OF, CUTOFF, HealthModel())
    assert scored.loc["steady", "usage_change_30d"] == pytest.approx(0.0)
    assert scored.loc["dropped", "usage_change_30d"] == pytest.approx(-0.7)
    assert scored.loc["steady", "key_actions_30d"] == 300  # the as_of day is excluded
    assert scored.loc["steady", "sentiment_score"] == pytest.approx(90.0)  # the later answer is after cutoff
    assert scored.loc["empty", "logins_14d"] == 0
    assert scored.loc["steady", "score"] > scored.loc["dropped", "score"] > scored.loc["empty", "score"]

    with base.connect() as c:
        stored = {r.account_id: r for r in c.execute(select(HealthSnapshot))}
    assert set(stored) == {"steady", "dropped", "empty"}
    assert stored["dropped"].usage_change_30d == pytest.approx(-0.7)
    assert stored["empty"].usage_change_30d is None
    assert stored["steady"].color == scored.loc["steady", "color"]


def test_recomputing_a_day_replaces_it_and_another_day_adds_to_the_trend(base: Engine) -> None:
    compute_health(base, AS_OF, CUTOFF, HealthModel())
    compute_health(base, AS_OF, CUTOFF, HealthModel())
    compute_health(base, AS_OF + timedelta(days=1), CUTOFF + timedelta(days=1), HealthModel())
    with base.connect() as c:
        per_day = dict(
            c.execute(select(HealthSnapshot.as_of, func.count()).group_by(HealthSnapshot.as_of)).all()
        )
    assert per_day == {AS_OF: 3, AS_OF + timedelta(days=1): 3}


def test_a_snapshot_written_in_batches_is_the_same_snapshot(
    base: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store_health writes STORE_BATCH accounts per upsert: two batches store what one does."""
    from techtouch.services import health

    def snapshot() -> list[tuple[object, ...]]:
        with base.connect() as c:
            return [tuple(r) for r in c.execute(select(HealthSnapshot).order_by(HealthSnapshot.account_id))]

    compute_health(base, AS_OF, CUTOFF, HealthModel())
    whole = snapshot()
    with base.begin() as c:
        c.execute(HealthSnapshot.__table__.delete())
    monkeypatch.setattr(health, "STORE_BATCH", 2)
    compute_health(base, AS_OF, CUTOFF, HealthModel())
    assert len(whole) == 3 and snapshot() == whole
