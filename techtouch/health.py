"""Health scores: weighted dimensions (handbook ch. 9), vectorized over every account at once.

`score_health` is a pure function of a signals frame and the model, so the unit tests
exercise it on hand-built frames; `compute_health` reads the signals and stores the
daily snapshot that trends (and the risk journey) read.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from techtouch.bulk import upsert_rows
from techtouch.models import Account, HealthSnapshot
from techtouch.settings import HealthModel
from techtouch.signals import latest_events, usage_signals

RENEWAL_ANSWER_SCORES = {"likely": 100.0, "unsure": 50.0, "not_likely": 0.0}
DIMENSIONS = ("usage", "engagement", "sentiment", "renewal")
MILESTONE_NAMES = ("configured", "trained", "live")


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(default, index=frame.index)


def score_health(signals: pd.DataFrame, model: HealthModel) -> pd.DataFrame:
    """Score each account 0-100 per dimension, weight them, bucket the total.

    `signals` has one row per account: active_days_30d, usage_change_30d (NaN when there is no
    baseline), milestone.* flags, opened_30d/clicked_30d, survey.nps/csat/renewal answers,
    days_to_renewal (NaN when none), renewal_signed (bool).
    """
    out = pd.DataFrame(index=signals.index)

    active = _column(signals, "active_days_30d", 0).fillna(0).astype(float)
    change = _column(signals, "usage_change_30d", np.nan).astype(float)
    frequency = (active / model.active_days_target).clip(0, 1)
    # No baseline yet (a new account ramping up) counts as holding steady when it is active.
    trend = (1.0 + change).clip(0, 1).where(change.notna(), (active > 0).astype(float))
    out["usage_score"] = 100.0 * (0.5 * frequency + 0.5 * trend)

    reached = sum(
        _column(signals, f"milestone.{name}", False).fillna(False).astype(bool).astype(float)
        for name in MILESTONE_NAMES
    ) / len(MILESTONE_NAMES)
    opened = _column(signals, "opened_30d", 0).fillna(0).astype(float)
    clicked = _column(signals, "clicked_30d", 0).fillna(0).astype(float)
    responsiveness = ((opened + 2 * clicked) / 3).clip(0, 1)
    out["engagement_score"] = 100.0 * (0.7 * reached + 0.3 * responsiveness)

    answers = pd.DataFrame(
        {
            "nps": pd.to_numeric(_column(signals, "survey.nps", np.nan), errors="coerce") * 10.0,
            "csat": (pd.to_numeric(_column(signals, "survey.csat", np.nan), errors="coerce") - 1) * 25.0,
            "renewal": _column(signals, "survey.renewal", np.nan).map(RENEWAL_ANSWER_SCORES),
        },
        index=signals.index,
    ).astype(float)
    out["sentiment_score"] = answers.mean(axis=1, skipna=True).fillna(model.neutral_sentiment)

    days = _column(signals, "days_to_renewal", np.nan).astype(float)
    signed = _column(signals, "renewal_signed", False).fillna(False).astype(bool)
    proximity = 40.0 + 60.0 * (days.clip(lower=0) / model.renewal_window_days).clip(0, 1)
    out["renewal_score"] = proximity.where(days.notna() & (days <= model.renewal_window_days), 100.0)
    out.loc[signed, "renewal_score"] = 100.0

    weights = model.weights.model_dump()
    total = sum(weights.values())
    out["score"] = sum(out[f"{d}_score"] * weights[d] for d in DIMENSIONS) / total
    out["score"] = out["score"].round(1)
    out["color"] = np.select(
        [out["score"] >= model.green, out["score"] >= model.yellow], ["green", "yellow"], "red"
    )
    return out


def load_signals(engine: Engine, as_of: date, cutoff: datetime) -> pd.DataFrame:
    """One row per account with everything `score_health` reads."""
    with engine.connect() as connection:
        accounts = pd.read_sql_query(
            select(Account.id.label("account_id"), Account.start_date, Account.renewal_date),
            connection,
            index_col="account_id",
        )
        usage = usage_signals(connection, as_of)
        events = latest_events(connection, cutoff)
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
    for column in ("key_actions_30d", "logins_14d", "active_days_30d"):
        frame[column] = frame[column].fillna(0).astype("int64") if column in frame else 0
    frame["active_users_7d"] = frame.get("active_users_7d", pd.Series(0.0, index=frame.index)).fillna(0.0)
    return frame


def compute_health(engine: Engine, as_of: date, cutoff: datetime, model: HealthModel) -> pd.DataFrame:
    """Score every account for `as_of` and store the snapshot (re-running a day replaces it)."""
    signals = load_signals(engine, as_of, cutoff)
    scored = score_health(signals, model)
    scored["usage_change_30d"] = signals["usage_change_30d"]
    for column in ("logins_14d", "active_users_7d", "key_actions_30d"):
        scored[column] = signals[column]
    rows = (
        scored.reset_index()
        .assign(as_of=as_of)
        .astype({"usage_change_30d": object})
        .replace({np.nan: None})
        .to_dict("records")
    )
    columns = {c.name for c in HealthSnapshot.__table__.columns}
    rows = [{k: v for k, v in row.items() if k in columns} for row in rows]
    with engine.begin() as connection:
        upsert_rows(connection, HealthSnapshot.__table__, rows, key=("account_id", "as_of"))
    return scored
