"""No N+1: a day's run sends the same number of SQL statements whatever the number of accounts.

The same seeded base at two sizes (3x apart), the same days run through health, the four
journeys and delivery to the outbox; the statements of the measured day are counted. A query
per account, CTA or message would make the larger base send hundreds more.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.record import ANALYZE_AFTER, refresh_statistics
from techtouch.bootstrap import load_journeys
from techtouch.services.day import load_state, run_day
from techtouch.services.health import health_of_run, store_health
from techtouch.services.runner import ordered
from techtouch.services.seed import seed
from techtouch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2027, 3, 1)
ALL_DAY = {"business_start": "00:00", "business_end": "23:59", "business_days": [0, 1, 2, 3, 4, 5, 6]}


def statements_of_a_day(tmp_path: Path, accounts: int) -> tuple[int, int]:
    """(statements, touches) of the second day of a base of `accounts` accounts."""
    url = f"sqlite:///{tmp_path / f'{accounts}.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    seed(engine, accounts=accounts, seed=4, days=90, as_of=AS_OF, high_touch_arr=100_000)
    settings = Settings(
        database_url=url,
        outbox_dir=tmp_path / f"outbox-{accounts}",
        timezone="Europe/Paris",
        delivery=ALL_DAY,
    )
    catalog = load_journeys(settings, [ROOT / "config" / "journeys"])
    app = bootstrap.build(settings, engine=engine, catalog=catalog)
    counted: list[str] = []
    for offset in range(2):
        day = AS_OF + timedelta(days=offset)
        counted.clear()

        def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            counted.append(statement)

        event.listen(engine, "before_cursor_execute", note)
        try:
            state = load_state(app, day)
            store_health(engine, day, health_of_run(state.accounts))
            report = run_day(app, ordered(catalog, settings), day, now=app.instant(day), state=state)
        finally:
            event.remove(engine, "before_cursor_execute", note)
    touches = sum(int(j.steps["count"].sum()) for j in report.journeys if len(j.steps))
    engine.dispose()
    return len(counted), touches


def test_a_run_sends_as_many_statements_for_600_accounts_as_for_200(tmp_path: Path) -> None:
    small, small_touches = statements_of_a_day(tmp_path, 200)
    large, large_touches = statements_of_a_day(tmp_path, 600)
    assert large_touches > 2 * small_touches > 0, "the larger base does more work"
    # A few statements may come and go with what the day holds (a journey with or without CTAs),
    # never one per account, CTA or message.
    assert large - small <= 15, (small, large)


def test_after_a_big_write_postgresql_gets_fresh_planner_statistics(postgres_url: str) -> None:
    """A run that wrote many touches ANALYZEs what it wrote: autovacuum would be minutes late."""
    engine = make_engine(postgres_url)
    migrate.upgrade(engine)
    query = text("SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname IN ('touches', 'ctas')")
    try:
        refresh_statistics(engine, ANALYZE_AFTER - 1)
        with engine.connect() as connection:
            assert all(row.last_analyze is None for row in connection.execute(query))
        refresh_statistics(engine, ANALYZE_AFTER)
        with engine.connect() as connection:
            analyzed = {row.relname: row.last_analyze for row in connection.execute(query)}
        assert set(analyzed) == {"touches", "ctas"} and all(analyzed.values()), analyzed
    finally:
        engine.dispose()


def test_a_seed_and_a_big_import_leave_postgresql_with_planner_statistics(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk loads ANALYZE what they loaded: with autovacuum off (as on the benchmark's server) the
    1M steady day's events lookup went through the wrong index for want of any statistics."""
    from techtouch.services.importing import pipeline
    from techtouch.services.importing.pipeline import import_csv

    engine = make_engine(postgres_url)
    migrate.upgrade(engine)
    query = text("SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname = :t")
    try:
        seed(engine, accounts=30, seed=1, days=10, as_of=date(2027, 3, 1))
        with engine.connect() as connection:
            for table in ("accounts", "contacts", "usage_daily", "events"):
                assert connection.execute(query, {"t": table}).one().last_analyze is not None, table
            before = connection.execute(query, {"t": "usage_daily"}).one().last_analyze
        usage = tmp_path / "usage.csv"
        usage.write_text(
            "account_id,date,active_users,logins,key_actions\nA000001,2027-03-01,1,2,3\n", encoding="utf-8"
        )
        import_csv(engine, "usage", usage)  # one row: below ANALYZE_AFTER, no ANALYZE
        with engine.connect() as connection:
            assert connection.execute(query, {"t": "usage_daily"}).one().last_analyze == before
        monkeypatch.setattr(pipeline, "ANALYZE_AFTER", 1)
        import_csv(engine, "usage", usage)
        with engine.connect() as connection:
            assert connection.execute(query, {"t": "usage_daily"}).one().last_analyze > before
    finally:
        engine.dispose()
