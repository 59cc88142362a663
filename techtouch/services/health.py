"""Health for a day: read every account's signals, score them (domain.health), store the snapshot."""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

import pandas as pd
from sqlalchemy import Engine, Table, select

from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import Account, HealthSnapshot
from techtouch.adapters.db.sharding import account_in_shard
from techtouch.adapters.db.signals import SUMS as USAGE_SUMS
from techtouch.adapters.db.signals import latest_events, usage_signals
from techtouch.domain.health import DIMENSIONS, score_health
from techtouch.domain.policy import HealthModel
from techtouch.domain.shards import ALL, Shard


def load_signals(engine: Engine, as_of: date, cutoff: datetime, shard: Shard = ALL) -> pd.DataFrame:
    """One row per account (of the shard) with everything `score_health` reads."""
    with engine.connect() as connection:
        accounts = pd.read_sql_query(
            select(Account.id.label("account_id"), Account.start_date, Account.renewal_date).where(
                account_in_shard(shard)
            ),
            connection,
            index_col="account_id",
        )
        usage = usage_signals(connection, as_of, shard)
        events = latest_events(connection, cutoff, shard)
    frame = accounts.join(usage, how="left").join(events, how="left")
    as_of_ts = pd.Timestamp(as_of)
    renewal = pd.to_datetime(frame["renewal_date"])
    frame["days_to_renewal"] = (renewal - as_of_ts).dt.days
    if "renewal_signed_at" in frame.columns:
        # A signature counts for the renewal it precedes: within the window before renewal_date.
        window = pd.Timedelta(days=365)
        frame["renewal_signed"] = frame["renewal_signed_at"].notna() & (
            frame["renewal_signed_at"] >= renewal - window
        )
    else:
        frame["renewal_signed"] = False
    for column in USAGE_SUMS:
        frame[column] = frame[column].fillna(0).astype("int64") if column in frame else 0
    frame["active_users_7d"] = frame.get("active_users_7d", pd.Series(0.0, index=frame.index)).fillna(0.0)
    return frame


def compute_health(
    engine: Engine, as_of: date, cutoff: datetime, model: HealthModel, shard: Shard = ALL
) -> pd.DataFrame:
    """Score every account (of the shard) for `as_of` and store the snapshot (re-running a day
    replaces it)."""
    signals = load_signals(engine, as_of, cutoff, shard)
    scored = score_health(signals, model)
    scored["usage_change_30d"] = signals["usage_change_30d"]
    scored["active_users_7d"] = signals["active_users_7d"]
    for column in USAGE_SUMS:
        scored[column] = signals[column]
    store_health(engine, as_of, scored)
    return scored


def health_of_run(accounts: pd.DataFrame) -> pd.DataFrame:
    """The day's health as `compute_health` returns it, from a run's accounts frame
    (adapters.db.state.load_accounts scores the same signals with the same model): a cycle reads
    its accounts' signals once, for the journeys and the snapshot both."""
    scored = pd.DataFrame(
        {f"{dimension}_score": accounts[f"health_{dimension}_score"] for dimension in DIMENSIONS},
        index=accounts.index,
    )
    scored["score"] = accounts["health"]
    scored["color"] = accounts["health_color"]
    scored["usage_change_30d"] = accounts["usage_change_30d"]
    scored["active_users_7d"] = accounts["active_users_7d"].astype(float)
    for column in USAGE_SUMS:
        scored[column] = accounts[column].astype("int64")
    return scored


def store_health(engine: Engine, as_of: date, scored: pd.DataFrame) -> None:
    """Write the day's snapshot of the scored accounts (one upsert; re-running a day replaces it)."""
    columns = [c.name for c in HealthSnapshot.__table__.columns if c.name not in ("account_id", "as_of")]
    frame = scored[[c for c in columns if c in scored.columns]].astype(object)
    # One list of plain dicts, only the stored columns (100k accounts: ~100 MB less than to_dict
    # of every column and a filtered copy of it).
    snapshots = [
        {"account_id": account_id, "as_of": as_of, **{str(k): None if v != v else v for k, v in row.items()}}
        for account_id, row in zip(frame.index, frame.to_dict("records"), strict=True)
    ]
    with engine.begin() as connection:
        upsert_rows(connection, cast(Table, HealthSnapshot.__table__), snapshots, key=("account_id", "as_of"))
