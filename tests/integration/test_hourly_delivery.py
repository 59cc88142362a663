"""The hourly delivery reads the accounts it delivers to with the day's health snapshot
(`load_delivery_accounts`), not every account's signals: what it writes is byte for byte what a
delivery from the run's own accounts frame writes. Before the day's snapshot exists it loads the
accounts' state as a run does."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.state import load_delivery_accounts
from techtouch.adapters.render.context import context_builder
from techtouch.services import day as service
from techtouch.services import delivery
from techtouch.services.health import health_of_run, store_health
from techtouch.services.runner import ordered, run_journeys
from techtouch.services.seed import seed
from techtouch.settings import Settings

AS_OF = date(2027, 3, 1)
ALL_DAY = {"business_start": "00:00", "business_end": "23:59", "business_days": [0, 1, 2, 3, 4, 5, 6]}


def settings_for(url: str, outbox: Path) -> Settings:
    return Settings(database_url=url, outbox_dir=outbox, timezone="Europe/Paris", delivery=ALL_DAY)


def recorded_day(url: str, tmp_path: Path, snapshot: bool) -> Engine:
    """A seeded base with the launch day's journeys recorded (and, as the daily flow does first,
    the day's health snapshot), nothing delivered."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    seed(engine, accounts=150, seed=3, days=90, as_of=AS_OF)
    settings = settings_for(url, tmp_path / "unused")
    app = bootstrap.build(settings, engine=engine)
    state = service.load_state(app, AS_OF)
    if snapshot:
        store_health(engine, AS_OF, health_of_run(state.accounts))
    run_journeys(engine, settings, ordered(app.catalog, settings), AS_OF, app.instant(AS_OF), state=state)
    return engine


def test_the_hourly_delivery_from_the_snapshot_renders_what_the_run_frame_renders(
    db_url: str, tmp_path: Path
) -> None:
    engine = recorded_day(db_url, tmp_path, snapshot=True)
    app = bootstrap.build(settings_for(db_url, tmp_path / "outbox"), engine=engine)
    with engine.connect() as connection:
        accounts = load_delivery_accounts(connection, AS_OF)
        rows = [dict(r._mapping) for r in connection.execute(delivery.DUE_SQL)]
    assert accounts is not None and set(accounts.index) == {r["account_id"] for r in rows}
    assert 0 < len(accounts) < 150  # only the accounts with something to deliver

    # Every message rendered from the snapshot's accounts is the one the run's frame renders.
    run_frame = service.load_state(app, AS_OF).accounts
    from_snapshot = context_builder(app.settings, accounts, app.catalog, app.link_secret)
    from_run = context_builder(app.settings, run_frame, app.catalog, app.link_secret)
    emails = [r for r in rows if r["channel"] == "email"]
    assert len(emails) > 20
    for row in emails:
        mine, theirs = from_snapshot(row), from_run(row)
        assert mine["account"] == theirs["account"], row["account_id"]
        assert app.renderer.email(row["template"], mine) == app.renderer.email(row["template"], theirs)

    report = service.deliver_due(app, now=app.instant(AS_OF) + timedelta(hours=3))
    written = sorted((tmp_path / "outbox" / "email").glob("*.eml"))
    assert report.sent["email"] == len(written) == len(emails) and not report.errors
    engine.dispose()


def test_before_the_days_snapshot_the_hourly_delivery_loads_the_state(db_url: str, tmp_path: Path) -> None:
    engine = recorded_day(db_url, tmp_path, snapshot=False)
    with engine.connect() as connection:
        assert load_delivery_accounts(connection, AS_OF) is None
    app = bootstrap.build(settings_for(db_url, tmp_path / "outbox"), engine=engine)
    report = service.deliver_due(app, now=app.instant(AS_OF) + timedelta(hours=3))
    assert report.sent.get("email", 0) > 20 and not report.errors
    engine.dispose()
