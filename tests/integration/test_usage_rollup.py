"""The incremental usage signals: a day's window sums from the last snapshot's plus the days that
entered and left each window, always equal to summing the raw rows, also when a day of usage is
imported again, arrives late, or the base is days old. Real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, event, text

from techtouch.adapters.db.signals import usage_signals, usage_signals_from_rows
from techtouch.domain.policy import HealthModel
from techtouch.domain.shards import Shard
from techtouch.services.health import compute_health
from techtouch.services.importing import import_csv
from techtouch.services.seed import seed
from techtouch.services.simulate import advance_usage

AS_OF = date(2027, 3, 1)


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed(engine, accounts=400, seed=3, days=90, as_of=AS_OF)
    return engine


def cutoff(day: date) -> datetime:
    return datetime.combine(day, time(7), tzinfo=UTC)


def snapshot(engine: Engine, day: date) -> None:
    """The day's health snapshot: what keeps the window sums for the next days."""
    compute_health(engine, day, cutoff(day), HealthModel())


def signals(engine: Engine, day: date, shard: Shard | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The incremental signals and the SQL they ran."""
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        with engine.connect() as connection:
            frame = usage_signals(connection, day) if shard is None else usage_signals(connection, day, shard)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return frame, statements


def from_rows(engine: Engine, day: date, shard: Shard | None = None) -> pd.DataFrame:
    with engine.connect() as connection:
        if shard is None:
            return usage_signals_from_rows(connection, day)
        return usage_signals_from_rows(connection, day, shard)


def assert_same(incremental: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Equal for every account with usage; an account the snapshot keeps with all sums zero (no
    row in 60 days) is missing from the raw sums, which the run reads as zero too."""
    extra = incremental.index.difference(reference.index)
    assert (incremental.loc[extra, ["key_actions_30d", "logins_14d", "active_days_30d"]] == 0).all().all()
    assert reference.index.difference(incremental.index).empty, "an account lost its signals"
    pd.testing.assert_frame_equal(
        incremental.loc[reference.index].sort_index(), reference.sort_index(), check_like=True
    )


def used_the_snapshot(statements: list[str]) -> bool:
    return any("key_actions_out30" in s for s in statements)


def write_usage(path: Path, rows: list[tuple[str, date, int, int, int]]) -> Path:
    lines = ["account_id,date,active_users,logins,key_actions"]
    lines += [f"{a},{d.isoformat()},{u},{n},{k}" for a, d, u, n, k in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def accounts_with_usage(engine: Engine, day: date, count: int) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT account_id FROM usage_daily WHERE date = :d ORDER BY account_id LIMIT :n"),
                {"d": day, "n": count},
            ).scalars()
        )


def test_without_a_snapshot_the_signals_are_the_raw_sums(seeded: Engine) -> None:
    frame, statements = signals(seeded, AS_OF)
    assert not used_the_snapshot(statements)
    assert_same(frame, from_rows(seeded, AS_OF))


def test_the_next_days_add_and_take_out_days_and_equal_the_raw_sums(seeded: Engine) -> None:
    snapshot(seeded, AS_OF)
    day = AS_OF
    for _ in range(3):
        day += timedelta(days=1)
        advance_usage(seeded, day)  # yesterday's usage arrives before the run
        frame, statements = signals(seeded, day)
        assert used_the_snapshot(statements)
        assert_same(frame, from_rows(seeded, day))
        snapshot(seeded, day)


def test_a_base_several_days_old_still_gives_the_raw_sums_and_a_week_old_one_is_not_used(
    seeded: Engine,
) -> None:
    snapshot(seeded, AS_OF)
    for offset in range(1, 10):
        advance_usage(seeded, AS_OF + timedelta(days=offset))
    for offset in (3, 7):
        frame, statements = signals(seeded, AS_OF + timedelta(days=offset))
        assert used_the_snapshot(statements)
        assert_same(frame, from_rows(seeded, AS_OF + timedelta(days=offset)))
    frame, statements = signals(seeded, AS_OF + timedelta(days=8))
    assert not used_the_snapshot(statements)
    assert_same(frame, from_rows(seeded, AS_OF + timedelta(days=8)))


def test_a_day_imported_again_or_late_changes_the_signals_as_the_raw_sums(
    seeded: Engine, tmp_path: Path
) -> None:
    snapshot(seeded, AS_OF)
    day = AS_OF + timedelta(days=1)
    advance_usage(seeded, day)
    snapshot(seeded, day)  # the base of the next day
    changed = accounts_with_usage(seeded, AS_OF - timedelta(days=5), 25)
    # Late: a day inside every window (five days back) imported again with other numbers, and a
    # day an account had no row for; also a day at the far edge of the 60 days.
    rows = [(a, AS_OF - timedelta(days=5), 50, 40, 900) for a in changed]
    rows += [(a, AS_OF - timedelta(days=58), 9, 9, 77) for a in changed[:5]]
    with seeded.begin() as connection:
        connection.execute(
            text("DELETE FROM usage_daily WHERE account_id = :a AND date = :d"),
            {"a": changed[0], "d": AS_OF - timedelta(days=20)},
        )
    rows.append((changed[0], AS_OF - timedelta(days=20), 3, 3, 333))
    import_csv(seeded, "usage", write_usage(tmp_path / "late.csv", rows))

    after = day + timedelta(days=1)
    advance_usage(seeded, after)
    frame, statements = signals(seeded, after)
    assert used_the_snapshot(statements), "the other accounts still start from the snapshot"
    reference = from_rows(seeded, after)
    assert_same(frame, reference)
    assert (reference.loc[changed, "key_actions_30d"] >= 900).all()

    # The same day imported once more with the first numbers back: the signals follow again.
    snapshot(seeded, after)
    again = [(a, AS_OF - timedelta(days=5), 1, 1, 1) for a in changed]
    import_csv(seeded, "usage", write_usage(tmp_path / "again.csv", again))
    later = after + timedelta(days=1)
    advance_usage(seeded, later)
    frame, _ = signals(seeded, later)
    assert_same(frame, from_rows(seeded, later))


def test_the_usual_morning_import_keeps_the_base(seeded: Engine, tmp_path: Path) -> None:
    """Yesterday's usage arriving before the run lies in no snapshot's windows yet."""
    snapshot(seeded, AS_OF)
    day = AS_OF + timedelta(days=1)
    ids = accounts_with_usage(seeded, AS_OF - timedelta(days=1), 400)
    import_csv(seeded, "usage", write_usage(tmp_path / "yesterday.csv", [(a, AS_OF, 2, 3, 4) for a in ids]))
    with seeded.connect() as connection:
        kept = connection.execute(
            text("SELECT COUNT(*) FROM health_snapshots WHERE as_of = :d AND active_days_30d IS NOT NULL"),
            {"d": AS_OF},
        ).scalar_one()
    assert kept == 400
    frame, statements = signals(seeded, day)
    assert used_the_snapshot(statements)
    assert_same(frame, from_rows(seeded, day))


def test_each_shard_starts_from_its_own_snapshot(seeded: Engine) -> None:
    snapshot(seeded, AS_OF)
    day = AS_OF + timedelta(days=1)
    advance_usage(seeded, day)
    for index in range(2):
        shard = Shard(index, 2)
        frame, statements = signals(seeded, day, shard)
        assert used_the_snapshot(statements)
        assert_same(frame, from_rows(seeded, day, shard))
