"""A sharded run reads only its shard in SQL, and the shards together are the whole run.

On real SQLite and PostgreSQL: a seeded base run for a few days, then each shard's state (the
accounts with their signals and health, contacts, cap counts) compared with the whole state split
in pandas by `Shard.mask`, and each shard's decisions (a dry run of every journey) compared with
the whole run's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, event, text

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.state import load_cap_counts
from techtouch.bootstrap import load_journeys
from techtouch.domain.shards import ALL, Shard
from techtouch.services.health import compute_health, health_of_run
from techtouch.services.runner import load_run_state, ordered, run_journeys
from techtouch.services.seed import seed
from techtouch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2027, 3, 1)
SHARDS = 3


@pytest.fixture
def base(db_url: str, tmp_path: Path) -> Iterator[tuple[Engine, Settings]]:
    """600 seeded accounts after two recorded days, so enrollments, touches and CTAs exist."""
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    seed(engine, accounts=600, seed=7, days=90, as_of=AS_OF)
    settings = Settings(database_url=db_url, outbox_dir=tmp_path / "outbox", timezone="Europe/Paris")
    journeys = ordered(load_journeys(settings, [ROOT / "config" / "journeys"]), settings)
    for offset in range(2):
        day = AS_OF + timedelta(days=offset)
        run_journeys(engine, settings, journeys, day, bootstrap.build(settings, engine=engine).instant(day))
    try:
        yield engine, settings
    finally:
        engine.dispose()


def _same_rows(part: pd.DataFrame, whole: pd.DataFrame) -> None:
    """`part` holds exactly the rows of `whole` it should; a column whole has and part lacks (no
    account of the shard has such an event) is all missing in those rows."""
    assert sorted(part.index) == sorted(whole.index)
    for column in whole.columns.difference(part.columns):
        assert whole[column].isna().all() or not whole[column].astype(bool).any(), column
    shared = [c for c in whole.columns if c in part.columns]
    pd.testing.assert_frame_equal(
        part.loc[whole.index, shared], whole[shared], check_dtype=False, check_like=True
    )


def _ledger(caps: pd.DataFrame) -> list[tuple[str, ...]]:
    return sorted(map(tuple, caps.astype(str).to_numpy()))


def test_each_shard_reads_its_own_accounts_contacts_and_caps(base: tuple[Engine, Settings]) -> None:
    engine, settings = base
    day = AS_OF + timedelta(days=2)
    run_at = bootstrap.build(settings, engine=engine).instant(day)
    whole = load_run_state(engine, settings, day, run_at)
    seen: set[str] = set()
    for index in range(SHARDS):
        shard = Shard(index, SHARDS)
        part = load_run_state(engine, settings, day, run_at, shard=shard)
        assert len(part.accounts), f"{shard} holds accounts"
        _same_rows(part.accounts, whole.accounts[shard.mask(whole.accounts.index)])
        contacts = whole.contacts[whole.contacts["account_id"].isin(part.accounts.index)]
        pd.testing.assert_frame_equal(
            part.contacts.sort_values("contact_id").reset_index(drop=True),
            contacts.sort_values("contact_id").reset_index(drop=True),
        )
        with engine.connect() as connection:
            whole_caps = load_cap_counts(connection, day)
            part_caps = load_cap_counts(connection, day, shard)
            some = sorted(part.accounts.index)[::7]
            candidates_caps = load_cap_counts(connection, day, shard, accounts=some)
        assert len(part_caps) and len(candidates_caps)
        expected = whole_caps[whole_caps["contact_id"].isin(set(contacts["contact_id"]))]
        assert _ledger(part_caps) == _ledger(expected)
        of_some = set(contacts.loc[contacts["account_id"].isin(some), "contact_id"])
        assert _ledger(candidates_caps) == _ledger(whole_caps[whole_caps["contact_id"].isin(of_some)])
        assert not seen & set(part.accounts.index)
        seen |= set(part.accounts.index)
    assert seen == set(whole.accounts.index)


def test_the_shards_decide_together_what_the_whole_run_decides(base: tuple[Engine, Settings]) -> None:
    engine, settings = base
    day = AS_OF + timedelta(days=2)
    run_at = bootstrap.build(settings, engine=engine).instant(day)
    journeys = ordered(load_journeys(settings, [ROOT / "config" / "journeys"]), settings)

    def planned(shard: Shard) -> set[tuple[str, ...]]:
        report = run_journeys(engine, settings, journeys, day, run_at, dry_run=True, shard=shard)
        rows: set[tuple[str, ...]] = set()
        for journey, (_, plan) in report.decisions.items():
            for touch in plan.touches.itertuples():
                rows.add((journey, str(touch.account_id), str(touch.contact_id), str(touch.rung)))
            for cta in plan.ctas.itertuples():
                rows.add((journey, str(cta.account_id), "cta", str(cta.reason)))
        return rows

    whole = planned(ALL)
    assert len(whole) > 20, "the day plans touches and CTAs"
    parts = [planned(Shard(index, SHARDS)) for index in range(SHARDS)]
    assert all(parts) and set().union(*parts) == whole
    assert sum(len(p) for p in parts) == len(whole)


def test_a_shard_never_reads_another_shards_rows(base: tuple[Engine, Settings]) -> None:
    """Every statement of a sharded load names the shard (no whole-table read filtered in pandas)."""
    engine, settings = base
    day = AS_OF + timedelta(days=2)
    run_at = bootstrap.build(settings, engine=engine).instant(day)
    shard = Shard(1, SHARDS)
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        state = load_run_state(engine, settings, day, run_at, shard=shard)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) >= 5
    unsharded = [s for s in reads if "shard_key %" not in s]
    assert not unsharded, unsharded
    with engine.connect() as connection:
        in_shard = connection.execute(
            text("SELECT COUNT(*) FROM accounts WHERE shard_key % 3 = 1")
        ).scalar_one()
    assert len(state.accounts) == in_shard


def test_the_cycles_snapshot_from_the_run_is_the_health_command_s(base: tuple[Engine, Settings]) -> None:
    """The cycle writes the day's health from the accounts it loaded (one read of the signals):
    the same numbers `techtouch health` computes on its own."""
    engine, settings = base
    day = AS_OF + timedelta(days=2)
    run_at = bootstrap.build(settings, engine=engine).instant(day)
    from_run = health_of_run(load_run_state(engine, settings, day, run_at).accounts)
    alone = compute_health(engine, day, run_at, settings.health)
    pd.testing.assert_frame_equal(
        from_run.sort_index()[sorted(alone.columns)],
        alone.sort_index()[sorted(alone.columns)],
        check_dtype=False,
        check_names=False,
    )
