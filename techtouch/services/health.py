"""Health for a day: read every account's signals, score them (domain.health), store the snapshot."""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

import pandas as pd
from sqlalchemy import Engine, Table

from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import HealthSnapshot
from techtouch.adapters.db.signals import SUMS as USAGE_SUMS
from techtouch.adapters.db.state import load_accounts
from techtouch.domain.health import DIMENSIONS
from techtouch.domain.policy import HealthModel
from techtouch.domain.shards import ALL, Shard

STORE_BATCH = 100_000  # snapshot rows per upsert (PostgreSQL: each one COPY, see bulk.upsert_rows)


def compute_health(
    engine: Engine, as_of: date, cutoff: datetime, model: HealthModel, shard: Shard = ALL
) -> pd.DataFrame:
    """Score every account (of the shard) for `as_of` and store the snapshot (re-running a day
    replaces it). The accounts are read and scored as a run reads them (adapters.db.state), so
    `techtouch health` and the daily cycle's snapshot are one computation."""
    with engine.connect() as connection:
        accounts = load_accounts(connection, as_of, cutoff, model, shard)
    scored = health_of_run(accounts)
    store_health(engine, as_of, scored)
    return scored


def health_of_run(accounts: pd.DataFrame) -> pd.DataFrame:
    """The day's health from a run's accounts frame (adapters.db.state.load_accounts scores it as
    it reads it): a cycle reads its accounts' signals once, for the journeys and the snapshot both."""
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
    """Write the day's snapshot of the scored accounts (re-running a day replaces it), in one
    transaction, STORE_BATCH accounts per upsert: the rows are plain dicts of the stored columns
    only, made a batch at a time (1M accounts' dicts at once took a gigabyte)."""
    columns = [c.name for c in HealthSnapshot.__table__.columns if c.name not in ("account_id", "as_of")]
    frame = scored[[c for c in columns if c in scored.columns]]
    with engine.begin() as connection:
        for start in range(0, len(frame), STORE_BATCH):
            part = frame.iloc[start : start + STORE_BATCH].astype(object)
            snapshots = [
                {
                    "account_id": account_id,
                    "as_of": as_of,
                    **{str(k): None if v != v else v for k, v in row.items()},
                }
                for account_id, row in zip(part.index, part.to_dict("records"), strict=True)
            ]
            upsert_rows(
                connection, cast(Table, HealthSnapshot.__table__), snapshots, key=("account_id", "as_of")
            )
